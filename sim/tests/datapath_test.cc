#include <gtest/gtest.h>

#include <set>

#include "nicflow/sim/checksum.h"
#include "nicflow/sim/device.h"
#include "nicflow/sim/live.h"
#include "test_programs.h"

namespace nicflow::sim {
namespace {

namespace ft = flowtables;
using testing::Ip;
using testing::MiniPod;

const std::vector<MiniPod> kPods = {
    {"ns/a", "10.0.1.1"}, {"ns/b", "10.0.2.1"}, {"ns/c", "10.0.2.2"}, {"ns/d", "10.0.1.9"}};

class DatapathTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Install(testing::MiniProgram(kPods, "10.96.0.10", 80, {"10.0.2.1", "10.0.2.2"}, "10.0.1.9"));
  }
  void Install(const ft::Program& p) {
    nic_ = SimNic::Create(*BuiltinProfile("unlimited"), {&clock_, {}, 1024});
    ASSERT_TRUE(nic_->Install(p).ok()) << nic_->Install(p);
  }
  PortId Port(const std::string& name) { return *nic_->FindPortByName(name); }

  struct Out {
    PacketResult res;
    std::vector<uint8_t> frame;
    ParsedPacket p;
  };
  Out Send(PortId in, uint8_t proto, const char* src, uint16_t sp, const char* dst, uint16_t dp,
           uint8_t flags = kTcpSyn) {
    PacketSpec s;
    s.proto = proto;
    s.src = Ip(src);
    s.dst = Ip(dst);
    s.src_port = sp;
    s.dst_port = dp;
    s.tcp_flags = flags;
    s.payload_len = 10;
    std::vector<uint8_t> buf = *BuildPacket(s);
    size_t len = buf.size();
    buf.resize(2048);
    Out o;
    o.res = nic_->ProcessFrame(buf, len, in);
    buf.resize(len);
    o.frame = buf;
    EXPECT_EQ(ParsePacket(o.frame, o.p), ParseError::kNone);
    EXPECT_TRUE(ChecksumsValid(o.frame, o.p)) << "every frame leaves with valid checksums";
    return o;
  }
  std::string Dst(const Out& o) {
    return ft::FormatEndpoint(DstAddr(o.p),
                              static_cast<uint16_t>(o.p.fields.get(Field::kL4Dst).lo));
  }
  std::string Src(const Out& o) {
    return ft::FormatEndpoint(SrcAddr(o.p),
                              static_cast<uint16_t>(o.p.fields.get(Field::kL4Src).lo));
  }

  ManualClock clock_;
  std::unique_ptr<SimNic> nic_;
};

TEST_F(DatapathTest, ServiceConnectionIsDnatedAndTheReplyReverseTranslated) {
  const PortId a = Port("vf:ns/a");
  Out syn = Send(a, kProtoTcp, "10.0.1.1", 40000, "10.96.0.10", 80);
  ASSERT_EQ(syn.res.verdict, Verdict::kForward);
  const std::string backend = Dst(syn);
  ASSERT_TRUE(backend == "10.0.2.1:8080" || backend == "10.0.2.2:8080") << backend;
  const std::string pod = backend == "10.0.2.1:8080" ? "vf:ns/b" : "vf:ns/c";
  EXPECT_EQ(syn.res.out_port, Port(pod));
  EXPECT_EQ(Src(syn), "10.0.1.1:40000");

  const std::string bip = backend.substr(0, backend.find(':'));
  Out synack = Send(Port(pod), kProtoTcp, bip.c_str(), 8080, "10.0.1.1", 40000, kTcpSyn | kTcpAck);
  ASSERT_EQ(synack.res.verdict, Verdict::kForward);
  EXPECT_EQ(synack.res.out_port, a);
  EXPECT_EQ(Src(synack), "10.96.0.10:80") << "the reply comes from the ClusterIP";

  for (int i = 0; i < 5; ++i) {
    Out ack = Send(a, kProtoTcp, "10.0.1.1", 40000, "10.96.0.10", 80, kTcpAck);
    EXPECT_EQ(Dst(ack), backend) << "an established connection keeps its endpoint";
  }
  const auto& prog = nic_->installed();
  const ft::Entry& svc = prog.entries[testing::kMiniService][0];
  EXPECT_EQ(nic_->GetEntryCounters(ft::EntryKey(svc))->packets, 1u) << "only the SYN is looked up";
  const ft::Entry& est = prog.entries[testing::kMiniCtState][1];
  EXPECT_EQ(nic_->GetEntryCounters(ft::EntryKey(est))->packets, 6u);
  EXPECT_EQ(nic_->counters().ct_committed, 1u);
  EXPECT_EQ(nic_->GetTableCounters(testing::kMiniService)->hits, 1u);
}

