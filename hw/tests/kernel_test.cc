// The kernel on PoCL, one behaviour at a time: every match kind, every action, NAT checksums,
// conntrack hits and reverse NAT, and the double-buffered update. Each case checks the expected
// result directly and against the simulator.
#include <gtest/gtest.h>

#include <set>

#include "nicflow/flowtables/pipeline.h"
#include "nicflow/hw/fpga_trace.h"
#include "nicflow/hw/image_format.h"
#include "nicflow/sim/checksum.h"
#include "program_builder.h"
#include "sim_compare.h"

namespace nicflow::hw {
namespace {

namespace ft = flowtables;
using ft::Field;
using testing::Frame;
using testing::MakeFrame;
using testing::Pair;

ft::IpPrefix Prefix(std::string_view s) { return *ft::IpPrefix::Parse(s); }
ft::IpAddr Ip(std::string_view s) { return *ft::IpAddr::Parse(s); }
ft::PortRef Vf(std::string pod) { return {ft::PortRef::Kind::kPod, std::move(pod)}; }
const ft::Origin kOrigin{"Test", "ns", "t", ""};

sim::PacketSpec Spec(uint8_t proto, std::string_view src, uint16_t sport, std::string_view dst,
                     uint16_t dport) {
  sim::PacketSpec s;
  s.proto = proto;
  s.src = Ip(src);
  s.dst = Ip(dst);
  s.src_port = sport;
  s.dst_port = dport;
  return s;
}

// Forwarding by LPM (v4 and v6), and the terminal actions.
ft::Program ForwardProgram() {
  ft::ProgramBuilder b;
  b.AddPort({Vf("ns/a"), {Ip("10.244.1.10")}});
  b.AddPort({Vf("ns/b"), {Ip("2001:db8::10")}});
  b.AddPort({{ft::PortRef::Kind::kHost, ""}, {Ip("192.168.1.1")}});
  using ft::kTableForward;
  b.AddEntry(kTableForward, 32, {ft::MatchDstPrefix(Prefix("10.244.1.10/32"))},
             {ft::OutputAction{Vf("ns/a")}}, kOrigin);
  b.AddEntry(kTableForward, 16, {ft::MatchDstPrefix(Prefix("10.244.0.0/16"))},
             {ft::OutputAction{{ft::PortRef::Kind::kHost, ""}}}, kOrigin);
  b.AddEntry(kTableForward, 64, {ft::MatchDstPrefix(Prefix("2001:db8::/64"))},
             {ft::OutputAction{Vf("ns/b")}}, kOrigin);
  b.AddEntry(kTableForward, 24, {ft::MatchDstPrefix(Prefix("192.0.2.0/24"))}, {ft::PuntAction{}},
             kOrigin);
  b.AddEntry(kTableForward, 24, {ft::MatchDstPrefix(Prefix("198.51.100.0/24"))},
             {ft::RejectAction{}}, kOrigin);
  b.AddEntry(kTableForward, 24, {ft::MatchDstPrefix(Prefix("203.0.113.0/24"))}, {ft::DropAction{}},
             kOrigin);
  auto p = std::move(b).Finish();
  EXPECT_TRUE(p.ok()) << p.status();
  return *p;
}

TEST(Kernel, LpmForwardingAndTerminalActions) {
  Pair pair(ForwardProgram());
  const struct {
    const char* dst;
    FpgaVerdict verdict;
    const char* port;
  } cases[] = {
      {"10.244.1.10", FpgaVerdict::kForward, "vf:ns/a"},
      {"10.244.9.9", FpgaVerdict::kForward, "host"},
      {"8.8.8.8", FpgaVerdict::kForward, "uplink"},
      {"192.0.2.7", FpgaVerdict::kPunt, ""},
      {"198.51.100.7", FpgaVerdict::kReject, ""},
      {"203.0.113.7", FpgaVerdict::kDrop, ""},
  };
  for (const auto& c : cases) {
    const Frame f = MakeFrame(c.dst, Spec(sim::kProtoTcp, "10.1.1.1", 1234, c.dst, 80), 1);
    std::vector<FpgaResult> hr;
    pair.Compare({f}, 64, &hr);
    ASSERT_EQ(hr.size(), 1u);
    EXPECT_EQ(hr[0].verdict, c.verdict) << c.dst;
    EXPECT_EQ(hr[0].out_port ? hr[0].out_port->ToString() : "", c.port) << c.dst;
  }
  std::vector<FpgaResult> hr;
  pair.Compare({MakeFrame("v6", Spec(sim::kProtoUdp, "2001:db8:1::1", 5, "2001:db8::99", 53), 1)},
               64, &hr);
  ASSERT_EQ(hr.size(), 1u);
  ASSERT_TRUE(hr[0].out_port.has_value());
  EXPECT_EQ(hr[0].out_port->ToString(), "vf:ns/b");
  // A REJECT of UDP answers with ICMP port unreachable, of TCP with a RST (compared to the sim).
  pair.Compare(
      {MakeFrame("udp reject", Spec(sim::kProtoUdp, "10.1.1.1", 9, "198.51.100.1", 53), 1)});
  pair.Compare(
      {MakeFrame("sctp reject", Spec(sim::kProtoSctp, "10.1.1.1", 9, "198.51.100.1", 53), 1)});
  pair.CompareCounters();
}

// Ternary (port class), exact (policy set), range (ports) and SetField/Goto through the policy
// tables.
ft::Program PolicyProgram() {
  ft::ProgramBuilder b;
  b.AddEntry(ft::kTableClassify, 10, {ft::MatchTernary(Field::kMetaPortClass, 3, 0xff)},
             {ft::SetBits(Field::kMetaFlags, ft::kFlagLocalSrc, ft::kFlagLocalSrc),
              ft::GotoAction{ft::kTableEgressPod}},
             kOrigin);
  b.AddEntry(ft::kTableEgressPod, 10, {ft::MatchSrcPrefix(Prefix("10.244.1.10/32"))},
             {ft::SetBits(Field::kMetaSrcSet, 7, 0xffffffff), ft::GotoAction{ft::kTableEgressPeer}},
             kOrigin);
  b.AddEntry(ft::kTableEgressPeer, 10,
             {ft::MatchExact(Field::kMetaSrcSet, 7), ft::MatchDstPrefix(Prefix("10.244.2.0/24"))},
             {ft::SetBits(Field::kMetaPeerBits, 1, 1), ft::GotoAction{ft::kTableEgressRule}},
             kOrigin);
  b.AddEntry(
      ft::kTableEgressRule, 10,
      {ft::MatchExact(Field::kMetaSrcSet, 7), ft::MatchTernary(Field::kIpProto, 6, 0xff),
       ft::MatchRange(Field::kL4Dst, 1000, 2000), ft::MatchTernary(Field::kMetaPeerBits, 1, 1)},
      {ft::GotoAction{ft::kTableForward}}, kOrigin);
  auto p = std::move(b).Finish();
  EXPECT_TRUE(p.ok()) << p.status();
  return *p;
}

TEST(Kernel, TernaryExactRangeAndSetField) {
  Pair pair(PolicyProgram());
  const struct {
    const char* dst;
    uint16_t port;
    sim::PortId in;
    FpgaVerdict verdict;
  } cases[] = {
      {"10.244.2.5", 1500, 2, FpgaVerdict::kForward},  // pod, peer, port in range
      {"10.244.2.5", 1000, 2, FpgaVerdict::kForward},  // range bounds are inclusive
      {"10.244.2.5", 2000, 2, FpgaVerdict::kForward},
      {"10.244.2.5", 999, 2, FpgaVerdict::kDrop},      // below the range
      {"10.244.2.5", 2001, 2, FpgaVerdict::kDrop},     // above
      {"10.244.3.5", 1500, 2, FpgaVerdict::kDrop},     // peer bit not set
      {"10.244.2.5", 1500, 1, FpgaVerdict::kForward},  // uplink: not classified as a pod
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.dst + std::string(":") + std::to_string(c.port));
    const Frame f =
        MakeFrame("policy", Spec(sim::kProtoTcp, "10.244.1.10", 4000, c.dst, c.port), c.in);
    std::vector<FpgaResult> hr;
    pair.Compare({f}, 64, &hr);
    ASSERT_EQ(hr.size(), 1u);
    EXPECT_EQ(hr[0].verdict, c.verdict);
  }
}

// Services: a select group DNATs, masquerade SNATs, conntrack commits on the host and reverse-NATs
// the replies on the device.
ft::Program ServiceProgram(bool v6) {
  ft::ProgramBuilder b;
  const char* vip = v6 ? "fd00:96::10" : "10.96.0.10";
  const char* node = v6 ? "2001:db8:ff::1" : "192.168.1.1";
  ft::SelectGroup g;
  g.name = "svc/ns/web";
  g.hash_fields = {v6 ? Field::kIpv6Src : Field::kIpv4Src, v6 ? Field::kIpv6Dst : Field::kIpv4Dst,
                   Field::kIpProto, Field::kL4Src, Field::kL4Dst};
  for (int i = 0; i < 3; ++i) {
    const std::string ep =
        v6 ? "fd00:244::1" + std::to_string(i) : "10.244.1.1" + std::to_string(i);
    g.buckets.push_back({1u + i, {ft::DnatAction{Ip(ep), 8080}}, ep + ":8080"});
    b.AddPort({Vf("ns/web" + std::to_string(i)), {Ip(ep)}});
  }
  b.AddGroup(g);
  b.AddPort({{ft::PortRef::Kind::kHost, ""}, {Ip(node)}});
  // Established connections skip to forwarding, as in the compiled pipeline.
  b.AddEntry(ft::kTableCtState, 10, {ft::MatchTernary(Field::kCtState, ft::kCtEst, ft::kCtEst)},
             {ft::GotoAction{ft::kTableForward}}, kOrigin);
  b.AddEntry(ft::kTableService, 100,
             {ft::MatchDstPrefix(Prefix(std::string(vip) + (v6 ? "/128" : "/32")))},
             {ft::GroupAction{g.name}, ft::GotoAction{ft::kTableMasqMark}}, kOrigin);
  b.AddEntry(ft::kTableMasqMark, 10, {ft::MatchTernary(Field::kMetaFlags, 0, ft::kFlagLocalSrc)},
             {ft::SetBits(Field::kMetaFlags, ft::kFlagMasq, ft::kFlagMasq),
              ft::GotoAction{ft::kTableEgressPod}},
             kOrigin);
  b.AddEntry(ft::kTableSnat, 10,
             {ft::MatchTernary(Field::kMetaFlags, ft::kFlagMasq, ft::kFlagMasq)},
             {ft::SnatAction{Ip(node), 1024, 65535}, ft::CtCommitAction{},
              ft::GotoAction{ft::kTableForward}},
             kOrigin);
  for (int i = 0; i < 3; ++i) {
    const std::string ep =
        v6 ? "fd00:244::1" + std::to_string(i) : "10.244.1.1" + std::to_string(i);
    b.AddEntry(ft::kTableForward, v6 ? 128 : 32, {ft::MatchDstPrefix(ft::IpPrefix::Host(Ip(ep)))},
               {ft::OutputAction{Vf("ns/web" + std::to_string(i))}}, kOrigin);
  }
  auto p = std::move(b).Finish();
  EXPECT_TRUE(p.ok()) << p.status();
  return *p;
}

void RunServiceCase(bool v6) {
  Pair pair(ServiceProgram(v6));
  const char* vip = v6 ? "fd00:96::10" : "10.96.0.10";
  const char* client = v6 ? "2001:db8:77::9" : "203.0.113.9";
  std::set<std::string> chosen;
  for (uint8_t proto : {sim::kProtoTcp, sim::kProtoUdp, sim::kProtoSctp}) {
    for (uint16_t sport = 40000; sport < 40012; ++sport) {
      sim::PacketSpec s = Spec(proto, client, sport, vip, 80);
      s.payload_len = sport % 5 * 7;
      const Frame f = MakeFrame("svc", s, sim::kUplinkPort);
      auto left = pair.Compare({f});
      ASSERT_EQ(left.size(), 1u);
      sim::ParsedPacket pp;
      ASSERT_EQ(sim::ParsePacket(left[0].bytes, pp), sim::ParseError::kNone);
      EXPECT_TRUE(sim::ChecksumsValid(left[0].bytes, pp));
      chosen.insert(sim::DstAddr(pp).ToString());
      EXPECT_EQ(sim::SrcAddr(pp).ToString(), v6 ? "2001:db8:ff::1" : "192.168.1.1");
      // The reply is reverse-NATed on the device, and later packets are conntrack hits: neither
      // needs the slow path.
      std::vector<FpgaResult> hr;
      pair.Compare({testing::ReplyTo(left[0])}, 64, &hr);
      s.tcp_flags = sim::kTcpAck;
      s.sctp_chunk = 0;
      pair.Compare({MakeFrame("2nd", s, sim::kUplinkPort)}, 64, &hr);
      ASSERT_EQ(hr.size(), 2u);
      for (const FpgaResult& h : hr) {
        EXPECT_TRUE(h.flags & NF_RF_CT_HIT);
        EXPECT_FALSE(h.slow_path);
      }
    }
  }
  EXPECT_GE(chosen.size(), 2u) << "the group spreads connections over its buckets";
  EXPECT_EQ(pair.fpga().connections(), 36u);
}

TEST(Kernel, ServiceDnatSnatAndConntrackIpv4) { RunServiceCase(false); }
TEST(Kernel, ServiceDnatSnatAndConntrackIpv6) { RunServiceCase(true); }

TEST(Kernel, TraceNamesTheTablesAndEntriesThatDecided) {
  Pair pair(ServiceProgram(false));
  const Frame f =
      MakeFrame("trace", Spec(sim::kProtoTcp, "203.0.113.9", 40000, "10.96.0.10", 80), 1);
  auto r = TraceFrame(pair.fpga(), f.bytes, 1, 2);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->verdict, FpgaVerdict::kForward);
  EXPECT_TRUE(r->translated);
  EXPECT_TRUE(r->masquerade);
  ASSERT_TRUE(r->group.has_value());
  EXPECT_EQ(*r->group, "svc/ns/web");
  EXPECT_EQ(r->destinations.size(), 3u);
  EXPECT_EQ(r->src, "192.168.1.1:40000");
  EXPECT_NE(std::find(r->destinations.begin(), r->destinations.end(), r->dst),
            r->destinations.end());
  bool saw_service = false;
  for (const FpgaTraceStep& st : r->steps) {
    if (st.table == "service") {
      saw_service = true;
      EXPECT_FALSE(st.miss);
      EXPECT_EQ(st.priority, 100);
      EXPECT_EQ(st.origin, kOrigin.ToString());
    }
  }
  EXPECT_TRUE(saw_service);
  EXPECT_EQ(r->steps.back().table, "forward");
}

