#include "nicflow/device_plugin/preferred_allocation.h"

#include <algorithm>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace nicflow::device_plugin {
namespace {

using ::testing::ElementsAre;
using ::testing::UnorderedElementsAre;

// Builds a pool: for each PF (by bus number), `count` VFs on `numa`. Addresses
// "0000:<bus>:00.<vf>"; PF addresses "0000:<bus>:00.0-pf".
class Pool {
 public:
  Pool& Pf(const std::string& bus, int count, int numa) {
    for (int i = 0; i < count; ++i) {
      TrackedDevice device;
      device.vf.pci_address = "0000:" + bus + ":00." + std::to_string(i);
      device.vf.pf_address = "pf-" + bus;
      device.vf.vf_index = i;
      device.vf.numa_node = numa;
      devices_.push_back(device);
    }
    std::sort(devices_.begin(), devices_.end(),
              [](const auto& a, const auto& b) { return a.vf.pci_address < b.vf.pci_address; });
    return *this;
  }
  Pool& Unhealthy(const std::string& id) {
    for (auto& device : devices_) {
      if (device.vf.pci_address == id) device.health = Health::kUnhealthy;
    }
    return *this;
  }
  std::vector<std::string> Ids() const {
    std::vector<std::string> ids;
    for (const auto& device : devices_) ids.push_back(device.vf.pci_address);
    return ids;
  }
  std::vector<std::string> Choose(AllocationPolicy policy, int size,
                                  std::vector<std::string> must = {}) const {
    return ChoosePreferredAllocation(policy, devices_, {Ids(), std::move(must), size});
  }

 private:
  std::vector<TrackedDevice> devices_;
};

constexpr auto kSpread = AllocationPolicy::kSpread;
constexpr auto kPack = AllocationPolicy::kPack;

TEST(PreferredAllocation, PicksTheSmallestNumaNodeThatFits) {
  const Pool pool = Pool().Pf("3b", 2, 0).Pf("5e", 4, 1);
  EXPECT_THAT(pool.Choose(kPack, 2), ElementsAre("0000:3b:00.0", "0000:3b:00.1"));
  EXPECT_THAT(pool.Choose(kPack, 3), ElementsAre("0000:5e:00.0", "0000:5e:00.1", "0000:5e:00.2"));
}

TEST(PreferredAllocation, MustIncludeChoosesTheNumaNode) {
  const Pool pool = Pool().Pf("3b", 2, 0).Pf("5e", 4, 1);
  EXPECT_THAT(pool.Choose(kPack, 2, {"0000:5e:00.3"}), ElementsAre("0000:5e:00.3", "0000:5e:00.0"));
}

TEST(PreferredAllocation, SpillsAcrossNumaNodesOnlyWhenNoneFits) {
  const Pool pool = Pool().Pf("3b", 2, 0).Pf("5e", 3, 1);
  const auto chosen = pool.Choose(kPack, 4);
  EXPECT_THAT(chosen, ElementsAre("0000:5e:00.0", "0000:5e:00.1", "0000:5e:00.2", "0000:3b:00.0"));
}

TEST(PreferredAllocation, SpreadTakesOneVfPerPfInTurn) {
  const Pool pool = Pool().Pf("3b", 4, 0).Pf("3c", 4, 0).Pf("3d", 2, 0);
  EXPECT_THAT(pool.Choose(kSpread, 3),
              UnorderedElementsAre("0000:3b:00.0", "0000:3c:00.0", "0000:3d:00.0"));
  const auto four = pool.Choose(kSpread, 4);
  EXPECT_EQ(four.size(), 4u);
  EXPECT_EQ(std::count_if(four.begin(), four.end(),
                          [](const std::string& id) { return id.starts_with("0000:3d"); }),
            1);
}

TEST(PreferredAllocation, PackUsesAsFewPfsAsPossibleWithBestFit) {
  const Pool pool = Pool().Pf("3b", 4, 0).Pf("3c", 2, 0);
  // Two fit on either PF; the smaller one keeps the bigger PF whole.
  EXPECT_THAT(pool.Choose(kPack, 2), ElementsAre("0000:3c:00.0", "0000:3c:00.1"));
  // Three only fit on 3b.
  EXPECT_THAT(pool.Choose(kPack, 3), ElementsAre("0000:3b:00.0", "0000:3b:00.1", "0000:3b:00.2"));
  // Five need both: largest first.
  EXPECT_EQ(pool.Choose(kPack, 5).front(), "0000:3b:00.0");
}

TEST(PreferredAllocation, PackStaysOnThePfOfMustIncludeDevices) {
  const Pool pool = Pool().Pf("3b", 4, 0).Pf("3c", 2, 0);
  EXPECT_THAT(pool.Choose(kPack, 2, {"0000:3b:00.2"}), ElementsAre("0000:3b:00.2", "0000:3b:00.0"));
}

TEST(PreferredAllocation, PfWithVfsOnTwoNumaNodes) {
  // One PF whose VFs sit on two NUMA nodes (VF 0 on node 0, VFs 1-3 on node 1).
  std::vector<TrackedDevice> devices;
  for (int i = 0; i < 4; ++i) {
    TrackedDevice device;
    device.vf.pci_address = "0000:3b:00." + std::to_string(i);
    device.vf.pf_address = "0000:3a:00.0";
    device.vf.vf_index = i;
    device.vf.numa_node = i < 1 ? 0 : 1;
    devices.push_back(device);
  }
  const auto chosen = ChoosePreferredAllocation(
      kSpread, devices, {{"0000:3b:00.0", "0000:3b:00.1", "0000:3b:00.2", "0000:3b:00.3"}, {}, 2});
  EXPECT_THAT(chosen, ElementsAre("0000:3b:00.1", "0000:3b:00.2"));
}

TEST(PreferredAllocation, UnhealthyAndUnknownDevicesAreALastResort) {
  const Pool pool = Pool().Pf("3b", 2, 0).Unhealthy("0000:3b:00.0");
  std::vector<std::string> available = pool.Ids();
  available.push_back("0000:99:00.0");
  auto chosen = ChoosePreferredAllocation(kPack, {}, {available, {}, 1});
  EXPECT_EQ(chosen.size(), 1u);
  const Pool healthy_first = Pool().Pf("3b", 2, 0).Unhealthy("0000:3b:00.0");
  EXPECT_THAT(healthy_first.Choose(kPack, 1), ElementsAre("0000:3b:00.1"));
  EXPECT_THAT(healthy_first.Choose(kPack, 2), ElementsAre("0000:3b:00.1", "0000:3b:00.0"));
}

TEST(PreferredAllocation, NeverMoreThanAvailable) {
  const Pool pool = Pool().Pf("3b", 2, 0);
  EXPECT_EQ(pool.Choose(kSpread, 5).size(), 2u);
  EXPECT_TRUE(pool.Choose(kSpread, 0).empty());
}

}  // namespace
}  // namespace nicflow::device_plugin