TEST_F(DatapathTest, PolicyDeniedSourceIsDroppedAndCounted) {
  Out o = Send(Port("vf:ns/d"), kProtoTcp, "10.0.1.9", 40000, "10.96.0.10", 80);
  EXPECT_EQ(o.res.verdict, Verdict::kDrop);
  EXPECT_EQ(o.res.reason, DropReason::kDropAction);
  EXPECT_EQ(nic_->counters().drops[static_cast<size_t>(DropReason::kDropAction)], 1u);
  EXPECT_EQ(nic_->conntrack().size(), 0u);
  const ft::Entry& deny = nic_->installed().entries[testing::kMiniPolicy][0];
  EXPECT_EQ(nic_->GetEntryCounters(ft::EntryKey(deny))->packets, 1u);
}

TEST_F(DatapathTest, ServiceWithoutEndpointsRejectsTcpWithRstAndUdpWithPortUnreachable) {
  ft::Program p = testing::MiniProgram(kPods, "10.96.0.10", 80, {});
  p.entries[testing::kMiniService].push_back(testing::MakeEntry(
      testing::kMiniService, 100,
      {testing::ExactIp(Field::kIpv4Dst, "10.96.0.10"), testing::Exact(Field::kIpProto, kProtoUdp),
       testing::Exact(Field::kL4Dst, 53)},
      {ft::RejectAction{}}));
  Install(p);
  const PortId a = Port("vf:ns/a");
  Out rst = Send(a, kProtoTcp, "10.0.1.1", 40000, "10.96.0.10", 80);
  ASSERT_EQ(rst.res.verdict, Verdict::kReject);
  EXPECT_EQ(rst.res.out_port, a) << "the reply goes back out of the input port";
  EXPECT_EQ(Src(rst), "10.96.0.10:80");
  EXPECT_EQ(Dst(rst), "10.0.1.1:40000");
  const uint8_t* tcp = rst.frame.data() + rst.p.l4_offset;
  EXPECT_EQ(tcp[13], kTcpRst | kTcpAck);
  EXPECT_EQ(Load32(tcp + 8), 1000u + 10 + 1) << "ack = seq + payload + SYN";

  Out icmp = Send(a, kProtoUdp, "10.0.1.1", 5353, "10.96.0.10", 53);
  ASSERT_EQ(icmp.res.verdict, Verdict::kReject);
  EXPECT_EQ(icmp.p.l4_proto, kProtoIcmp);
  EXPECT_EQ(icmp.p.fields.get(Field::kIcmpType).lo, 3u);
  EXPECT_EQ(icmp.frame[icmp.p.l4_offset + 1], 3) << "code 3: port unreachable";
  EXPECT_EQ(DstAddr(icmp.p), Ip("10.0.1.1"));
  EXPECT_EQ(nic_->counters().rejected, 2u);
}

