#include <gtest/gtest.h>

#include "fpga_fixture.h"
#include "nicflow/hw/kernel_runtime.h"

namespace nicflow::hw {
namespace {

TEST(KernelRuntime, ListsThePoclDevice) {
  auto devices = ListDevices();
  ASSERT_TRUE(devices.ok()) << devices.status();
  ASSERT_FALSE(devices->empty());
}

TEST(KernelRuntime, UnknownDeviceErrorListsWhatIsAvailable) {
  DeviceSelector sel;
  sel.device = "no-such-device-xyz";
  auto rt = KernelRuntime::Open(sel);
  ASSERT_FALSE(rt.ok());
  EXPECT_EQ(rt.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(rt.status().message().find("available"), absl::string_view::npos);
}

TEST(KernelRuntime, MissingXclbinIsReported) {
  DeviceSelector sel;
  sel.xclbin = "/nonexistent/match_action.xclbin";
  auto rt = KernelRuntime::Open(sel);
  ASSERT_FALSE(rt.ok());
  EXPECT_EQ(rt.status().code(), absl::StatusCode::kUnavailable);
}

TEST(KernelRuntime, BuildsTheKernelFromSource) {
  FpgaPipeline& p = testing::SharedPipeline();
  EXPECT_TRUE(p.device().from_source);
  EXPECT_FALSE(p.device().device.empty());
}

}  // namespace
}  // namespace nicflow::hw
