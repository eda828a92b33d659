#include "nicflow/device_plugin/allocation.h"

#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nicflow/device_plugin/cdi.h"
#include "nlohmann/json.hpp"
#include "test_util.h"

namespace nicflow::device_plugin {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TrackedDevice VfioVf(const std::string& address, const std::string& group) {
  TrackedDevice device;
  device.vf.pci_address = address;
  device.vf.vendor_id = "8086";
  device.vf.device_id = "1889";
  device.vf.class_code = "020000";
  device.vf.driver = "vfio-pci";
  device.vf.iommu_group = group;
  device.vf.pf_address = "0000:af:00.0";
  device.vf.pf_netdev = "ens7f0";
  device.vf.numa_node = 1;
  return device;
}

TrackedDevice RdmaVf(const std::string& address, int n) {
  TrackedDevice device;
  device.vf.pci_address = address;
  device.vf.vendor_id = "15b3";
  device.vf.class_code = "020000";
  device.vf.driver = "mlx5_core";
  device.vf.netdevs = {"ens1f0v" + std::to_string(n)};
  const std::string index = std::to_string(n);
  device.vf.rdma = {RdmaDevice{"mlx5_" + index,
                               {"/dev/infiniband/uverbs" + index, "/dev/infiniband/umad" + index}}};
  return device;
}

ResourceConfig Resource(const std::string& selectors = "{}") {
  auto config =
      ParseConfig(R"({"resourceList": [{"resourceName": "vf", "selectors": )" + selectors + "}]}",
                  "nicflow.io");
  EXPECT_TRUE(config.ok()) << config.status();
  return config->resources[0];
}

std::vector<std::string> HostPaths(const ContainerAllocation& allocation) {
  std::vector<std::string> paths;
  for (const auto& node : allocation.devices) paths.push_back(node.host_path);
  return paths;
}

TEST(Allocation, EnvNamesMatchTheSriovNetworkDevicePlugin) {
  EXPECT_EQ(PciDeviceEnvName("intel.com", "intel_sriov_netdevice"),
            "PCIDEVICE_INTEL_COM_INTEL_SRIOV_NETDEVICE");
  EXPECT_EQ(PciDeviceEnvName("nicflow.io", "vf"), "PCIDEVICE_NICFLOW_IO_VF");
  EXPECT_EQ(PciDeviceEnvName("my-org.example.com", "fast_vf"),
            "PCIDEVICE_MY_ORG_EXAMPLE_COM_FAST_VF");
}

TEST(Allocation, VfioDevicesShareOneVfioContainerNode) {
  const std::vector<TrackedDevice> pool = {VfioVf("0000:b0:00.0", "100"),
                                           VfioVf("0000:b0:00.1", "101")};
  const std::vector<std::string> ids = {"0000:b0:00.1", "0000:b0:00.0"};
  const auto allocation = BuildContainerAllocation(Resource(), pool, ids, {});
  ASSERT_TRUE(allocation.ok()) << allocation.status();
  EXPECT_THAT(HostPaths(*allocation),
              ElementsAre("/dev/vfio/vfio", "/dev/vfio/101", "/dev/vfio/100"));
  EXPECT_EQ(allocation->envs.at("PCIDEVICE_NICFLOW_IO_VF"), "0000:b0:00.1,0000:b0:00.0");
  const auto info = nlohmann::json::parse(allocation->envs.at("PCIDEVICE_NICFLOW_IO_VF_INFO"));
  EXPECT_EQ(info["0000:b0:00.1"]["vfio"]["dev-mount"], "/dev/vfio/101");
  EXPECT_EQ(info["0000:b0:00.1"]["nicflow"]["numaNode"], 1);
  EXPECT_EQ(info["0000:b0:00.1"]["nicflow"]["pfAddress"], "0000:af:00.0");
  EXPECT_TRUE(allocation->cdi_devices.empty());
  EXPECT_TRUE(allocation->annotations.empty());
}

TEST(Allocation, RdmaDevicesAddRdmaCmOnce) {
  const std::vector<TrackedDevice> pool = {RdmaVf("0000:3c:00.0", 2), RdmaVf("0000:3c:00.1", 3)};
  const std::vector<std::string> ids = {"0000:3c:00.0", "0000:3c:00.1"};
  const auto allocation = BuildContainerAllocation(Resource(), pool, ids, {});
  ASSERT_TRUE(allocation.ok()) << allocation.status();
  EXPECT_THAT(
      HostPaths(*allocation),
      ElementsAre("/dev/infiniband/rdma_cm", "/dev/infiniband/uverbs2", "/dev/infiniband/umad2",
                  "/dev/infiniband/uverbs3", "/dev/infiniband/umad3"));
  const auto info = nlohmann::json::parse(allocation->envs.at("PCIDEVICE_NICFLOW_IO_VF_INFO"));
  EXPECT_EQ(info["0000:3c:00.1"]["rdma"]["uverbs"], "/dev/infiniband/uverbs3");
  EXPECT_EQ(info["0000:3c:00.1"]["rdma"]["umad"], "/dev/infiniband/umad3");
  EXPECT_EQ(info["0000:3c:00.1"]["nicflow"]["netdev"], "ens1f0v3");
}

TEST(Allocation, NeedVhostNetAddsVhostAndTun) {
  const std::vector<TrackedDevice> pool = {VfioVf("0000:b0:00.0", "100")};
  const std::vector<std::string> ids = {"0000:b0:00.0"};
  const auto allocation =
      BuildContainerAllocation(Resource(R"({"needVhostNet": true})"), pool, ids, {});
  ASSERT_TRUE(allocation.ok());
  EXPECT_THAT(HostPaths(*allocation),
              ElementsAre("/dev/vfio/vfio", "/dev/vfio/100", "/dev/vhost-net", "/dev/net/tun"));
}

TEST(Allocation, CdiModeNamesDevicesInsteadOfNodes) {
  const std::vector<TrackedDevice> pool = {VfioVf("0000:b0:00.0", "100")};
  const std::vector<std::string> ids = {"0000:b0:00.0"};
  const auto allocation = BuildContainerAllocation(Resource(), pool, ids, {.use_cdi = true});
  ASSERT_TRUE(allocation.ok());
  EXPECT_TRUE(allocation->devices.empty());
  EXPECT_THAT(allocation->cdi_devices, ElementsAre("nicflow.io/vf=0000:b0:00.0"));
  EXPECT_EQ(allocation->annotations.at("cdi.k8s.io/nicflow-device-plugin_vf"),
            "nicflow.io/vf=0000:b0:00.0");
}

TEST(Allocation, RefusalsNameTheDeviceAndWhy) {
  std::vector<TrackedDevice> pool = {VfioVf("0000:b0:00.0", "100"), VfioVf("0000:b0:00.1", "")};
  pool[0].health = Health::kUnhealthy;
  pool[0].reason = "driver unbound";
  pool[1].vf.iommu_group.clear();
  const ResourceConfig resource = Resource();
  const auto allocate = [&](std::vector<std::string> ids) {
    return BuildContainerAllocation(resource, pool, ids, {}).status();
  };
  auto status = allocate({"0000:b0:00.9"});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "device \"0000:b0:00.9\" is not a device of resource nicflow.io/vf");
  status = allocate({"0000:b0:00.0"});
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(status.message(),
            "device 0000:b0:00.0 of resource nicflow.io/vf is Unhealthy: driver unbound");
  status = allocate({"0000:b0:00.1"});
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(status.message()), HasSubstr("has no iommu_group"));
  pool[0].health = Health::kHealthy;
  status = allocate({"0000:b0:00.0", "0000:b0:00.0"});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "device 0000:b0:00.0 requested twice");
}