TEST_F(DatapathTest, MasqueradeAllocatesDistinctSourcePortsAndReversesReplies) {
  std::set<std::string> sources;
  const char* pods[] = {"10.0.1.1", "10.0.2.1", "10.0.2.2"};
  const char* names[] = {"vf:ns/a", "vf:ns/b", "vf:ns/c"};
  for (int i = 0; i < 3; ++i) {
    Out o = Send(Port(names[i]), kProtoTcp, pods[i], 40000, "8.8.8.8", 443);
    ASSERT_EQ(o.res.verdict, Verdict::kForward);
    EXPECT_EQ(o.res.out_port, kUplinkPort);
    EXPECT_EQ(SrcAddr(o.p), Ip("192.168.0.2"));
    const auto port = o.p.fields.get(Field::kL4Src).lo;
    EXPECT_GE(port, 30000u);
    EXPECT_LE(port, 30009u);
    sources.insert(Src(o));
    Out back = Send(kUplinkPort, kProtoTcp, "8.8.8.8", 443, "192.168.0.2",
                    static_cast<uint16_t>(port), kTcpSyn | kTcpAck);
    ASSERT_EQ(back.res.verdict, Verdict::kForward);
    EXPECT_EQ(back.res.out_port, Port(names[i]));
    EXPECT_EQ(Dst(back), std::string(pods[i]) + ":40000");
  }
  EXPECT_EQ(sources.size(), 3u) << "colliding source ports get distinct translations";
  for (uint16_t sp = 1; sp <= 7; ++sp) {
    EXPECT_EQ(Send(Port("vf:ns/a"), kProtoTcp, "10.0.1.1", sp, "8.8.8.8", 443).res.verdict,
              Verdict::kForward);
  }
  Out full = Send(Port("vf:ns/a"), kProtoTcp, "10.0.1.1", 99, "8.8.8.8", 443);
  EXPECT_EQ(full.res.reason, DropReason::kSnatExhausted) << "10 ports, 10 connections";
}

TEST_F(DatapathTest, ConnectionsExpireWithTheInjectedClock) {
  Send(Port("vf:ns/a"), kProtoTcp, "10.0.1.1", 40000, "10.96.0.10", 80);
  EXPECT_EQ(nic_->conntrack().size(), 1u);
  clock_.AdvanceS(119);
  EXPECT_EQ(nic_->ExpireConntrack(), 0u);
  clock_.AdvanceS(2);
  EXPECT_EQ(nic_->ExpireConntrack(), 1u) << "SYN_SENT lives 120 s";
}

TEST_F(DatapathTest, ClientIpAffinityPinsAClientUntilTheTimeout) {
  std::vector<std::string> backends;
  for (int i = 1; i <= 8; ++i) backends.push_back("10.0.3." + std::to_string(i));
  Install(testing::MiniProgram(kPods, "10.96.0.10", 80, backends, "", 60));
  std::set<std::string> seen;
  for (uint16_t sp = 1000; sp < 1040; ++sp) {
    seen.insert(Dst(Send(Port("vf:ns/a"), kProtoTcp, "10.0.1.1", sp, "10.96.0.10", 80)));
    clock_.AdvanceS(1);
  }
  EXPECT_EQ(seen.size(), 1u) << "one client, one endpoint while it keeps sending";
  Install(testing::MiniProgram(kPods, "10.96.0.10", 80, backends));
  seen.clear();
  for (uint16_t sp = 1000; sp < 1040; ++sp) {
    seen.insert(Dst(Send(Port("vf:ns/a"), kProtoTcp, "10.0.1.1", sp, "10.96.0.10", 80)));
  }
  EXPECT_GT(seen.size(), 3u) << "without affinity, flows spread over endpoints";
}

TEST_F(DatapathTest, GarbageFramesAreCountedByReasonAndDropped) {
  std::vector<uint8_t> buf(2048, 0);
  size_t len = 10;
  EXPECT_EQ(nic_->ProcessFrame(buf, len, kUplinkPort).parse_error, ParseError::kTruncatedEthernet);
  len = 60;
  Store16(buf.data() + 12, kEthTypeArp);
  EXPECT_EQ(nic_->ProcessFrame(buf, len, kUplinkPort).parse_error, ParseError::kNonIp);
  EXPECT_EQ(nic_->counters().parse_errors[static_cast<size_t>(ParseError::kNonIp)], 1u);
  EXPECT_EQ(nic_->counters().drops[static_cast<size_t>(DropReason::kParseError)], 2u);
}

