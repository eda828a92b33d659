// nicflowd on the FPGA backend (hw/ on PoCL here): the config takes `backend.type: fpga` when hw/
// is built and names the field when it is not; with it, the shop example installs and the
// control API's queries work against the FPGA device.
#include <gtest/gtest.h>

#include "agent_test_util.h"
#include "nicflow/agent/agent.h"
#include "nicflow/agent/config.h"
#include "nicflow/host/fpga_device.h"

namespace nicflow::agent {
namespace {

using testing::TempDir;

constexpr const char* kFpgaConfig =
    "backend: {type: fpga, platform: \"\"}\ninputs: {manifests: /m, pod_resources_socket: \"\"}\n";

#ifndef NICFLOW_HOST_HAVE_FPGA

TEST(FpgaBackend, ConfigNamesTheFieldWhenHwIsNotBuilt) {
  auto c = ParseConfig(kFpgaConfig, "nicflowd.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(c.status().message().substr(0, 35), "nicflowd.yaml: backend.type: fpga: ")
      << c.status();
  EXPECT_NE(c.status().message().find("does not include the FPGA backend"),
            absl::string_view::npos);
  EXPECT_FALSE(FpgaBackendBuilt());
}

#else

TEST(FpgaBackend, InstallsTheShopExampleAndAnswersStatusAndDumpFlows) {
  auto parsed = ParseConfig(kFpgaConfig, "nicflowd.yaml");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->backend.kind, BackendKind::kFpga);
  auto backend = OpenBackend(parsed->backend);
  ASSERT_TRUE(backend.ok()) << backend.status();

  TempDir dir;
  AgentConfig c = testing::ShopConfig(dir);
  c.backend = parsed->backend;
  c.inputs.pod_resources_socket.clear();
  Agent agent(c, *std::move(backend));
  ASSERT_TRUE(agent.Sync("start").ok()) << agent.StatusJson()["last_error"];

  nlohmann::json st = agent.StatusJson();
  EXPECT_TRUE(st["healthy"].get<bool>()) << st;
  EXPECT_EQ(st["backend"], "fpga");
  EXPECT_GT(st["installed"]["entries"].get<size_t>(), 20u) << st;
  EXPECT_EQ(st["installed"]["pod_ports"], 3) << st;

  auto dump = agent.DumpFlowsJson("");
  ASSERT_TRUE(dump.ok()) << dump.status();
  size_t entries = 0;
  for (const auto& t : (*dump)["tables"]) entries += t["entries"].size();
  EXPECT_EQ(entries, st["installed"]["entries"].get<size_t>());
  auto diff = agent.DiffJson();
  ASSERT_TRUE(diff.ok()) << diff.status();
  EXPECT_TRUE((*diff)["in_sync"].get<bool>()) << *diff;

  // A manifest change goes to the FPGA as a delta.
  testing::WriteFile(c.inputs.manifests_dir + "/extra.yaml", testing::kExtraService);
  ASSERT_TRUE(agent.Sync("manifests changed").ok()) << agent.StatusJson()["last_error"];
  EXPECT_GT(agent.StatusJson()["installed"]["entries"].get<size_t>(),
            st["installed"]["entries"].get<size_t>());
  EXPECT_EQ(agent.StatusJson()["last_report"]["entries"]["added"], 2);
}

#endif

}  // namespace
}  // namespace nicflow::agent
