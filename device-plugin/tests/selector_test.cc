#include "nicflow/device_plugin/selector.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace nicflow::device_plugin {
namespace {

VfDevice MellanoxVf(int index) {
  VfDevice vf;
  vf.pci_address = "0000:3c:00." + std::to_string(index);
  vf.vendor_id = "15b3";
  vf.device_id = "101e";
  vf.class_code = "020000";
  vf.driver = "mlx5_core";
  vf.pf_address = "0000:3b:00.0";
  vf.pf_netdev = "ens1f0";
  vf.vf_index = index;
  vf.link_type = LinkType::kEther;
  vf.acpi_index = "101";
  vf.rdma = {RdmaDevice{"mlx5_2", {}}};
  return vf;
}

Selector Parse(const std::string& json) {
  auto config = ParseConfig(
      R"({"resourceList": [{"resourceName": "r", "selectors": )" + json + "}]}", "nicflow.io");
  EXPECT_TRUE(config.ok()) << config.status();
  return config->resources[0].selectors[0];
}

bool Matches(const std::string& selector_json, const VfDevice& vf) {
  return SelectorMatches(Parse(selector_json), DeviceType::kNetDevice, vf);
}

TEST(Selector, EachSelectorKind) {
  const VfDevice vf = MellanoxVf(2);
  EXPECT_TRUE(Matches(R"({})", vf));
  EXPECT_TRUE(Matches(R"({"vendors": ["8086", "15B3"]})", vf));
  EXPECT_FALSE(Matches(R"({"vendors": ["8086"]})", vf));
  EXPECT_TRUE(Matches(R"({"devices": ["101e"]})", vf));
  EXPECT_FALSE(Matches(R"({"devices": ["101d"]})", vf));
  EXPECT_TRUE(Matches(R"({"drivers": ["mlx5_core"]})", vf));
  EXPECT_FALSE(Matches(R"({"drivers": ["vfio-pci"]})", vf));
  EXPECT_TRUE(Matches(R"({"pciAddresses": ["0000:3c:00.2"]})", vf));
  EXPECT_FALSE(Matches(R"({"pciAddresses": ["0000:3c:00.3"]})", vf));
  EXPECT_TRUE(Matches(R"({"rootDevices": ["0000:3b:00.0"]})", vf));
  EXPECT_FALSE(Matches(R"({"rootDevices": ["0000:3b:00.1"]})", vf));
  EXPECT_TRUE(Matches(R"({"linkTypes": ["ether"]})", vf));
  EXPECT_FALSE(Matches(R"({"linkTypes": ["infiniband"]})", vf));
  EXPECT_TRUE(Matches(R"({"isRdma": true})", vf));
  EXPECT_FALSE(Matches(R"({"isRdma": false})", vf));
  EXPECT_TRUE(Matches(R"({"acpiIndexes": ["101"]})", vf));
  EXPECT_FALSE(Matches(R"({"acpiIndexes": ["102"]})", vf));
}

TEST(Selector, PfNamesWithVfRanges) {
  EXPECT_TRUE(Matches(R"({"pfNames": ["ens1f0"]})", MellanoxVf(7)));
  EXPECT_TRUE(Matches(R"({"pfNames": ["ens1f0#0-3,7"]})", MellanoxVf(7)));
  EXPECT_TRUE(Matches(R"({"pfNames": ["ens1f0#0-3"]})", MellanoxVf(3)));
  EXPECT_FALSE(Matches(R"({"pfNames": ["ens1f0#0-3"]})", MellanoxVf(4)));
  EXPECT_FALSE(Matches(R"({"pfNames": ["ens1f1"]})", MellanoxVf(0)));
  EXPECT_TRUE(Matches(R"({"pfNames": ["ens1f1", "ens1f0#2"]})", MellanoxVf(2)));
}

TEST(Selector, AllListedSelectorsMustMatch) {
  EXPECT_TRUE(Matches(R"({"vendors": ["15b3"], "drivers": ["mlx5_core"]})", MellanoxVf(0)));
  EXPECT_FALSE(Matches(R"({"vendors": ["15b3"], "drivers": ["vfio-pci"]})", MellanoxVf(0)));
}

TEST(Selector, NetDeviceNeedsANetworkClassAcceleratorDoesNot) {
  VfDevice fpga = MellanoxVf(0);
  fpga.vendor_id = "10ee";
  fpga.class_code = "120000";  // processing accelerator
  EXPECT_FALSE(SelectorMatches(Selector{}, DeviceType::kNetDevice, fpga));
  EXPECT_TRUE(SelectorMatches(Selector{}, DeviceType::kAccelerator, fpga));
  VfDevice infiniband = MellanoxVf(0);
  infiniband.class_code = "020700";
  EXPECT_TRUE(SelectorMatches(Selector{}, DeviceType::kNetDevice, infiniband));
}

TEST(Selector, AlternativesAreOred) {
  auto config = ParseConfig(R"({"resourceList": [{"resourceName": "r",
      "selectors": [{"pciAddresses": ["0000:3c:00.1"]}, {"pfNames": ["ens1f0#3"]}]}]})",
                            "nicflow.io");
  ASSERT_TRUE(config.ok());
  const ResourceConfig& resource = config->resources[0];
  EXPECT_TRUE(ResourceSelects(resource, MellanoxVf(1)));
  EXPECT_FALSE(ResourceSelects(resource, MellanoxVf(2)));
  EXPECT_TRUE(ResourceSelects(resource, MellanoxVf(3)));
}

TEST(Selector, ADeviceJoinsOnlyTheFirstResourceThatSelectsIt) {
  auto config = ParseConfig(R"({"resourceList": [
      {"resourceName": "low", "selectors": {"pfNames": ["ens1f0#0-1"]}},
      {"resourceName": "all", "selectors": {"vendors": ["15b3"]}}]})",
                            "nicflow.io");
  ASSERT_TRUE(config.ok());
  std::vector<TrackedDevice> devices;
  for (int i = 0; i < 4; ++i) devices.push_back(TrackedDevice{MellanoxVf(i), Health::kHealthy, ""});
  std::vector<std::string> overlaps;
  const auto pools = AssignToResources(*config, devices, &overlaps);
  ASSERT_EQ(pools.size(), 2u);
  EXPECT_EQ(pools[0].size(), 2u);
  EXPECT_EQ(pools[1].size(), 2u);
  EXPECT_EQ(pools[1][0].vf.pci_address, "0000:3c:00.2");
  EXPECT_THAT(overlaps, ::testing::ElementsAre(
                            "0000:3c:00.0 matches nicflow.io/low and nicflow.io/all; kept in "
                            "nicflow.io/low",
                            "0000:3c:00.1 matches nicflow.io/low and nicflow.io/all; kept in "
                            "nicflow.io/low"));
}

}  // namespace
}  // namespace nicflow::device_plugin