TEST(Kernel, UpdateIsDoubleBufferedAndWritesOnlyChangedWords) {
  const ft::Program a = ForwardProgram();
  Pair pair(a);
  FpgaPipeline& fpga = pair.fpga();
  const uint32_t before = fpga.runtime().active_copy();
  ft::Program b = a;
  ft::Entry e{ft::kTableForward,
              24,
              {ft::MatchDstPrefix(Prefix("203.0.113.0/24"))},
              {ft::OutputAction{Vf("ns/a")}},
              kOrigin};
  ft::CanonicalizeMatch(e);
  for (auto& x : b.entries[ft::kTableForward]) {
    if (ft::EntryKey(x) == ft::EntryKey(e)) x = e;
  }
  auto d = ft::Diff(a, b);
  ASSERT_TRUE(d.ok());
  ASSERT_TRUE(fpga.Apply(*d).ok());
  EXPECT_NE(fpga.runtime().active_copy(), before);
  // Both copies equal the host mirror after the update.
  const auto mirror = fpga.image().words();
  for (uint32_t c = 0; c < 2; ++c) {
    std::vector<uint32_t> copy(mirror.size());
    ASSERT_TRUE(fpga.runtime().ReadImageCopy(c, copy).ok());
    EXPECT_TRUE(std::equal(copy.begin(), copy.end(), mirror.begin())) << "copy " << c;
  }
  const Frame f = MakeFrame("changed", Spec(sim::kProtoTcp, "10.1.1.1", 1, "203.0.113.7", 80), 1);
  FpgaPacket pk{f.bytes, 1, 2, {}};
  ASSERT_TRUE(fpga.ProcessBatch({&pk, 1}).ok());
  EXPECT_EQ(pk.result.verdict, FpgaVerdict::kForward);
  ASSERT_TRUE(pk.result.out_port.has_value());
  EXPECT_EQ(pk.result.out_port->ToString(), "vf:ns/a");
}

