#include "nicflow/device_plugin/config.h"

#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "test_util.h"

namespace nicflow::device_plugin {
namespace {

using ::testing::HasSubstr;

// The example from the SR-IOV network device plugin's README, plus nicflow's extensions.
constexpr char kSriovExample[] = R"({
  "resourceList": [
    {"resourceName": "intel_sriov_netdevice",
     "resourcePrefix": "intel.com",
     "selectors": {"vendors": ["8086"], "devices": ["154C", "10ed", "1889"],
                   "drivers": ["i40evf", "iavf", "ixgbevf"]}},
    {"resourceName": "intel_sriov_dpdk",
     "resourcePrefix": "intel.com",
     "selectors": {"vendors": ["8086"], "devices": ["154c", "10ed"], "drivers": ["vfio-pci"],
                   "pfNames": ["enp0s0f0", "enp2s2f1#0-3,7"], "needVhostNet": true}},
    {"resourceName": "mlnx_sriov_rdma",
     "excludeTopology": true,
     "allocationPolicy": "pack",
     "preStartCheck": true,
     "selectors": {"vendors": ["15b3"], "devices": ["1018"], "drivers": ["mlx5_core"],
                   "isRdma": true, "linkTypes": ["ether"],
                   "rootDevices": ["0000:3B:00.0"], "pciAddresses": ["0000:3c:00.2"],
                   "acpiIndexes": ["101"]}},
    {"resourceName": "fpga_vf", "deviceType": "accelerator",
     "selectors": [{"vendors": ["10ee"]}, {"devices": ["5041"]}]}
  ]
})";

absl::Status ParseError(const std::string& text) {
  return ParseConfig(text, "nicflow.io").status();
}

std::string Message(const absl::Status& status) { return std::string(status.message()); }

TEST(Config, ParsesTheSriovNetworkDevicePluginFormat) {
  const auto config = ParseConfig(kSriovExample, "nicflow.io");
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_EQ(config->resources.size(), 4u);
  const ResourceConfig& netdevice = config->resources[0];
  EXPECT_EQ(netdevice.FullName(), "intel.com/intel_sriov_netdevice");
  EXPECT_EQ(netdevice.device_type, DeviceType::kNetDevice);
  ASSERT_EQ(netdevice.selectors.size(), 1u);
  EXPECT_THAT(netdevice.selectors[0].devices, ::testing::ElementsAre("154c", "10ed", "1889"));

  const Selector& dpdk = config->resources[1].selectors[0];
  ASSERT_EQ(dpdk.pf_names.size(), 2u);
  EXPECT_EQ(dpdk.pf_names[0].pf_name, "enp0s0f0");
  EXPECT_TRUE(dpdk.pf_names[0].vf_ranges.empty());
  EXPECT_EQ(dpdk.pf_names[1].pf_name, "enp2s2f1");
  EXPECT_EQ(dpdk.pf_names[1].vf_ranges, (std::vector<VfRange>{{0, 3}, {7, 7}}));
  EXPECT_TRUE(dpdk.need_vhost_net);

  const ResourceConfig& rdma = config->resources[2];
  EXPECT_EQ(rdma.FullName(), "nicflow.io/mlnx_sriov_rdma");
  EXPECT_TRUE(rdma.exclude_topology);
  EXPECT_TRUE(rdma.pre_start_check);
  EXPECT_EQ(rdma.allocation_policy, AllocationPolicy::kPack);
  EXPECT_EQ(rdma.selectors[0].is_rdma, true);
  EXPECT_THAT(rdma.selectors[0].root_devices, ::testing::ElementsAre("0000:3b:00.0"));

  const ResourceConfig& fpga = config->resources[3];
  EXPECT_EQ(fpga.device_type, DeviceType::kAccelerator);
  EXPECT_EQ(fpga.selectors.size(), 2u);
  EXPECT_EQ(fpga.allocation_policy, AllocationPolicy::kSpread);
}

TEST(Config, MissingSelectorsSelectEverythingOfTheDeviceType) {
  const auto config = ParseConfig(R"({"resourceList": [{"resourceName": "all"}]})", "x.io");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->resources[0].FullName(), "x.io/all");
  EXPECT_EQ(config->resources[0].selectors, std::vector<Selector>(1));
}