TEST(Allocation, IsVfioDriverKnowsVendorVariants) {
  EXPECT_TRUE(IsVfioDriver("vfio-pci"));
  EXPECT_TRUE(IsVfioDriver("mlx5_vfio_pci"));
  EXPECT_FALSE(IsVfioDriver("iavf"));
  EXPECT_FALSE(IsVfioDriver(""));
}

TEST(Cdi, SpecListsEveryDeviceWithItsNodes) {
  const std::vector<TrackedDevice> pool = {VfioVf("0000:b0:00.0", "100"),
                                           RdmaVf("0000:3c:00.0", 2)};
  testing::TempDir temp;
  ASSERT_TRUE(WriteCdiSpec(temp.path(), Resource(), pool).ok());
  std::ifstream in(temp.path() / "nicflow-nicflow.io_vf.json");
  const auto spec = nlohmann::json::parse(in);
  EXPECT_EQ(spec["cdiVersion"], "0.6.0");
  EXPECT_EQ(spec["kind"], "nicflow.io/vf");
  ASSERT_EQ(spec["devices"].size(), 2u);
  EXPECT_EQ(spec["devices"][0]["name"], "0000:b0:00.0");
  EXPECT_EQ(spec["devices"][0]["containerEdits"]["deviceNodes"][0]["path"], "/dev/vfio/vfio");
  EXPECT_EQ(spec["devices"][1]["containerEdits"]["deviceNodes"][1]["hostPath"],
            "/dev/infiniband/uverbs2");
  EXPECT_FALSE(std::filesystem::exists(temp.path() / ".nicflow-nicflow.io_vf.json.tmp"));
}

TEST(Cdi, UnwritableDirectoryIsAnError) {
  const auto status = WriteCdiSpec("/nonexistent/cdi", Resource(), {});
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(status.message()), HasSubstr("/nonexistent/cdi"));
}

}  // namespace
}  // namespace nicflow::device_plugin