// Host routes past their home bucket: the lookup probes as deep as the table's probe word says,
// so every one is found, also after deletes lower the word. The addresses vary in three bytes:
// CRC-32C is linear, so addresses differing only in the last byte fill the buckets evenly.
std::string PodAddress(int i) {
  return "10." + std::to_string((i * 57 + 5) % 253) + "." + std::to_string((i * 97 + 13) % 251) +
         "." + std::to_string(1 + i % 250);
}

ft::Program ManyHostRoutes(int pods) {
  ft::ProgramBuilder b;
  b.AddPort({{ft::PortRef::Kind::kHost, ""}, {Ip("192.168.1.1")}});
  for (int i = 0; i < pods; ++i) {
    const std::string ip = PodAddress(i);
    b.AddPort({Vf("ns/p" + std::to_string(i)), {Ip(ip)}});
    b.AddEntry(ft::kTableForward, 32, {ft::MatchDstPrefix(Prefix(ip + "/32"))},
               {ft::OutputAction{Vf("ns/p" + std::to_string(i))}}, kOrigin);
  }
  b.AddEntry(ft::kTableForward, 8, {ft::MatchDstPrefix(Prefix("10.0.0.0/8"))},
             {ft::OutputAction{{ft::PortRef::Kind::kHost, ""}}}, kOrigin);
  auto p = std::move(b).Finish();
  EXPECT_TRUE(p.ok()) << p.status();
  return *p;
}