TEST(Config, UnknownSelectorIsNamed) {
  const absl::Status status = ParseError(
      R"({"resourceList": [{"resourceName": "vf", "selectors": {"vendor": ["15b3"]}}]})");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(status),
              HasSubstr("config resourceList[0].selectors: unknown selector \"vendor\" (known: "));
  EXPECT_THAT(Message(status), HasSubstr("vendors"));
}

TEST(Config, InvalidVfRangeIsNamedWithItsPath) {
  const absl::Status status = ParseError(R"({"resourceList": [
      {"resourceName": "a"},
      {"resourceName": "b", "selectors": {"pfNames": ["ens1f0#5-2"]}}]})");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Message(status),
            "config resourceList[1].selectors.pfNames[0]: invalid VF range \"ens1f0#5-2\"");
}

TEST(Config, DuplicateResourceNamesBothEntries) {
  const absl::Status status = ParseError(R"({"resourceList": [
      {"resourceName": "vf"}, {"resourceName": "other"},
      {"resourceName": "vf", "resourcePrefix": "nicflow.io"}]})");
  EXPECT_EQ(Message(status),
            "config resourceList[2].resourceName: duplicate resource "
            "\"nicflow.io/vf\" (also resourceList[0])");
}

TEST(Config, SameNameUnderDifferentPrefixesIsFine) {
  EXPECT_TRUE(ParseConfig(R"({"resourceList": [
      {"resourceName": "vf"}, {"resourceName": "vf", "resourcePrefix": "intel.com"}]})",
                          "nicflow.io")
                  .ok());
}

TEST(Config, WrongTypesAreNamed) {
  EXPECT_EQ(Message(ParseError(
                R"({"resourceList": [{"resourceName": "vf", "selectors": {"vendors": "15b3"}}]})")),
            "config resourceList[0].selectors.vendors: expected an array of strings, got string");
  EXPECT_EQ(Message(ParseError(
                R"({"resourceList": [{"resourceName": "vf", "selectors": {"isRdma": "yes"}}]})")),
            "config resourceList[0].selectors.isRdma: expected true or false, got string");
  EXPECT_EQ(Message(ParseError(R"({"resourceList": [{"resourceName": 7}]})")),
            "config resourceList[0].resourceName: expected a string, got number");
  EXPECT_EQ(Message(ParseError(
                R"({"resourceList": [{"resourceName": "vf", "selectors": {"drivers": [1]}}]})")),
            "config resourceList[0].selectors.drivers[0]: expected a string, got number");
  EXPECT_EQ(Message(ParseError(R"({"resourceList": {}})")),
            "config resourceList: expected an array, got object");
  EXPECT_EQ(Message(ParseError(R"([])")),
            "config (top level): expected an object with \"resourceList\", got array");
}

TEST(Config, BadValuesAreNamed) {
  EXPECT_EQ(
      Message(ParseError(
          R"({"resourceList": [{"resourceName": "vf", "selectors": {"vendors": ["15b"]}}]})")),
      "config resourceList[0].selectors.vendors[0]: invalid value \"15b\" (want 4 hex "
      "digits such as \"15b3\")");
  EXPECT_THAT(Message(ParseError(R"({"resourceList": [{"resourceName": "vf",
                "selectors": {"pciAddresses": ["3b:00.2"]}}]})")),
              HasSubstr("selectors.pciAddresses[0]: invalid value \"3b:00.2\""));
  EXPECT_THAT(Message(ParseError(R"({"resourceList": [{"resourceName": "vf-1"}]})")),
              HasSubstr("resourceList[0].resourceName: invalid resource name \"vf-1\""));
  EXPECT_THAT(Message(ParseError(
                  R"({"resourceList": [{"resourceName": "vf", "resourcePrefix": "Nic_Flow"}]})")),
              HasSubstr("resourceList[0].resourcePrefix: invalid resource prefix \"Nic_Flow\""));
  EXPECT_THAT(Message(ParseError(R"({"resourceList": [{"resourceName": "vf",
                "selectors": {"linkTypes": ["eth"]}}]})")),
              HasSubstr("selectors.linkTypes[0]: invalid value \"eth\""));
  EXPECT_THAT(Message(ParseError(R"({"resourceList": [{"resourceName": "vf",
                "deviceType": "gpu"}]})")),
              HasSubstr("resourceList[0].deviceType: unknown device type \"gpu\""));
  EXPECT_THAT(Message(ParseError(R"({"resourceList": [{"resourceName": "vf",
                "allocationPolicy": "random"}]})")),
              HasSubstr("resourceList[0].allocationPolicy: unknown allocation policy \"random\""));
}

