// End to end against the fake kubelet: registration, ListAndWatch, Allocate,
// GetPreferredAllocation, PreStartContainer, CDI and kubelet restarts.
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "test_util.h"

namespace nicflow::device_plugin::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

constexpr char kPf0[] = "0000:3b:00.0";
constexpr char kPf1[] = "0000:3b:00.1";
constexpr char kE810[] = "0000:af:00.0";

constexpr char kTwoResources[] = R"({"resourceList": [
  {"resourceName": "cx_rdma", "selectors": {"vendors": ["15b3"], "isRdma": true}},
  {"resourceName": "e810_dpdk", "resourcePrefix": "intel.com",
   "selectors": {"vendors": ["8086"], "devices": ["1889"], "drivers": ["vfio-pci"]}}
]})";

bool AllHealthy(const DeviceList& devices, size_t count) {
  if (devices.size() != count) return false;
  for (const auto& device : devices) {
    if (device.health() != "Healthy") return false;
  }
  return true;
}

class DaemonKubeletTest : public ::testing::Test {
 protected:
  void SetUp() override {
    env_.sysfs().AddPf(ConnectXPf(kPf0, "ens1f0", 2, /*numa_node=*/0));
    env_.sysfs().AddPf(E810VfioPf(kE810, "ens7f0", 3, /*numa_node=*/1));
  }

  PluginEnv env_;
};

TEST_F(DaemonKubeletTest, RegistersEachResourceAndAdvertisesItsVfs) {
  ASSERT_TRUE(env_.Start(kTwoResources).ok());
  ASSERT_TRUE(env_.kubelet().WaitForRegistrations("nicflow.io/cx_rdma", 1, 5s));
  ASSERT_TRUE(env_.kubelet().WaitForRegistrations("intel.com/e810_dpdk", 1, 5s));
  std::map<std::string, std::string> endpoints;
  for (const auto& request : env_.kubelet().registrations()) {
    EXPECT_EQ(request.version(), "v1beta1");
    EXPECT_TRUE(request.options().get_preferred_allocation_available());
    EXPECT_FALSE(request.options().pre_start_required());
    endpoints[request.resource_name()] = request.endpoint();
  }
  EXPECT_EQ(endpoints["nicflow.io/cx_rdma"], "nicflow.io_cx_rdma.sock");
  EXPECT_EQ(endpoints["intel.com/e810_dpdk"], "intel.com_e810_dpdk.sock");

  const auto cx = env_.kubelet().WaitForDevices(
      "nicflow.io/cx_rdma", [](const DeviceList& d) { return AllHealthy(d, 2); }, 5s);
  ASSERT_TRUE(cx.has_value());
  EXPECT_EQ((*cx)[0].id(), env_.sysfs().VfAddress(kPf0, 0));
  ASSERT_EQ((*cx)[0].topology().nodes_size(), 1);
  EXPECT_EQ((*cx)[0].topology().nodes(0).id(), 0);
  const auto e810 = env_.kubelet().WaitForDevices(
      "intel.com/e810_dpdk", [](const DeviceList& d) { return AllHealthy(d, 3); }, 5s);
  ASSERT_TRUE(e810.has_value());
  EXPECT_EQ((*e810)[2].topology().nodes(0).id(), 1);
  const auto options = env_.kubelet().Options("intel.com/e810_dpdk");
  ASSERT_TRUE(options.ok());
  EXPECT_TRUE(options->get_preferred_allocation_available());
}