TEST(Kernel, ExactEntriesPastTheirHomeBucketAreFound) {
  constexpr int kPods = 200;  // 200 of the test geometry's 256 exact slots: buckets overflow
  const ft::Program full = ManyHostRoutes(kPods);
  Pair pair(full);
  const uint32_t probes =
      pair.fpga()
          .image()
          .words()[NF_HDR_TABLES + ft::kTableForward * NF_TABLE_DESC_WORDS + NF_TD_HASH_PROBES];
  EXPECT_GE(probes, 2u) << "no entry past its home bucket";
  std::vector<Frame> frames;
  for (int i = 0; i < kPods; ++i) {
    const std::string ip = PodAddress(i);
    frames.push_back(MakeFrame(ip, Spec(sim::kProtoUdp, "10.1.1.1", 7, ip, 53), 0));
  }
  std::vector<FpgaResult> hr;
  pair.Compare(frames, 64, &hr);
  ASSERT_EQ(hr.size(), frames.size());
  for (int i = 0; i < kPods; ++i) {
    ASSERT_TRUE(hr[i].out_port.has_value()) << frames[i].name;
    EXPECT_EQ(hr[i].out_port->ToString(), "vf:ns/p" + std::to_string(i)) << frames[i].name;
  }
  // Delete most routes (the probe word may drop); the rest still match, the deleted go to host.
  const ft::Program few = ManyHostRoutes(20);
  auto d = ft::Diff(full, few);
  ASSERT_TRUE(d.ok());
  ASSERT_TRUE(pair.sim().Apply(*d).ok());
  ASSERT_TRUE(pair.fpga().Apply(*d).ok());
  hr.clear();
  pair.Compare(frames, 64, &hr);
  ASSERT_EQ(hr.size(), frames.size());
  for (int i = 0; i < kPods; ++i) {
    ASSERT_TRUE(hr[i].out_port.has_value()) << frames[i].name;
    EXPECT_EQ(hr[i].out_port->ToString(), i < 20 ? "vf:ns/p" + std::to_string(i) : "host")
        << frames[i].name;
  }
}

TEST(Kernel, MalformedFramesAreParseErrorsLikeTheSimulator) {
  Pair pair(ForwardProgram());
  Frame good = MakeFrame("good", Spec(sim::kProtoTcp, "10.1.1.1", 1, "10.244.1.10", 80), 1);
  std::vector<Frame> bad;
  for (size_t n : {0, 5, 13, 14, 20, 33, 34, 40, 53}) {
    Frame f = good;
    f.bytes.resize(n);
    f.name = "truncated to " + std::to_string(n);
    bad.push_back(f);
  }
  Frame arp = good;
  arp.bytes[12] = 0x08, arp.bytes[13] = 0x06;
  bad.push_back(arp);
  Frame ihl = good;
  ihl.bytes[14] = 0x44;  // IHL 4
  bad.push_back(ihl);
  pair.Compare(bad);
}

}  // namespace
}  // namespace nicflow::hw