TEST(Config, UnknownFieldsAreErrorsSoTyposCannotWidenAPool) {
  EXPECT_THAT(Message(ParseError(R"({"resourceList": [{"resourceName": "vf", "selector": {}}]})")),
              HasSubstr("config resourceList[0]: unknown field \"selector\""));
  EXPECT_THAT(Message(ParseError(R"({"resourceList": [], "resourcelist": []})")),
              HasSubstr("config (top level): unknown field \"resourcelist\""));
  EXPECT_THAT(Message(ParseError(R"({"resources": []})")),
              HasSubstr("unknown field \"resources\""));
}

TEST(Config, MissingPiecesAreNamed) {
  EXPECT_EQ(Message(ParseError(R"({})")), "config (top level): missing \"resourceList\"");
  EXPECT_EQ(Message(ParseError(R"({"resourceList": [{"selectors": {}}]})")),
            "config resourceList[0]: missing \"resourceName\"");
}

TEST(Config, InvalidJsonSaysWhere) {
  const absl::Status status = ParseError(R"({"resourceList": [)");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(status), HasSubstr("config: invalid JSON: "));
  EXPECT_THAT(Message(status), HasSubstr("line 1, column 19"));
}

TEST(Config, SriovFeaturesNicflowLacksAreUnimplementedNotIgnored) {
  auto status = ParseError(R"({"resourceList": [{"resourceName": "sf",
      "deviceType": "auxNetDevice"}]})");
  EXPECT_EQ(status.code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(Message(status), HasSubstr("resourceList[0].deviceType: \"auxNetDevice\""));
  status = ParseError(R"({"resourceList": [{"resourceName": "vf",
      "selectors": {"ddpProfiles": ["GTPv1-C/U IPv4/IPv6 payload"]}}]})");
  EXPECT_EQ(status.code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(Message(status), HasSubstr("resourceList[0].selectors.ddpProfiles"));
}

TEST(Config, AcceleratorRejectsNetworkOnlySelectors) {
  EXPECT_THAT(Message(ParseError(R"({"resourceList": [{"resourceName": "fpga",
      "deviceType": "accelerator", "selectors": {"pfNames": ["ens1f0"]}}]})")),
              HasSubstr("resourceList[0].selectors.pfNames: only applies to deviceType "
                        "\"netDevice\""));
}

TEST(Config, PfNameRanges) {
  auto parsed = ParsePfName("ens1f0#0-3,5,9-10");
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->vf_ranges, (std::vector<VfRange>{{0, 3}, {5, 5}, {9, 10}}));
  for (const char* bad : {"ens1f0#", "ens1f0#a", "ens1f0#1-", "ens1f0#-1", "ens1f0#3-1",
                          "ens1f0#1,,2", "#1", "ens1f0#1-2-3", "ens1f0#70000"}) {
    EXPECT_FALSE(ParsePfName(bad).ok()) << bad;
  }
  EXPECT_EQ(ParsePfName("ens1f0#1-x").status().message(), "invalid VF range \"ens1f0#1-x\"");
}

TEST(Config, LoadConfigFileNamesTheFile) {
  testing::TempDir temp;
  const auto path = temp.path() / "config.json";
  auto missing = LoadConfigFile(path, "nicflow.io");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(missing.status()), HasSubstr(path.string()));
  std::ofstream(path) << R"({"resourceList": [{"resourceName": "vf", "selectors": {"x": 1}}]})";
  auto bad = LoadConfigFile(path, "nicflow.io");
  EXPECT_THAT(Message(bad.status()),
              HasSubstr(path.string() + ": config resourceList[0].selectors: unknown selector"));
}

}  // namespace
}  // namespace nicflow::device_plugin