TEST_F(DaemonKubeletTest, AllocateVfioVfsGivesEnvInfoAndVfioDevices) {
  ASSERT_TRUE(env_.Start(kTwoResources).ok());
  const std::string resource = "intel.com/e810_dpdk";
  ASSERT_TRUE(env_.kubelet().WaitForDevices(
      resource, [](const DeviceList& d) { return AllHealthy(d, 3); }, 5s));
  const std::string vf0 = env_.sysfs().VfAddress(kE810, 0);
  const std::string vf2 = env_.sysfs().VfAddress(kE810, 2);
  const auto response = env_.kubelet().Allocate(resource, {{vf0, vf2}});
  ASSERT_TRUE(response.ok()) << response.status();
  ASSERT_EQ(response->container_responses_size(), 1);
  const auto& container = response->container_responses(0);
  EXPECT_EQ(container.envs().at("PCIDEVICE_INTEL_COM_E810_DPDK"), vf0 + "," + vf2);
  const auto info =
      nlohmann::json::parse(container.envs().at("PCIDEVICE_INTEL_COM_E810_DPDK_INFO"));
  EXPECT_EQ(info[vf0]["generic"]["deviceID"], vf0);
  EXPECT_EQ(info[vf0]["vfio"]["mount"], "/dev/vfio/vfio");
  EXPECT_EQ(info[vf0]["vfio"]["dev-mount"], "/dev/vfio/100");
  EXPECT_EQ(info[vf2]["vfio"]["dev-mount"], "/dev/vfio/102");
  EXPECT_EQ(info[vf2]["nicflow"]["pfName"], "ens7f0");
  std::vector<std::string> paths;
  for (const auto& spec : container.devices()) {
    EXPECT_EQ(spec.host_path(), spec.container_path());
    EXPECT_EQ(spec.permissions(), "rw");
    paths.push_back(spec.host_path());
  }
  EXPECT_THAT(paths, ElementsAre("/dev/vfio/vfio", "/dev/vfio/100", "/dev/vfio/102"));
  EXPECT_EQ(container.cdi_devices_size(), 0);
}

TEST_F(DaemonKubeletTest, AllocateRdmaVfGivesItsCharacterDevices) {
  ASSERT_TRUE(env_.Start(kTwoResources).ok());
  const std::string resource = "nicflow.io/cx_rdma";
  ASSERT_TRUE(env_.kubelet().WaitForDevices(
      resource, [](const DeviceList& d) { return AllHealthy(d, 2); }, 5s));
  const std::string vf1 = env_.sysfs().VfAddress(kPf0, 1);
  const auto response = env_.kubelet().Allocate(resource, {{vf1}});
  ASSERT_TRUE(response.ok()) << response.status();
  const auto& container = response->container_responses(0);
  std::vector<std::string> paths;
  for (const auto& spec : container.devices()) paths.push_back(spec.host_path());
  EXPECT_THAT(paths, UnorderedElementsAre("/dev/infiniband/rdma_cm", "/dev/infiniband/uverbs1",
                                          "/dev/infiniband/umad1", "/dev/infiniband/issm1"));
  const auto info = nlohmann::json::parse(container.envs().at("PCIDEVICE_NICFLOW_IO_CX_RDMA_INFO"));
  EXPECT_EQ(info[vf1]["rdma"]["uverbs"], "/dev/infiniband/uverbs1");
  EXPECT_EQ(info[vf1]["rdma"]["rdma_cm"], "/dev/infiniband/rdma_cm");
  EXPECT_EQ(info[vf1]["nicflow"]["rdmaDevice"], "mlx5_3");
  EXPECT_FALSE(info[vf1].contains("vfio"));
}

TEST_F(DaemonKubeletTest, AllocateServesEveryContainerOfThePod) {
  ASSERT_TRUE(env_.Start(kTwoResources).ok());
  const std::string resource = "intel.com/e810_dpdk";
  ASSERT_TRUE(env_.kubelet().WaitForDevices(
      resource, [](const DeviceList& d) { return AllHealthy(d, 3); }, 5s));
  const auto response = env_.kubelet().Allocate(
      resource, {{env_.sysfs().VfAddress(kE810, 0)}, {env_.sysfs().VfAddress(kE810, 1)}});
  ASSERT_TRUE(response.ok()) << response.status();
  ASSERT_EQ(response->container_responses_size(), 2);
  EXPECT_EQ(response->container_responses(1).envs().at("PCIDEVICE_INTEL_COM_E810_DPDK"),
            env_.sysfs().VfAddress(kE810, 1));
}