TEST_F(DatapathTest, TraceReportsEveryBucketAndChangesNothing) {
  TraceRequest req;
  req.in_port = Port("vf:ns/a");
  req.src = Ip("10.0.1.1");
  req.dst = Ip("10.96.0.10");
  req.dst_port = 80;
  auto r = nic_->Trace(req);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->verdict, Verdict::kForward);
  EXPECT_EQ(std::set<std::string>(r->destinations.begin(), r->destinations.end()),
            (std::set<std::string>{"10.0.2.1:8080", "10.0.2.2:8080"}));
  EXPECT_EQ(std::set<std::string>(r->out_ports.begin(), r->out_ports.end()),
            (std::set<std::string>{"vf:ns/b", "vf:ns/c"}));
  EXPECT_TRUE(r->translated);
  EXPECT_FALSE(r->masquerade);
  ASSERT_EQ(r->paths.size(), 2u);
  const TracePath& p = r->paths[0];
  std::vector<std::string> tables;
  for (const TraceStep& s : p.steps) tables.push_back(s.table);
  EXPECT_EQ(tables, (std::vector<std::string>{"conntrack", "ct_state", "service", "policy", "snat",
                                              "forward"}));
  EXPECT_EQ(p.steps[2].origin, "Test web");
  EXPECT_EQ(p.steps[2].priority, 100);
  EXPECT_FALSE(p.steps[2].match.empty());
  EXPECT_EQ(nic_->conntrack().size(), 0u) << "a trace commits nothing";
  EXPECT_EQ(nic_->counters().rx_packets, 0u);

  req.in_port = Port("vf:ns/d");
  req.src = Ip("10.0.1.9");
  r = nic_->Trace(req);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->verdict, Verdict::kDrop);
  EXPECT_TRUE(r->destinations.empty());
  EXPECT_EQ(r->paths.size(), 2u) << "both buckets explored, both dropped by the policy";
  EXPECT_EQ(r->paths[0].steps.back().table, "policy");

  req.dst = Ip("8.8.8.8");
  req.in_port = Port("vf:ns/a");
  req.src = Ip("10.0.1.1");
  r = nic_->Trace(req);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->destinations, std::vector<std::string>{"8.8.8.8:80"});
  EXPECT_FALSE(r->translated);
  EXPECT_TRUE(r->masquerade);
  EXPECT_EQ(r->out_ports, std::vector<std::string>{"uplink"});
}

TEST_F(DatapathTest, BatchesRunEveryFrameInPlace) {
  PacketBatch batch(64);
  for (uint16_t i = 0; i < 64; ++i) {
    PacketSpec s;
    s.src = Ip("10.0.1.1");
    s.dst = Ip("10.96.0.10");
    s.src_port = static_cast<uint16_t>(1000 + i);
    s.dst_port = 80;
    ASSERT_TRUE(batch.Add(*BuildPacket(s), Port("vf:ns/a")));
  }
  EXPECT_FALSE(batch.Add(std::vector<uint8_t>(60), 0)) << "full";
  nic_->ProcessBatch(batch);
  int to_b = 0;
  for (size_t i = 0; i < batch.size(); ++i) {
    ASSERT_EQ(batch.result(i).verdict, Verdict::kForward);
    to_b += batch.result(i).out_port == Port("vf:ns/b");
  }
  EXPECT_GT(to_b, 16);
  EXPECT_LT(to_b, 48);
  EXPECT_EQ(nic_->conntrack().size(), 64u);
}

