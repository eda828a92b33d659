// The agent against a manifests directory: deltas on change, last good state kept on bad input,
// restart without flush through a separate simulated NIC, metrics over loopback.
#include "nicflow/agent/agent.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <functional>
#include <mutex>

#include "agent_test_util.h"
#include "nicflow/agent/simnic.h"
#include "nicflow/flowtables/ir.h"
#include "nicflow/flowtables/loader.h"
#include "nicflow/host/sim_device.h"
#include "nicflow/sim/packet.h"
#include "nicflow/sim/profile.h"

namespace nicflow::agent {
namespace {

using testing::TempDir;
using testing::WaitForEvent;
using testing::WriteFile;

Backend InProcessSim() {
  BackendConfig b;
  b.profile = "unlimited";
  auto backend = OpenBackend(b);
  EXPECT_TRUE(backend.ok()) << backend.status();
  return *std::move(backend);
}

size_t InstalledEntries(const Agent& a) {
  return a.StatusJson()["installed"]["entries"].get<size_t>();
}

bool HasOrigin(const nlohmann::json& dump, const std::string& name) {
  for (const auto& t : dump["tables"]) {
    for (const auto& e : t["entries"]) {
      if (e["origin"]["name"] == name) return true;
    }
  }
  return false;
}

TEST(AgentConfig, ParsesEveryKeyAndNamesAnUnknownOne) {
  auto c = ParseConfig(R"(
node: worker-1
backend: {type: sim, profile: connectx6dx, simnic_socket: /run/s.sock}
inputs: {manifests: /etc/m}
control: {socket: /run/n.sock, mode: "0660"}
metrics: {address: "127.0.0.1:9464"}
reconcile: {debounce_ms: 5, resync_s: 0}
)",
                       "nicflowd.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->node, "worker-1");
  EXPECT_EQ(c->backend.profile, "connectx6dx");
  EXPECT_EQ(c->control_socket_mode, 0660u);
  EXPECT_EQ(c->debounce_ms, 5u);

  auto bad = ParseConfig("inputs: {manifests: /m, manifest_dir: /x}\n", "cfg.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "cfg.yaml: inputs.manifest_dir: unknown key");
  auto backend = ParseConfig("backend: {type: dpdk}\ninputs: {manifests: /m}\n", "cfg.yaml");
  ASSERT_FALSE(backend.ok());
  EXPECT_NE(backend.status().message().find("backend.type: unknown backend \"dpdk\""),
            absl::string_view::npos);
  EXPECT_FALSE(ParseConfig("control: {mode: \"0999\"}\ninputs: {manifests: /m}\n", "c").ok());
  EXPECT_FALSE(ParseConfig("node: x\n", "c").ok()) << "no input is an error";
  auto minimal = ParseConfig("inputs: {manifests: /m}\n", "c");
  ASSERT_TRUE(minimal.ok()) << minimal.status();
  EXPECT_EQ(minimal->debounce_ms, 100u) << "absent sections keep their defaults";
  EXPECT_EQ(minimal->control_socket, "/run/nicflow/nicflowd.sock");
}

TEST(Agent, AppliesAManifestChangeAsADelta) {
  TempDir dir;
  AgentConfig config = testing::ShopConfig(dir);
  Agent agent(config, InProcessSim());
  ASSERT_TRUE(agent.Start().ok());
  ASSERT_TRUE(agent.StatusJson()["healthy"].get<bool>()) << agent.StatusJson().dump(2);
  size_t before = InstalledEntries(agent);
  ASSERT_GT(before, 0u);
  uint64_t seq = agent.events().last_seq();

  WriteFile(config.inputs.manifests_dir + "/extra.yaml", testing::kExtraService);
  Event e = WaitForEvent(agent.events(), seq, "applied");
  ASSERT_NE(e.seq, 0u) << "no applied event after writing a manifest";
  EXPECT_NE(e.message.find("manifests changed"), std::string::npos) << e.message;
  EXPECT_GT(e.detail["entries"]["added"].get<size_t>(), 0u);
  EXPECT_EQ(e.detail["entries"]["deleted"].get<size_t>(), 0u);
  EXPECT_FALSE(e.detail["reinstalled"].get<bool>()) << "a new Service is a delta, not a reinstall";
  EXPECT_GT(InstalledEntries(agent), before);
  auto dump = agent.DumpFlowsJson("");
  ASSERT_TRUE(dump.ok());
  EXPECT_TRUE(HasOrigin(*dump, "extra"));

  seq = agent.events().last_seq();
  std::filesystem::remove(config.inputs.manifests_dir + "/extra.yaml");
  e = WaitForEvent(agent.events(), seq, "applied");
  ASSERT_NE(e.seq, 0u);
  EXPECT_GT(e.detail["entries"]["deleted"].get<size_t>(), 0u);
  EXPECT_EQ(InstalledEntries(agent), before);
  agent.Stop();
}

TEST(Agent, KeepsTheLastGoodProgramOnABadManifestAndCountsIt) {
  TempDir dir;
  AgentConfig config = testing::ShopConfig(dir);
  Agent agent(config, InProcessSim());
  ASSERT_TRUE(agent.Start().ok());
  size_t good = InstalledEntries(agent);
  uint64_t seq = agent.events().last_seq();

  WriteFile(config.inputs.manifests_dir + "/bad.yaml", R"(apiVersion: v1
kind: Service
metadata: {name: broken, namespace: shop}
spec:
  clusterIP: 10.96.0.124
  ports: [{name: http, port: 80, targetPort: 70000}]
)");
  Event e = WaitForEvent(agent.events(), seq, "load-failed");
  ASSERT_NE(e.seq, 0u) << "a bad manifest must be reported";
  EXPECT_TRUE(e.error);
  EXPECT_NE(e.message.find("bad.yaml"), std::string::npos) << "names the file: " << e.message;
  EXPECT_NE(e.message.find("70000"), std::string::npos) << e.message;
  nlohmann::json status = agent.StatusJson();
  EXPECT_FALSE(status["healthy"].get<bool>());
  EXPECT_EQ(InstalledEntries(agent), good) << "the last good program stays installed";
  EXPECT_EQ(agent.StatsJson()["sync"]["errors_by_stage"]["load"], 1);
  EXPECT_NE(agent.MetricsText().find("nicflow_sync_errors_total{stage=\"load\"} 1"),
            std::string::npos);
  auto diff = agent.DiffJson();
  ASSERT_TRUE(diff.ok());
  EXPECT_TRUE((*diff)["in_sync"].get<bool>()) << "device still matches the last good program";

  // Fixing the file recovers.
  seq = agent.events().last_seq();
  WriteFile(config.inputs.manifests_dir + "/bad.yaml", testing::kExtraService);
  e = WaitForEvent(agent.events(), seq, "applied");
  ASSERT_NE(e.seq, 0u);
  EXPECT_TRUE(agent.StatusJson()["healthy"].get<bool>());
  agent.Stop();
}

TEST(Agent, KeepsTheLastGoodProgramWhenTheDeviceRefusesTheDelta) {
  TempDir dir;
  AgentConfig config = testing::ShopConfig(dir);
  sim::DeviceProfile profile = *sim::BuiltinProfile("unlimited");
  auto nic = sim::SimNic::Create(profile);
  Backend b;
  b.device = std::make_unique<host::SimDevice>(*nic);
  Agent agent(config, std::move(b));
  ASSERT_TRUE(agent.Sync("test").ok());
  size_t good = InstalledEntries(agent);
  flowtables::Program before = nic->installed();

  WriteFile(config.inputs.manifests_dir + "/extra.yaml", testing::kExtraService);
  nic->InjectFault(2, absl::UnavailableError("injected: device busy"));
  absl::Status st = agent.Sync("test");
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("device busy"), absl::string_view::npos) << st;
  EXPECT_EQ(InstalledEntries(agent), good);
  auto d = flowtables::Diff(before, nic->installed());
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(d->empty()) << "the partial apply was rolled back";
  std::vector<Event> events = agent.events().Last(1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, "apply-failed");
  EXPECT_EQ(agent.StatsJson()["sync"]["errors_by_stage"]["apply"], 1);

  nic->ClearFaults();
  EXPECT_TRUE(agent.Sync("retry").ok());
  EXPECT_GT(InstalledEntries(agent), good);
}

// What a full compile of the manifests directory gives for node-a: the oracle the incremental
// path must match entry for entry.
flowtables::Program FullCompile(const AgentConfig& config) {
  flowtables::ClusterState state;
  EXPECT_TRUE(flowtables::LoadPaths({config.inputs.manifests_dir}, {}, state).ok());
  flowtables::CompileOptions options;
  options.node_name = config.node;
  auto compiled = flowtables::Compile(state, options);
  EXPECT_TRUE(compiled.ok()) << compiled.status();
  return compiled.ok() ? compiled->program : flowtables::Program{};
}

// Syncs after a manifest change; returns the sync's event detail (the reconciler's report plus
// how it compiled).
nlohmann::json SyncAndReport(Agent& agent) {
  EXPECT_TRUE(agent.Sync("manifests changed").ok());
  std::vector<Event> last = agent.events().Last(1);
  return last.empty() ? nlohmann::json() : last[0].detail;
}

TEST(Agent, CompilesAOneFileChangeIncrementallyAndInstallsWhatAFullCompileWould) {
  TempDir dir;
  AgentConfig config = testing::ShopConfig(dir);
  auto nic = sim::SimNic::Create(*sim::BuiltinProfile("unlimited"));
  Backend b;
  b.device = std::make_unique<host::SimDevice>(*nic);
  Agent agent(config, std::move(b));
  ASSERT_TRUE(agent.Sync("start").ok());
  const size_t shop_entries = InstalledEntries(agent);
  auto installed_is_full_compile = [&](const std::string& step) {
    auto d = flowtables::Diff(nic->installed(), FullCompile(config));
    ASSERT_TRUE(d.ok()) << step << ": " << d.status();
    EXPECT_TRUE(d->empty()) << step << ": the device holds what a full compile gives; "
                            << d->ops.size() << " ops differ";
  };
  installed_is_full_compile("start");
  const std::string m = config.inputs.manifests_dir;

  struct Step {
    std::string name;
    std::function<void()> change;
  };
  const std::vector<Step> steps = {
      {"a new Service file", [&] { WriteFile(m + "/extra.yaml", testing::kExtraService); }},
      {"the Service's port changed",
       [&] {
         std::string svc = testing::kExtraService;
         svc.replace(svc.find("port: 81"), 8, "port: 82");
         WriteFile(m + "/extra.yaml", svc);
       }},
      {"a new NetworkPolicy file",
       [&] {
         WriteFile(m + "/policy.yaml", R"(apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-from-cart, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{from: [{podSelector: {matchLabels: {app: cart}}}], ports: [{port: 9999}]}]
)");
       }},
      {"the NetworkPolicy file removed", [&] { std::filesystem::remove(m + "/policy.yaml"); }},
      {"the Service file removed", [&] { std::filesystem::remove(m + "/extra.yaml"); }},
  };
  for (const Step& step : steps) {
    step.change();
    const nlohmann::json report = SyncAndReport(agent);
    EXPECT_EQ(report.value("compile", ""), "incremental") << step.name;
    EXPECT_TRUE(report.value("pushed_delta", false))
        << step.name << ": one object changed, its delta went to the device as it is";
    EXPECT_FALSE(report.value("read_back", true)) << step.name;
    const size_t ops = report.value("ops_applied", size_t{0});
    EXPECT_GT(ops, 0u) << step.name;
    EXPECT_LE(ops, 12u) << step.name << ": a small delta, not a reinstall of " << shop_entries;
    installed_is_full_compile(step.name);
  }
  EXPECT_EQ(InstalledEntries(agent), shop_entries);

  // A bad file fails the load and changes nothing; removing it is no change at all.
  WriteFile(m + "/bad.yaml", "kind: Service\nmetadata: {name: x, namespace: shop}\nspec: 7\n");
  EXPECT_FALSE(agent.Sync("manifests changed").ok());
  std::filesystem::remove(m + "/bad.yaml");
  nlohmann::json report = SyncAndReport(agent);
  EXPECT_EQ(report.value("compile", ""), "incremental");
  EXPECT_EQ(report.value("ops_total", size_t{1}), 0u);
  installed_is_full_compile("after a bad file came and went");

  // A resync compiles in full (the safety net) and finds nothing to do.
  ASSERT_TRUE(agent.Sync("resync").ok());
  report = agent.events().Last(1)[0].detail;
  EXPECT_EQ(report.value("compile", ""), "full");
  EXPECT_EQ(report.value("ops_total", size_t{1}), 0u);
  const nlohmann::json compile = agent.StatusJson()["compile"];
  EXPECT_EQ(compile["incremental"], steps.size() + 1);
  EXPECT_EQ(compile["full"], 2u);
  EXPECT_EQ(compile["last_full_reason"], "resync");
}

// A frame through a device + software path; the frame as it left.
struct Sent {
  sim::PacketResult result;
  sim::ParsedPacket parsed;
  std::vector<uint8_t> frame;
};
Sent Send(sim::SoftwareDatapath& path, std::mutex& mu, const sim::PacketSpec& spec,
          sim::PortId in_port) {
  Sent out;
  out.frame = *sim::BuildPacket(spec);
  size_t len = out.frame.size();
  out.frame.resize(2048);
  std::lock_guard lock(mu);
  out.result = path.Process(out.frame, len, in_port);
  out.frame.resize(len);
  EXPECT_EQ(sim::ParsePacket(out.frame, out.parsed), sim::ParseError::kNone);
  return out;
}

// A restricted device (ConnectX-6 Dx: no select groups, so every Service frontend is a punt
// entry) behind a SimNicServer with a software path, as nicflow-simnic runs it: the agent hands
// the whole program over, a client's connection to a NodePort is punted by the device, finished
// in software (DNAT to an endpoint, masquerade, commit in the software path's conntrack) and
// leaves by the pod's VF; the pod's reply and the client's next packet belong to the software
// path's connection and are reverse-NATed / translated there instead of being dropped by the
// device, whose conntrack does not know the connection.
TEST(Agent, PuntedConnectionsFinishOnTheSimnicSoftwarePath) {
  TempDir dir;
  AgentConfig config = testing::ShopConfig(dir);
  auto nic = sim::SimNic::Create(*sim::BuiltinProfile("connectx6dx"));
  auto software = sim::SimNic::Create(*sim::BuiltinProfile("unlimited"));
  sim::SoftwareDatapath path(*nic, *software);
  std::mutex nic_mu;
  std::string sock = dir.Sub("simnic.sock");
  auto server = SimNicServer::Start(*nic, nic_mu, sock, 0600, {}, &path);
  ASSERT_TRUE(server.ok()) << server.status();
  auto backend = ConnectSimNic(sock);
  ASSERT_TRUE(backend.ok()) << backend.status();
  Agent agent(config, *std::move(backend));
  ASSERT_TRUE(agent.Sync("start").ok());
  ASSERT_GT(agent.StatusJson()["placement"].value("in_software", size_t{0}), 0u)
      << agent.StatusJson().dump(1)
      << "the profile must leave part of the program to software for this test";
  {
    std::lock_guard lock(nic_mu);
    ASSERT_TRUE(software->has_program()) << "the agent sent the whole program";
    EXPECT_EQ(software->installed().entries.size(), nic->installed().entries.size());
  }
  nlohmann::json sw = agent.StatsJson()["software_path"];
  ASSERT_TRUE(sw.is_object()) << agent.StatsJson().dump();
  EXPECT_GT(sw["program_version"].get<uint64_t>(), 0u);

  const auto ip = [](const char* s) { return *flowtables::IpAddr::Parse(s); };
  sim::PacketSpec syn;
  syn.src = ip("203.0.113.7");
  syn.dst = ip("192.168.10.11");  // node-a, web's NodePort
  syn.src_port = 40000;
  syn.dst_port = 30080;
  Sent first = Send(path, nic_mu, syn, sim::kUplinkPort);
  ASSERT_EQ(first.result.verdict, sim::Verdict::kForward)
      << sim::DropReasonName(first.result.reason);
  const std::string out_port = nic->ports()[first.result.out_port].name;
  EXPECT_TRUE(out_port.rfind("vf:shop/web-", 0) == 0 || out_port == "uplink") << out_port;
  const flowtables::IpAddr endpoint = sim::DstAddr(first.parsed);
  const uint16_t endpoint_port =
      static_cast<uint16_t>(first.parsed.fields.get(flowtables::Field::kL4Dst).lo);
  EXPECT_NE(endpoint, syn.dst) << "DNATed to an endpoint";
  EXPECT_EQ(endpoint_port, 8080);
  EXPECT_EQ(sim::SrcAddr(first.parsed), ip("192.168.10.11")) << "masqueraded (Cluster policy)";
  const uint16_t masq_port =
      static_cast<uint16_t>(first.parsed.fields.get(flowtables::Field::kL4Src).lo);
  EXPECT_EQ(nic->counters().punted, 1u) << "the device punted it";
  EXPECT_EQ(nic->conntrack().size(), 0u);
  EXPECT_EQ(software->conntrack().size(), 1u) << "the software path owns the connection";

  // The endpoint answers (to the masquerade address): reverse NAT in software.
  sim::PacketSpec reply;
  reply.src = endpoint;
  reply.src_port = endpoint_port;
  reply.dst = ip("192.168.10.11");
  reply.dst_port = masq_port;
  reply.tcp_flags = static_cast<uint8_t>(sim::kTcpSyn | sim::kTcpAck);
  Sent back = Send(path, nic_mu, reply, first.result.out_port);
  ASSERT_EQ(back.result.verdict, sim::Verdict::kForward) << sim::DropReasonName(back.result.reason);
  EXPECT_EQ(back.result.out_port, sim::kUplinkPort);
  EXPECT_EQ(sim::SrcAddr(back.parsed), syn.dst) << "reverse NAT: from the NodePort address";
  EXPECT_EQ(back.parsed.fields.get(flowtables::Field::kL4Src).lo, 30080u);
  EXPECT_EQ(sim::DstAddr(back.parsed), syn.src);
  EXPECT_EQ(back.parsed.fields.get(flowtables::Field::kL4Dst).lo, 40000u);

  // The client's ACK: same endpoint, same translation.
  sim::PacketSpec ack = syn;
  ack.tcp_flags = sim::kTcpAck;
  Sent next = Send(path, nic_mu, ack, sim::kUplinkPort);
  ASSERT_EQ(next.result.verdict, sim::Verdict::kForward) << sim::DropReasonName(next.result.reason);
  EXPECT_EQ(nic->ports()[next.result.out_port].name, out_port);
  EXPECT_EQ(sim::DstAddr(next.parsed), endpoint);
  EXPECT_EQ(nic->counters().punted, 1u) << "later packets were steered, not punted";

  sw = agent.StatsJson()["software_path"];
  EXPECT_EQ(sw["packets"], 3);
  EXPECT_EQ(sw["resumed"], 1);
  EXPECT_EQ(sw["steered"], 2);
  EXPECT_EQ(sw["forwarded"], 3);
  EXPECT_EQ(sw["conntrack_entries"], 1);
  EXPECT_NE(
      agent.MetricsText().find("nicflow_software_path_packets_total{device=\"sim:connectx6dx\"} 3"),
      std::string::npos)
      << agent.MetricsText();

  // A change goes to the software path too (a new version); the connection stays.
  const uint64_t version = sw["program_version"].get<uint64_t>();
  WriteFile(config.inputs.manifests_dir + "/extra.yaml", testing::kExtraService);
  ASSERT_TRUE(agent.Sync("change").ok());
  sw = agent.StatsJson()["software_path"];
  EXPECT_GT(sw["program_version"].get<uint64_t>(), version);
  EXPECT_EQ(sw["conntrack_entries"], 1);
  Sent after = Send(path, nic_mu, ack, sim::kUplinkPort);
  EXPECT_EQ(after.result.verdict, sim::Verdict::kForward);
  EXPECT_EQ(sim::DstAddr(after.parsed), endpoint);
}

// The simulated NIC in its own "process" (a SimNicServer on a unix socket): a new agent reads
// back what the old one installed and converges without touching the device.
TEST(Agent, RestartsWithoutFlushingTheDevice) {
  TempDir dir;
  AgentConfig config = testing::ShopConfig(dir);
  // Unlimited: every entry offloaded, so the packet below finishes on the device (this
  // in-process NIC has no software path for punts).
  auto nic = sim::SimNic::Create(*sim::BuiltinProfile("unlimited"));
  std::mutex nic_mu;
  std::string sock = dir.Sub("simnic.sock");
  auto server = SimNicServer::Start(*nic, nic_mu, sock);
  ASSERT_TRUE(server.ok()) << server.status();

  {
    auto backend = ConnectSimNic(sock);
    ASSERT_TRUE(backend.ok()) << backend.status();
    Agent first(config, *std::move(backend));
    ASSERT_TRUE(first.Sync("start").ok());
    EXPECT_GT(InstalledEntries(first), 0u);
  }
  // Traffic while no agent runs: a client on the uplink to web's NodePort.
  sim::PacketSpec spec;
  spec.src = *flowtables::IpAddr::Parse("203.0.113.7");
  spec.dst = *flowtables::IpAddr::Parse("192.168.10.11");  // node-a
  spec.src_port = 40000;
  spec.dst_port = 30080;
  {
    std::lock_guard lock(nic_mu);
    std::vector<uint8_t> frame = *sim::BuildPacket(spec);
    size_t len = frame.size();
    frame.resize(2048);
    sim::PacketResult r = nic->ProcessFrame(frame, len, sim::kUplinkPort);
    EXPECT_EQ(r.verdict, sim::Verdict::kForward) << sim::DropReasonName(r.reason);
    EXPECT_EQ(nic->conntrack().size(), 1u);
  }
  uint64_t hit = 0;
  for (const auto& t : nic->installed().entries) {
    for (const auto& e : t) hit += nic->GetEntryCounters(flowtables::EntryKey(e))->packets;
  }
  EXPECT_GT(hit, 0u) << "the device counted the packet";
  uint64_t ops_before = nic->operations();
  flowtables::Program installed_before = nic->installed();

  auto backend = ConnectSimNic(sock);
  ASSERT_TRUE(backend.ok());
  Agent second(config, *std::move(backend));
  ASSERT_TRUE(second.Sync("start").ok());
  std::vector<Event> events = second.events().Last(1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, "unchanged");
  EXPECT_TRUE(events[0].detail["read_back"].get<bool>());
  EXPECT_EQ(events[0].detail["ops_total"], 0);
  EXPECT_EQ(nic->operations(), ops_before) << "no delete+add on restart";
  EXPECT_TRUE(flowtables::Diff(installed_before, nic->installed())->empty());
  EXPECT_EQ(nic->conntrack().size(), 1u) << "established connection survives";
  EXPECT_EQ(second.StatsJson()["datapath"]["conntrack_entries"], 1);

  // The counters of the entries the packet hit survived and are read over the socket.
  auto dump = second.DumpFlowsJson("");
  ASSERT_TRUE(dump.ok());
  uint64_t packets = 0;
  for (const auto& t : (*dump)["tables"]) {
    for (const auto& e : t["entries"]) packets += e["packets"].get<uint64_t>();
  }
  EXPECT_EQ(packets, hit) << "every counter crosses the socket (entry keys are binary)";

  // And a change after the restart is a delta over the socket.
  WriteFile(config.inputs.manifests_dir + "/extra.yaml", testing::kExtraService);
  ASSERT_TRUE(second.Sync("change").ok());
  events = second.events().Last(1);
  EXPECT_EQ(events[0].kind, "applied");
  EXPECT_FALSE(events[0].detail["reinstalled"].get<bool>());
  (*server)->Stop();
}

std::string HttpGet(uint16_t port, const std::string& path) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    ::close(fd);
    return "";
  }
  std::string req = "GET " + path + " HTTP/1.1\r\nHost: localhost\r\n\r\n";
  (void)!::send(fd, req.data(), req.size(), 0);
  std::string resp;
  char buf[4096];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof(buf), 0)) > 0) resp.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return resp;
}