TEST_F(DaemonKubeletTest, AllocateRefusesUnknownAndUnhealthyDevicesWithClearStatus) {
  ASSERT_TRUE(env_.Start(kTwoResources).ok());
  const std::string resource = "intel.com/e810_dpdk";
  ASSERT_TRUE(env_.kubelet().WaitForDevices(
      resource, [](const DeviceList& d) { return AllHealthy(d, 3); }, 5s));
  // A ConnectX VF is not part of the E810 resource.
  const std::string foreign = env_.sysfs().VfAddress(kPf0, 0);
  auto unknown = env_.kubelet().Allocate(resource, {{foreign}});
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(unknown.status().message()),
              HasSubstr("Allocate container_requests[0]: device \"" + foreign +
                        "\" is not a device of resource intel.com/e810_dpdk"));

  env_.sysfs().SetOperState(kE810, "down");
  ASSERT_TRUE(env_.kubelet().WaitForDevices(
      resource,
      [&](const DeviceList& d) {
        return HealthOf(d, env_.sysfs().VfAddress(kE810, 0)) == "Unhealthy";
      },
      2s));
  const std::string vf0 = env_.sysfs().VfAddress(kE810, 0);
  auto unhealthy = env_.kubelet().Allocate(resource, {{vf0}});
  EXPECT_EQ(unhealthy.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(unhealthy.status().message()),
              HasSubstr("device " + vf0 + " of resource intel.com/e810_dpdk is Unhealthy: PF " +
                        kE810 + " link ens7f0 is down"));
}

TEST_F(DaemonKubeletTest, GetPreferredAllocationKeepsNumaAlignment) {
  env_.sysfs().AddPf(ConnectXPf(kPf1, "ens1f1", 4, /*numa_node=*/1));
  ASSERT_TRUE(env_.Start(kTwoResources).ok());
  const std::string resource = "nicflow.io/cx_rdma";
  ASSERT_TRUE(env_.kubelet().WaitForDevices(
      resource, [](const DeviceList& d) { return AllHealthy(d, 6); }, 5s));
  std::vector<std::string> available;
  for (const auto& device : env_.kubelet().Devices(resource)) available.push_back(device.id());
  // 3 VFs only fit on NUMA 1 (PF1 has 4, PF0 has 2).
  auto preferred = env_.kubelet().GetPreferredAllocation(resource, available, {}, 3);
  ASSERT_TRUE(preferred.ok()) << preferred.status();
  EXPECT_THAT(*preferred,
              ElementsAre(env_.sysfs().VfAddress(kPf1, 0), env_.sysfs().VfAddress(kPf1, 1),
                          env_.sysfs().VfAddress(kPf1, 2)));
  // A must-include VF on NUMA 0 pulls the rest to NUMA 0.
  preferred = env_.kubelet().GetPreferredAllocation(resource, available,
                                                    {env_.sysfs().VfAddress(kPf0, 1)}, 2);
  ASSERT_TRUE(preferred.ok()) << preferred.status();
  EXPECT_THAT(*preferred,
              ElementsAre(env_.sysfs().VfAddress(kPf0, 1), env_.sysfs().VfAddress(kPf0, 0)));
}

