// A DPDK process: EAL initialised without hugepages, a vdev port probed, and the fallback to
// software when the port has no flow API. EAL can be initialised once per process, so this is
// its own executable and one test fixture shares the EAL.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "nicflow/host/placement.h"
#include "nicflow/host/reconciler.h"
#include "nicflow/host/rteflow_device.h"
#include "test_programs.h"

namespace nicflow::host {
namespace {

using ::testing::HasSubstr;

class RteFlowEalTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto eal = RteFlowEal::Init(EalConfig::ForTests());
    ASSERT_TRUE(eal.ok()) << eal.status();
    eal_ = eal->release();
  }
  static void TearDownTestSuite() {
    delete eal_;
    eal_ = nullptr;
  }
  static RteFlowEal* eal_;
};
RteFlowEal* RteFlowEalTest::eal_ = nullptr;

TEST_F(RteFlowEalTest, InitialisesOnceAndFindsTheVdevPort) {
  ASSERT_NE(eal_, nullptr);
  EXPECT_EQ(eal_->Ports(), std::vector<uint16_t>{0});
  auto again = RteFlowEal::Init(EalConfig::ForTests());
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_FALSE(eal_->Probe(7).ok());
}

TEST_F(RteFlowEalTest, PortWithoutFlowApiIsReportedAndEverythingFallsBackToSoftware) {
  ASSERT_TRUE(eal_->StartPort(0).ok());
  auto probe = eal_->Probe(0);
  ASSERT_TRUE(probe.ok()) << probe.status();
  EXPECT_EQ(probe->driver, "net_null");
  EXPECT_FALSE(probe->flow_api);
  EXPECT_FALSE(probe->template_api);
  // rte_flow_error's type and cause reach the message.
  EXPECT_THAT(probe->error, HasSubstr("(type "));
  EXPECT_THAT(probe->error,
              ::testing::AnyOf(HasSubstr("not implemented"), HasSubstr("not supported")));
  EXPECT_THAT(probe->ToText(), HasSubstr("everything runs in software"));

  auto dev = RteFlowDevice::Open(*eal_, 0);
  ASSERT_TRUE(dev.ok()) << dev.status();
  EXPECT_FALSE((*dev)->capabilities().flow_api);
  const auto program = testing::ClusterProgram(1);
  auto placed = Place((*dev)->capabilities(), program, (*dev)->name());
  ASSERT_TRUE(placed.ok()) << placed.status();
  EXPECT_EQ(placed->report.EntriesOnDevice(), 0u);
  EXPECT_EQ(placed->report.EntriesInSoftware(), program.EntryCount());
  for (const auto& t : placed->report.tables) EXPECT_EQ(t.where, Where::kSoftware) << t.name;
  EXPECT_THAT(placed->report.ToText(), HasSubstr("no flow API"));
  EXPECT_EQ(placed->report.ToJson()["flow_api"], false);

  // The device refuses programs rather than pretending to hold them.
  auto st = (*dev)->Install(program);
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(st.message()), HasSubstr("no flow API"));
  Reconciler r(**dev);
  EXPECT_FALSE(r.Converge(program).ok());
}

}  // namespace
}  // namespace nicflow::host
