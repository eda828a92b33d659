// nicflowd on the FPGA backend (hw/ on PoCL here): the config takes `backend.type: fpga` when hw/
// is built and names the field when it is not; with it, the shop example installs and the
// control API's queries work against the FPGA device.
#include <gtest/gtest.h>

#include "agent_test_util.h"
#include "nicflow/agent/agent.h"
#include "nicflow/agent/config.h"
#include "nicflow/host/fpga_device.h"
#include "nicflow/sim/packet.h"

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
  ASSERT_TRUE(backend->stats) << "the FPGA backend reports datapath stats";
  auto* fpga = dynamic_cast<host::FpgaDevice*>(backend->device.get());
  ASSERT_NE(fpga, nullptr);

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

  // Packets through the kernel show up in `nicflow stats` and the metrics: a client on the
  // uplink opens a connection to web's NodePort (forwarded, one connection), sends its second
  // packet (a conntrack hit), and a truncated frame (a parse error, dropped).
  hw::FpgaPipeline& pipe = fpga->pipeline();
  uint32_t uplink = 0;
  while (uplink < pipe.image().ports().size() &&
         pipe.image().ports()[uplink].ToString() != "uplink") {
    ++uplink;
  }
  ASSERT_LT(uplink, pipe.image().ports().size());
  sim::PacketSpec spec;
  spec.src = *flowtables::IpAddr::Parse("203.0.113.7");
  spec.dst = *flowtables::IpAddr::Parse("192.168.10.11");  // node-a
  spec.src_port = 40000;
  spec.dst_port = 30080;
  std::vector<hw::FpgaPacket> pk(3);
  pk[0].frame = *sim::BuildPacket(spec);
  spec.tcp_flags = sim::kTcpAck;
  pk[1].frame = *sim::BuildPacket(spec);
  pk[2].frame.assign(pk[1].frame.begin(), pk[1].frame.begin() + 20);
  for (hw::FpgaPacket& p : pk) {
    p.in_port = uplink;
    p.port_class = static_cast<uint8_t>(flowtables::PortClass::kUplink);
  }
  ASSERT_TRUE(pipe.ProcessBatch({pk.data(), 1}).ok());
  ASSERT_TRUE(pipe.ProcessBatch({pk.data() + 1, 2}).ok());
  EXPECT_EQ(pk[0].result.verdict, hw::FpgaVerdict::kForward);
  EXPECT_EQ(pk[1].result.verdict, hw::FpgaVerdict::kForward);
  EXPECT_EQ(pk[2].result.verdict, hw::FpgaVerdict::kDrop);

  const nlohmann::json d = agent.StatsJson()["datapath"];
  EXPECT_EQ(d["rx_packets"], 3) << d;
  EXPECT_EQ(d["forwarded"], 2) << d;
  EXPECT_EQ(d["dropped"], 1) << d;
  EXPECT_EQ(d["rejected"], 0) << d;
  EXPECT_EQ(d["punted"], 0) << d;
  EXPECT_EQ(d["conntrack_entries"], 1) << d;
  EXPECT_EQ(d["conntrack_capacity"], hw::ImageGeometry{}.ct_connections) << d;
  const std::string metrics = agent.MetricsText();
  EXPECT_NE(
      metrics.find("nicflow_conntrack_entries{device=\"" + std::string(fpga->name()) + "\"} 1"),
      std::string::npos)
      << metrics;
}

#endif

}  // namespace
}  // namespace nicflow::agent