TEST(DaemonTopologyTest, PfWithVfsOnTwoNumaNodesAdvertisesEachVfsNode) {
  PluginEnv env;
  FakePf pf = ConnectXPf("0000:3b:00.0", "ens1f0", 6);
  pf.vf_numa = [](int index) { return index < 2 ? 0 : 1; };
  env.sysfs().AddPf(pf);
  ASSERT_TRUE(env.Start(R"({"resourceList": [{"resourceName": "vf", "allocationPolicy": "pack",
      "selectors": {"rootDevices": ["0000:3b:00.0"]}}]})")
                  .ok());
  const auto devices = env.kubelet().WaitForDevices(
      "nicflow.io/vf", [](const DeviceList& d) { return AllHealthy(d, 6); }, 5s);
  ASSERT_TRUE(devices.has_value());
  EXPECT_EQ((*devices)[1].topology().nodes(0).id(), 0);
  EXPECT_EQ((*devices)[2].topology().nodes(0).id(), 1);
  std::vector<std::string> available;
  for (const auto& device : *devices) available.push_back(device.id());
  // Two fit on node 0 (best fit: the smaller node); three only on node 1.
  auto two = env.kubelet().GetPreferredAllocation("nicflow.io/vf", available, {}, 2);
  ASSERT_TRUE(two.ok());
  EXPECT_THAT(*two, ElementsAre(env.sysfs().VfAddress(pf.address, 0),
                                env.sysfs().VfAddress(pf.address, 1)));
  auto three = env.kubelet().GetPreferredAllocation("nicflow.io/vf", available, {}, 3);
  ASSERT_TRUE(three.ok());
  EXPECT_THAT(*three, ElementsAre(env.sysfs().VfAddress(pf.address, 2),
                                  env.sysfs().VfAddress(pf.address, 3),
                                  env.sysfs().VfAddress(pf.address, 4)));
}

// The daemon's poll interval is 60 s here, so a re-registration within the 10 s bound came from
// inotify; bench/device-plugin measures how fast (target 1 s).
TEST_F(DaemonKubeletTest, ReRegistersAfterKubeletRestartThroughInotify) {
  ASSERT_TRUE(env_.Start(kTwoResources).ok());
  ASSERT_TRUE(env_.kubelet().WaitForRegistrations("nicflow.io/cx_rdma", 1, 5s));
  ASSERT_TRUE(env_.kubelet().WaitForRegistrations("intel.com/e810_dpdk", 1, 5s));
  ASSERT_TRUE(env_.kubelet().WaitForDevices(
      "nicflow.io/cx_rdma", [](const DeviceList& d) { return AllHealthy(d, 2); }, 5s));

  ASSERT_TRUE(env_.kubelet().Restart().ok());  // deletes every socket, re-creates kubelet.sock
  ASSERT_TRUE(env_.kubelet().WaitForRegistrations("nicflow.io/cx_rdma", 2, 10s));
  ASSERT_TRUE(env_.kubelet().WaitForRegistrations("intel.com/e810_dpdk", 2, 10s));
  EXPECT_TRUE(std::filesystem::exists(env_.kubelet_dir() / "nicflow.io_cx_rdma.sock"));
  // The new kubelet gets a working plugin: devices and Allocate.
  ASSERT_TRUE(env_.kubelet().WaitForDevices(
      "nicflow.io/cx_rdma", [](const DeviceList& d) { return AllHealthy(d, 2); }, 10s));
  EXPECT_TRUE(
      env_.kubelet().Allocate("nicflow.io/cx_rdma", {{env_.sysfs().VfAddress(kPf0, 0)}}).ok());
  const auto status = env_.daemon().Status();
  ASSERT_EQ(status.size(), 2u);
  EXPECT_TRUE(status[0].registered);
  EXPECT_EQ(status[0].registrations, 2);
}

TEST_F(DaemonKubeletTest, RegistersOnceTheKubeletComesUp) {
  ASSERT_TRUE(env_.Start(kTwoResources, env_.Options(), /*start_kubelet=*/false).ok());
  std::this_thread::sleep_for(200ms);
  EXPECT_TRUE(env_.kubelet().registrations().empty());
  ASSERT_TRUE(env_.kubelet().Start().ok());
  EXPECT_TRUE(env_.kubelet().WaitForRegistrations("nicflow.io/cx_rdma", 1, 10s));
}