TEST(Agent, ServesPrometheusMetricsOverLoopback) {
  TempDir dir;
  AgentConfig config = testing::ShopConfig(dir);
  config.metrics_address = "127.0.0.1:0";
  Agent agent(config, InProcessSim());
  ASSERT_TRUE(agent.Start().ok());
  ASSERT_NE(agent.metrics_port(), 0);
  std::string resp = HttpGet(agent.metrics_port(), "/metrics");
  EXPECT_EQ(resp.rfind("HTTP/1.1 200 OK", 0), 0u) << resp;
  for (const char* want :
       {"# TYPE nicflow_entries gauge",
        "nicflow_entries{device=\"sim:unlimited\",table=\"service\"}",
        "nicflow_apply_latency_seconds_bucket{device=\"sim:unlimited\",le=\"+Inf\"} 1",
        "nicflow_apply_latency_seconds_count{device=\"sim:unlimited\"} 1",
        "nicflow_placement_entries{device=\"sim:unlimited\",where=\"offloaded\"}",
        "nicflow_placement_entries{device=\"sim:unlimited\",where=\"software\"} 0",
        "nicflow_table_hits_total{device=\"sim:unlimited\",table=\"classify\"} 0",
        "nicflow_table_misses_total{", "nicflow_sync_errors_total{stage=\"apply\"} 0",
        "nicflow_conntrack_entries{device=\"sim:unlimited\"} 0"}) {
    EXPECT_NE(resp.find(want), std::string::npos) << "missing " << want << "\n" << resp;
  }
  EXPECT_NE(HttpGet(agent.metrics_port(), "/nope").find("404"), std::string::npos);
  agent.Stop();
}

}  // namespace
}  // namespace nicflow::agent
