// Registration through the kubelet plugin watcher (plugins_registry).
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "test_util.h"

namespace nicflow::device_plugin::testing {
namespace {

constexpr char kPf[] = "0000:5e:00.0";
constexpr char kConfig[] = R"({"resourceList": [
  {"resourceName": "e810", "selectors": {"drivers": ["vfio-pci"]}}]})";

class PluginWatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    env_.sysfs().AddPf(E810VfioPf(kPf, "ens2f0", 2));
    DaemonOptions options = env_.Options();
    options.registration_mode = RegistrationMode::kPluginWatcher;
    ASSERT_TRUE(env_.Start(kConfig, options, /*start_kubelet=*/false).ok());
    socket_ = env_.registry_dir() / "nicflow.io_e810.sock";
    ASSERT_TRUE(std::filesystem::exists(socket_));
  }

  PluginEnv env_;
  std::filesystem::path socket_;
};

TEST_F(PluginWatcherTest, GetInfoDescribesADevicePluginAndTheKubeletCanUseIt) {
  const auto info = env_.kubelet().RegisterThroughWatcher(socket_);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->type(), "DevicePlugin");
  EXPECT_EQ(info->name(), "nicflow.io/e810");
  EXPECT_THAT(info->supported_versions(), ::testing::ElementsAre("v1beta1"));
  EXPECT_TRUE(info->endpoint().empty());
  const auto devices = env_.kubelet().WaitForDevices(
      "nicflow.io/e810", [](const DeviceList& d) { return d.size() == 2; }, 2s);
  ASSERT_TRUE(devices.has_value());
  const auto response =
      env_.kubelet().Allocate("nicflow.io/e810", {{env_.sysfs().VfAddress(kPf, 1)}});
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->container_responses(0).devices(1).host_path(), "/dev/vfio/101");
  ASSERT_EQ(env_.daemon().Status().size(), 1u);
  EXPECT_TRUE(env_.daemon().Status()[0].registered);
  // No kubelet.sock registration in this mode.
  EXPECT_TRUE(env_.kubelet().registrations().empty());
}

TEST_F(PluginWatcherTest, RejectedRegistrationIsRecorded) {
  const auto info = env_.kubelet().RegisterThroughWatcher(socket_, /*accept=*/false);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_FALSE(env_.daemon().Status()[0].registered);
}

TEST_F(PluginWatcherTest, DeletedSocketIsRecreatedForTheWatcher) {
  std::filesystem::remove(socket_);
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!std::filesystem::exists(socket_) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_TRUE(std::filesystem::exists(socket_));
  EXPECT_TRUE(env_.kubelet().RegisterThroughWatcher(socket_).ok());
}

}  // namespace
}  // namespace nicflow::device_plugin::testing
