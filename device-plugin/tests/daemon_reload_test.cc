// Config reload on change: good configs apply without a restart, bad ones are rejected and the
// last good one stays in force.
#include <filesystem>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "test_util.h"

namespace nicflow::device_plugin::testing {
namespace {

constexpr char kPf0[] = "0000:3b:00.0";
constexpr char kPf1[] = "0000:3b:00.1";

constexpr char kBothPfs[] = R"({"resourceList": [
  {"resourceName": "vf", "selectors": {"vendors": ["15b3"]}}]})";
constexpr char kSplit[] = R"({"resourceList": [
  {"resourceName": "vf", "selectors": {"pfNames": ["ens1f0"]}},
  {"resourceName": "vf_b", "selectors": {"pfNames": ["ens1f1#0-1"]}}]})";

class DaemonReloadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    env_.sysfs().AddPf(ConnectXPf(kPf0, "ens1f0", 2));
    env_.sysfs().AddPf(ConnectXPf(kPf1, "ens1f1", 3));
  }

  std::optional<DeviceList> WaitForCount(const std::string& resource, size_t count,
                                         std::chrono::milliseconds timeout = 2s) {
    return env_.kubelet().WaitForDevices(
        resource, [&](const DeviceList& d) { return d.size() == count; }, timeout);
  }

  PluginEnv env_;
};

TEST_F(DaemonReloadTest, NewResourceIsServedAndRegisteredAndDevicesMove) {
  ASSERT_TRUE(env_.Start(kBothPfs).ok());
  ASSERT_TRUE(WaitForCount("nicflow.io/vf", 5, 5s));
  WriteFileAtomically(env_.config_path(), kSplit);
  ASSERT_TRUE(env_.kubelet().WaitForRegistrations("nicflow.io/vf_b", 1, 2s));
  EXPECT_TRUE(WaitForCount("nicflow.io/vf", 2));
  const auto moved = WaitForCount("nicflow.io/vf_b", 2);
  ASSERT_TRUE(moved.has_value());
  EXPECT_EQ((*moved)[0].id(), env_.sysfs().VfAddress(kPf1, 0));
  EXPECT_EQ((*moved)[1].id(), env_.sysfs().VfAddress(kPf1, 1));
}

TEST_F(DaemonReloadTest, RemovedResourceStopsServing) {
  ASSERT_TRUE(env_.Start(kSplit).ok());
  ASSERT_TRUE(WaitForCount("nicflow.io/vf_b", 2, 5s));
  WriteFileAtomically(env_.config_path(), kBothPfs);
  ASSERT_TRUE(WaitForCount("nicflow.io/vf", 5));
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (env_.kubelet().Watching("nicflow.io/vf_b") &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_FALSE(env_.kubelet().Watching("nicflow.io/vf_b"));
  EXPECT_FALSE(std::filesystem::exists(env_.kubelet_dir() / "nicflow.io_vf_b.sock"));
}

TEST_F(DaemonReloadTest, BadReloadIsRejectedAndTheLastGoodConfigStays) {
  ASSERT_TRUE(env_.Start(kSplit).ok());
  ASSERT_TRUE(WaitForCount("nicflow.io/vf_b", 2, 5s));
  const int updates = env_.kubelet().Updates("nicflow.io/vf_b");
  for (
      const char* bad : {
          R"({"resourceList": [{"resourceName": "vf", "selectors": {"vendor": ["15b3"]}}]})",
          R"({"resourceList": [{"resourceName": "vf", "selectors": {"pfNames": ["ens1f0#5-2"]}}]})",
          R"({"resourceList": [{"resourceName": "vf"}, {"resourceName": "vf"}]})",
          R"({"resourceList": [{"resourceName": "vf", "selectors": {"vendors": "15b3"}}]})",
          R"({"resourceList": [)",
      }) {
    WriteFileAtomically(env_.config_path(), bad);
  }
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(env_.kubelet().Updates("nicflow.io/vf_b"), updates);
  EXPECT_TRUE(env_.kubelet().Watching("nicflow.io/vf_b"));
  EXPECT_EQ(env_.kubelet().Devices("nicflow.io/vf").size(), 2u);
  const auto status = env_.daemon().Status();
  ASSERT_EQ(status.size(), 2u);
  EXPECT_EQ(status[1].resource_name, "nicflow.io/vf_b");
  // A good config after the bad ones applies.
  WriteFileAtomically(env_.config_path(), kBothPfs);
  EXPECT_TRUE(WaitForCount("nicflow.io/vf", 5));
}

TEST_F(DaemonReloadTest, ConfigMapSymlinkSwapIsNoticed) {
  // kubelet updates a ConfigMap volume by pointing the `..data` symlink at a new directory.
  const auto dir = env_.config_path().parent_path();
  std::filesystem::create_directories(dir / "..v1");
  WriteFileAtomically(dir / "..v1" / "config.json", kSplit);
  std::filesystem::create_directory_symlink("..v1", dir / "..data");
  std::filesystem::remove(env_.config_path());
  DaemonOptions options = env_.Options();
  options.config_path = dir / "config.json";
  std::filesystem::create_symlink("..data/config.json", options.config_path);
  ASSERT_TRUE(env_.kubelet().Start().ok());
  auto daemon = Daemon::Create(options);
  ASSERT_TRUE(daemon.ok()) << daemon.status();
  ASSERT_TRUE((*daemon)->Start().ok());
  ASSERT_TRUE(WaitForCount("nicflow.io/vf_b", 2, 5s));

  std::filesystem::create_directories(dir / "..v2");
  WriteFileAtomically(dir / "..v2" / "config.json", kBothPfs);
  std::filesystem::create_directory_symlink("..v2", dir / "..data_tmp");
  std::filesystem::rename(dir / "..data_tmp", dir / "..data");
  EXPECT_TRUE(WaitForCount("nicflow.io/vf", 5));
  (*daemon)->Stop();
}

TEST_F(DaemonReloadTest, ChangingPreStartCheckRegistersAgainWithTheNewOption) {
  ASSERT_TRUE(env_.Start(kBothPfs).ok());
  ASSERT_TRUE(env_.kubelet().WaitForRegistrations("nicflow.io/vf", 1, 5s));
  WriteFileAtomically(env_.config_path(), R"({"resourceList": [
      {"resourceName": "vf", "preStartCheck": true, "selectors": {"vendors": ["15b3"]}}]})");
  ASSERT_TRUE(env_.kubelet().WaitForRegistrations("nicflow.io/vf", 2, 2s));
  EXPECT_TRUE(env_.kubelet().registrations().back().options().pre_start_required());
}

}  // namespace
}  // namespace nicflow::device_plugin::testing
