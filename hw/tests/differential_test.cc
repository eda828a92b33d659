// Differential tests: every conformance scenario, its connections' follow-up and reply packets,
// and random packets give the same verdicts, frames and counters on the FPGA kernel (PoCL) as on
// the simulator.
#include <gtest/gtest.h>

#include <random>

#include "nicflow/flowtables/compiler.h"
#include "nicflow/flowtables/scenario.h"
#include "nicflow/hw/image_format.h"
#include "sim_compare.h"

namespace nicflow::hw {
namespace {

namespace ft = flowtables;
using testing::Frame;
using testing::MakeFrame;
using testing::Pair;

std::string Path(std::string_view rel) {
  return std::string(NICFLOW_SOURCE_DIR) + "/" + std::string(rel);
}

ft::Program CompileOrDie(const ft::ClusterState& state, const std::string& node) {
  ft::CompileOptions o;
  o.node_name = node;
  auto r = ft::Compile(state, o);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? r->program : ft::Program{};
}

sim::PacketSpec Spec(uint8_t proto, const ft::IpAddr& src, uint16_t sport, const ft::IpAddr& dst,
                     uint16_t dport) {
  sim::PacketSpec s;
  s.proto = proto;
  s.src = src;
  s.dst = dst;
  s.src_port = sport;
  s.dst_port = dport;
  return s;
}

// First packet, a second packet of the connection, and the reply, through both backends.
void CompareConnection(Pair& pair, const std::string& name, sim::PacketSpec spec) {
  const sim::PortId in = pair.PortOf(spec.src);
  std::vector<Frame> first = {MakeFrame(name, spec, in)};
  std::vector<Frame> left = pair.Compare(first);
  spec.tcp_flags = sim::kTcpAck;
  spec.sctp_chunk = 0;  // DATA
  pair.Compare({MakeFrame(name + " (2nd packet)", spec, in)});
  for (const Frame& f : left) pair.Compare({testing::ReplyTo(f)});
}

TEST(Differential, ServiceScenariosMatchTheSimulator) {
  for (const char* file : {"examples/shop/scenarios.yaml"}) {
    auto scenarios = ft::LoadServiceScenarios(Path(file));
    ASSERT_TRUE(scenarios.ok()) << scenarios.status();
    for (const ft::ServiceScenario& sc : *scenarios) {
      SCOPED_TRACE(sc.name);
      const ft::Program prog = CompileOrDie(sc.state, sc.node_name);
      Pair pair(prog);
      for (const ft::ScenarioPacket& pk : sc.packets) {
        CompareConnection(pair, pk.name,
                          Spec(static_cast<uint8_t>(pk.proto), pk.src, 40000, pk.dst, pk.dst_port));
      }
      pair.CompareCounters();
    }
  }
}

TEST(Differential, NetpolScenariosMatchTheSimulator) {
  auto scenarios = ft::LoadNetpolScenarios(Path("examples/netpol/scenarios.yaml"));
  ASSERT_TRUE(scenarios.ok()) << scenarios.status();
  for (const ft::NetpolScenario& sc : *scenarios) {
    SCOPED_TRACE(sc.name);
    const ft::Program prog =
        CompileOrDie(ft::NetpolScenarioToClusterState(sc), std::string(ft::kNetpolNodeName));
    Pair pair(prog);
    auto ip_of = [&](const std::string& pod) {
      for (const auto& p : sc.pods) {
        if (p.ns + "/" + p.name == pod) return p.ip;
      }
      ADD_FAILURE() << "no pod " << pod;
      return ft::IpAddr{};
    };
    uint16_t sport = 30000;
    for (const ft::NetpolProbe& probe : sc.probes) {
      for (const auto* pairs : {&probe.allowed, &probe.denied}) {
        for (const auto& [from, to] : *pairs) {
          CompareConnection(
              pair, from + " -> " + to,
              Spec(static_cast<uint8_t>(probe.proto), ip_of(from), ++sport, ip_of(to), probe.port));
        }
      }
    }
    pair.CompareCounters();
  }
}

// Random packets over the shop program: addresses and ports drawn from the ones the program
// mentions plus strangers, every protocol, odd TCP flags, VLAN tags, and truncated frames.
TEST(Differential, RandomPacketsMatchTheSimulator) {
  auto scenarios = ft::LoadServiceScenarios(Path("examples/shop/scenarios.yaml"));
  ASSERT_TRUE(scenarios.ok()) << scenarios.status();
  const ft::ServiceScenario& sc = scenarios->front();
  const ft::Program prog = CompileOrDie(sc.state, sc.node_name);
  Pair pair(prog);
  std::vector<ft::IpAddr> v4, v6;
  for (const auto& port : pair.sim().ports()) {
    for (const auto& ip : port.ips) (ip.is_v4() ? v4 : v6).push_back(ip);
  }
  for (const auto& pk : sc.packets) {
    (pk.dst.is_v4() ? v4 : v6).push_back(pk.dst);
    (pk.src.is_v4() ? v4 : v6).push_back(pk.src);
  }
  for (const char* s : {"203.0.113.9", "10.244.2.10", "10.96.0.1", "8.8.8.8"}) {
    v4.push_back(*ft::IpAddr::Parse(s));
  }
  for (const char* s : {"2001:db8::7", "fd00::1"}) v6.push_back(*ft::IpAddr::Parse(s));
  const uint16_t ports[] = {80, 443, 5432, 8080, 9000, 9101, 30080, 53, 1, 65535};
  const uint8_t protos[] = {sim::kProtoTcp, sim::kProtoUdp, sim::kProtoSctp, sim::kProtoIcmp};
  const uint8_t flags[] = {sim::kTcpSyn,
                           sim::kTcpAck,
                           sim::kTcpSyn | sim::kTcpAck,
                           sim::kTcpRst,
                           sim::kTcpFin | sim::kTcpAck,
                           0};
  std::mt19937 rng(12345);
  auto pick = [&](const auto& v) { return v[rng() % std::size(v)]; };
  std::vector<Frame> frames;
  for (int i = 0; i < 1500; ++i) {
    const bool six = !v6.empty() && rng() % 4 == 0;
    sim::PacketSpec s;
    s.proto = pick(protos);
    if (six && s.proto == sim::kProtoIcmp) s.proto = sim::kProtoIcmpv6;
    s.src = six ? pick(v6) : pick(v4);
    s.dst = six ? pick(v6) : pick(v4);
    s.src_port = static_cast<uint16_t>(rng() % 3 == 0 ? pick(ports) : 1024 + rng() % 60000);
    s.dst_port = rng() % 4 == 0 ? static_cast<uint16_t>(rng()) : pick(ports);
    s.tcp_flags = pick(flags);
    s.payload_len = rng() % 3 == 0 ? rng() % 200 : 0;
    if (rng() % 10 == 0) s.vlan = static_cast<uint16_t>(rng() % 4000 + 1);
    Frame f = MakeFrame("random #" + std::to_string(i), s, pair.PortOf(s.src));
    if (rng() % 25 == 0) f.bytes.resize(rng() % f.bytes.size());  // truncated
    if (rng() % 7 == 0) f.in_port = static_cast<sim::PortId>(rng() % 4);
    frames.push_back(std::move(f));
  }
  pair.Compare(frames);
  pair.CompareCounters();
}

// A batch opening hundreds of connections at once (every scenario packet from many source
// ports, some twice in the batch, TCP and UDP): the commit log carries all their tuple slots and
// state words to the device in one transfer. Verdicts and frames of the first packets, of the
// second packets (conntrack hits) and of the replies (reverse NAT) match the simulator, and so
// do the number of connections and what expiry removes (its slot clears go through the log too).
TEST(Differential, ManyNewConnectionsInOneBatchMatchTheSimulator) {
  auto scenarios = ft::LoadServiceScenarios(Path("examples/shop/scenarios.yaml"));
  ASSERT_TRUE(scenarios.ok()) << scenarios.status();
  const ft::ServiceScenario& sc = scenarios->front();
  Pair pair(CompileOrDie(sc.state, sc.node_name));
  std::vector<Frame> first, second;
  for (uint16_t i = 0; i < 60; ++i) {
    for (const ft::ScenarioPacket& pk : sc.packets) {
      for (uint8_t proto : {sim::kProtoTcp, sim::kProtoUdp}) {
        sim::PacketSpec s =
            Spec(proto, pk.src, static_cast<uint16_t>(20000 + i), pk.dst, pk.dst_port);
        s.tcp_flags = sim::kTcpSyn;
        const std::string name = pk.name + (proto == sim::kProtoTcp ? " TCP" : " UDP") +
                                 " from port " + std::to_string(20000 + i);
        first.push_back(MakeFrame(name, s, pair.PortOf(s.src)));
        if (i % 16 == 0) first.push_back(MakeFrame(name + " (again)", s, pair.PortOf(s.src)));
        s.tcp_flags = sim::kTcpAck;
        second.push_back(MakeFrame(name + " (2nd packet)", s, pair.PortOf(s.src)));
      }
    }
  }
  ASSERT_GE(first.size(), 1000u);
  const std::vector<Frame> left = pair.Compare(first, first.size());
  EXPECT_GT(pair.sim().conntrack().size(), 300u);
  EXPECT_EQ(pair.sim().conntrack().size(), pair.fpga().connections());
  std::vector<FpgaResult> results;
  pair.Compare(second, second.size(), &results);
  size_t hits = 0;
  for (const FpgaResult& r : results) hits += (r.flags & NF_RF_CT_HIT) != 0;
  EXPECT_GT(hits, 300u);  // the logged slots are on the device: second packets are fast path
  std::vector<Frame> replies;
  for (const Frame& f : left) replies.push_back(testing::ReplyTo(f));
  pair.Compare(replies, replies.size());
  pair.CompareCounters();
  // Unreplied UDP connections time out after 30 s; the others stay (TCP: 60 s and more).
  pair.AdvanceS(45);
  const size_t sim_expired = pair.sim().ExpireConntrack();
  auto fpga_expired = pair.fpga().ExpireConntrack();
  ASSERT_TRUE(fpga_expired.ok()) << fpga_expired.status();
  EXPECT_EQ(sim_expired, *fpga_expired);
  EXPECT_EQ(pair.sim().conntrack().size(), pair.fpga().connections());
  pair.Compare(first, first.size());  // expired ones open again, the others are hits
  EXPECT_EQ(pair.sim().conntrack().size(), pair.fpga().connections());
  pair.CompareCounters();
}

}  // namespace
}  // namespace nicflow::hw