TEST_F(DaemonKubeletTest, PreStartCheckRefusesADeviceThatWentBadSinceAllocate) {
  const std::string config = R"({"resourceList": [{"resourceName": "vf", "preStartCheck": true,
      "selectors": {"pfNames": ["ens7f0"]}}]})";
  ASSERT_TRUE(env_.Start(config).ok());
  ASSERT_TRUE(env_.kubelet().WaitForRegistrations("nicflow.io/vf", 1, 5s));
  EXPECT_TRUE(env_.kubelet().registrations()[0].options().pre_start_required());
  ASSERT_TRUE(env_.kubelet().WaitForDevices(
      "nicflow.io/vf", [](const DeviceList& d) { return AllHealthy(d, 3); }, 5s));
  const std::string vf1 = env_.sysfs().VfAddress(kE810, 1);
  EXPECT_TRUE(env_.kubelet().PreStartContainer("nicflow.io/vf", {vf1}).ok());
  env_.sysfs().UnbindDriver(vf1);
  const absl::Status status = env_.kubelet().PreStartContainer("nicflow.io/vf", {vf1});
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(status.message()), HasSubstr(vf1 + " is Unhealthy: driver unbound"));
}

TEST_F(DaemonKubeletTest, CdiModeAnswersWithCdiNamesAndWritesTheSpec) {
  DaemonOptions options = env_.Options();
  options.use_cdi = true;
  ASSERT_TRUE(env_.Start(kTwoResources, options).ok());
  const std::string resource = "intel.com/e810_dpdk";
  ASSERT_TRUE(env_.kubelet().WaitForDevices(
      resource, [](const DeviceList& d) { return AllHealthy(d, 3); }, 5s));
  const std::string vf0 = env_.sysfs().VfAddress(kE810, 0);
  const auto response = env_.kubelet().Allocate(resource, {{vf0}});
  ASSERT_TRUE(response.ok()) << response.status();
  const auto& container = response->container_responses(0);
  ASSERT_EQ(container.cdi_devices_size(), 1);
  EXPECT_EQ(container.cdi_devices(0).name(), "intel.com/e810_dpdk=" + vf0);
  EXPECT_EQ(container.devices_size(), 0);
  EXPECT_EQ(container.annotations().at("cdi.k8s.io/nicflow-device-plugin_e810_dpdk"),
            "intel.com/e810_dpdk=" + vf0);
  EXPECT_TRUE(container.envs().contains("PCIDEVICE_INTEL_COM_E810_DPDK"));

  std::ifstream in(env_.cdi_dir() / "nicflow-intel.com_e810_dpdk.json");
  const auto spec = nlohmann::json::parse(in);
  EXPECT_EQ(spec["kind"], "intel.com/e810_dpdk");
  ASSERT_EQ(spec["devices"].size(), 3u);
  EXPECT_EQ(spec["devices"][0]["name"], vf0);
  EXPECT_EQ(spec["devices"][0]["containerEdits"]["deviceNodes"][1]["path"], "/dev/vfio/100");
}

TEST_F(DaemonKubeletTest, ExcludeTopologyAdvertisesNoNumaNode) {
  const std::string config = R"({"resourceList": [{"resourceName": "vf", "excludeTopology": true,
      "selectors": {"vendors": ["8086"]}}]})";
  ASSERT_TRUE(env_.Start(config).ok());
  const auto devices = env_.kubelet().WaitForDevices(
      "nicflow.io/vf", [](const DeviceList& d) { return AllHealthy(d, 3); }, 5s);
  ASSERT_TRUE(devices.has_value());
  EXPECT_FALSE((*devices)[0].has_topology());
}

TEST_F(DaemonKubeletTest, BadConfigFailsStartNamingTheCulprit) {
  const std::string config = R"({"resourceList": [{"resourceName": "vf",
      "selectors": {"pfNames": ["ens1f0#5-2"]}}]})";
  const absl::Status status = env_.Start(config);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("config resourceList[0].selectors.pfNames[0]: invalid VF range "
                        "\"ens1f0#5-2\""));
  EXPECT_THAT(std::string(status.message()), HasSubstr(env_.config_path().string()));
}

}  // namespace
}  // namespace nicflow::device_plugin::testing