// A device that punts at `snat` (after the service DNAT and the conntrack lookup ran on it) and
// the software path that finishes its punts give every packet of a connection, both directions,
// the fate and the rewrites of the unsplit program on one device: ResumeFrame continues with the
// device's registers and rewritten fields (the frame left the device as received), and commits
// the tuple the device's lookup saw, so the reply is reverse-NATed to the Service address.
TEST(SoftwareDatapath, PuntedPacketsContinueWhereTheDeviceStopped) {
  const ft::Program whole =
      testing::MiniProgram(kPods, "10.96.0.10", 80, {"10.0.2.1", "10.0.2.2"}, "10.0.1.9");
  ft::Program split = whole;
  split.entries[testing::kMiniSnat] = {
      testing::MakeEntry(testing::kMiniSnat, INT32_MIN, {}, {ft::PuntAction{}}, "punt")};
  auto reference = SimNic::Create(*BuiltinProfile("unlimited"));
  auto device = SimNic::Create(*BuiltinProfile("unlimited"));
  auto software = SimNic::Create(*BuiltinProfile("unlimited"));
  ASSERT_TRUE(reference->Install(whole).ok());
  ASSERT_TRUE(device->Install(split).ok());
  SoftwareDatapath path(*device, *software);
  struct Pkt {
    std::string in;
    std::string src;
    uint16_t sp;
    std::string dst;
    uint16_t dp;
    uint8_t flags;
  };
  auto run = [](auto&& process, const Pkt& k) {
    PacketSpec s;
    s.src = Ip(k.src);
    s.dst = Ip(k.dst);
    s.src_port = k.sp;
    s.dst_port = k.dp;
    s.tcp_flags = k.flags;
    std::vector<uint8_t> f = *BuildPacket(s);
    size_t len = f.size();
    f.resize(2048);
    PacketResult r = process(f, len);
    f.resize(len);
    return std::make_pair(r, f);
  };
  const Pkt syn{"uplink", "203.0.113.7", 40000, "10.96.0.10", 80, kTcpSyn};
  // Before the software path has a program, a punt is dropped (and counted), not forwarded.
  {
    auto [r, f] =
        run([&](std::vector<uint8_t>& b,
                size_t& l) { return path.Process(b, l, *device->FindPortByName(syn.in)); },
            syn);
    EXPECT_EQ(r.verdict, Verdict::kDrop);
    EXPECT_EQ(path.stats().unfinished, 1u);
  }
  ASSERT_TRUE(software->Install(whole).ok());

  std::vector<Pkt> flow = {syn};
  for (int round = 0; round < 3; ++round) {
    const Pkt k = flow.back();
    auto [want, want_frame] = run(
        [&](std::vector<uint8_t>& b, size_t& l) {
          return reference->ProcessFrame(b, l, *reference->FindPortByName(k.in));
        },
        k);
    auto [got, got_frame] =
        run([&](std::vector<uint8_t>& b,
                size_t& l) { return path.Process(b, l, *device->FindPortByName(k.in)); },
            k);
    ASSERT_EQ(got.verdict, want.verdict) << "packet " << round;
    EXPECT_EQ(got.out_port, want.out_port) << "packet " << round;
    EXPECT_EQ(got_frame, want_frame) << "packet " << round << ": same rewrites, checksums";
    ParsedPacket out;
    ASSERT_EQ(ParsePacket(got_frame, out), ParseError::kNone);
    if (round == 0) {
      EXPECT_EQ(SrcAddr(out), Ip("203.0.113.7")) << "not masqueraded (to 10.0.0.0/8)";
      const std::string backend = DstAddr(out).ToString();
      EXPECT_TRUE(backend == "10.0.2.1" || backend == "10.0.2.2") << backend;
      // The endpoint answers; then the client's ACK.
      flow.push_back({backend == "10.0.2.1" ? "vf:ns/b" : "vf:ns/c", backend, 8080, "203.0.113.7",
                      40000, static_cast<uint8_t>(kTcpSyn | kTcpAck)});
    } else if (round == 1) {
      EXPECT_EQ(SrcAddr(out), Ip("10.96.0.10")) << "reverse NAT to the Service address";
      EXPECT_EQ(out.fields.get(Field::kL4Src).lo, 80u);
      EXPECT_EQ(DstAddr(out), Ip("203.0.113.7"));
      flow.push_back({"uplink", "203.0.113.7", 40000, "10.96.0.10", 80, kTcpAck});
    }
  }
  EXPECT_EQ(device->counters().punted, 2u) << "the first SYN (twice), never the later packets";
  EXPECT_EQ(path.stats().resumed, 1u);
  EXPECT_EQ(path.stats().steered, 2u) << "the reply and the ACK belong to the software path";
  EXPECT_EQ(software->conntrack().size(), 1u);
  EXPECT_EQ(device->conntrack().size(), 0u);

  // Another client's connection: punted and finished in software as well.
  auto [r2, f2] =
      run([&](std::vector<uint8_t>& b,
              size_t& l) { return path.Process(b, l, *device->FindPortByName("uplink")); },
          Pkt{"uplink", "203.0.113.8", 40001, "10.96.0.10", 80, kTcpSyn});
  EXPECT_EQ(r2.verdict, Verdict::kForward);
  EXPECT_EQ(path.stats().resumed, 2u);
}

}  // namespace
}  // namespace nicflow::sim
