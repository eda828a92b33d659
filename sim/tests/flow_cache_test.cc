// The exact-match flow cache is transparent: a device with it and one without see the same
// verdicts, frames, conntrack and counters, whatever the traffic and the program changes. So is
// the batch path's speculation (datapath.cc, PrefetchPipeline), whose lookups the interpreter
// reuses: the device without the cache takes its frames one at a time.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>

#include "flow_cache.h"
#include "nicflow/sim/device.h"
#include "test_programs.h"

namespace nicflow::sim {
namespace {

namespace ft = flowtables;
using testing::Ip;
using testing::MiniPod;

const std::vector<MiniPod> kPods = {{"ns/a", "10.0.1.1"},
                                    {"ns/b", "10.0.2.1"},
                                    {"ns/c", "10.0.2.2"},
                                    {"ns/d", "10.0.1.9"},
                                    {"ns/e", "10.0.3.3"}};
const char* const kVip = "10.96.0.10";

// The programs the random traffic switches between: backends move, a deny policy comes and goes,
// ClientIP affinity is switched on (affinity paths are never cached).
ft::Program Variant(int v) {
  switch (v % 4) {
    case 0:
      return testing::MiniProgram(kPods, kVip, 80, {"10.0.2.1", "10.0.2.2"}, "10.0.1.9");
    case 1:
      return testing::MiniProgram(kPods, kVip, 80, {"10.0.2.2", "10.0.3.3"});
    case 2:
      return testing::MiniProgram(kPods, kVip, 80, {"10.0.2.1", "10.0.3.3"}, "10.0.1.1", 60);
    default:
      return testing::MiniProgram(kPods, kVip, 80, {"10.0.2.1"}, "10.0.2.2");
  }
}

// `p` with `n` more ClusterIP-like entries beside the VIP's, for addresses no traffic uses: the
// table gets big enough for the batch path to speculate lookups in it (State::big_tables).
ft::Program WithFiller(ft::Program p, size_t n) {
  const U128 vip = U128::FromIp(Ip(kVip)), base = U128::FromIp(Ip("10.97.0.0"));
  for (auto& table : p.entries) {
    for (size_t i = 0, size = table.size(); i < size; ++i) {
      auto m = std::find_if(table[i].match.begin(), table[i].match.end(), [&](const auto& fm) {
        const auto* x = std::get_if<ft::ExactMatch>(&fm.value);
        return fm.field == ft::Field::kIpv4Dst && x && x->value == vip;
      });
      if (m == table[i].match.end()) continue;
      const auto at = static_cast<size_t>(m - table[i].match.begin());
      for (size_t k = 0; k < n; ++k) {
        ft::Entry e = table[i];
        std::get<ft::ExactMatch>(e.match[at].value).value = U128::Of(base.lo + k);
        table.push_back(std::move(e));
      }
      return p;
    }
  }
  ADD_FAILURE() << "no entry matches the VIP";
  return p;
}

struct Flow {
  PortId in;
  std::string src;
  uint16_t sport;
  std::string dst;
  uint16_t dport;
  uint8_t proto;
};

class Twin {
 public:
  Twin() {
    CtTimeouts t;
    t.tcp_syn_sent = 5;
    t.tcp_established = 40;
    t.tcp_close = 2;
    t.tcp_time_wait = 3;
    t.udp = 4;
    t.icmp = 4;
    cached_ = SimNic::Create(*BuiltinProfile("unlimited"), {&clock_, t, 256, 64});
    plain_ = SimNic::Create(*BuiltinProfile("unlimited"), {&clock_, t, 256, 0});
  }

  void Install(const ft::Program& p) {
    ASSERT_TRUE(cached_->Install(p).ok());
    ASSERT_TRUE(plain_->Install(p).ok());
    program_ = p;
  }
  void Switch(const ft::Program& p) {
    auto d = ft::Diff(program_, p);
    ASSERT_TRUE(d.ok()) << d.status();
    ASSERT_TRUE(cached_->Apply(*d).ok());
    ASSERT_TRUE(plain_->Apply(*d).ok());
    program_ = p;
  }

  // Sends the frames as one batch through the cached device and one by one through the plain
  // one, and checks they agree on every frame.
  void Send(const std::vector<std::vector<uint8_t>>& frames, const std::vector<PortId>& ports) {
    PacketBatch a(frames.size());
    for (size_t i = 0; i < frames.size(); ++i) ASSERT_TRUE(a.Add(frames[i], ports[i]));
    cached_->ProcessBatch(a);
    for (size_t i = 0; i < frames.size(); ++i) {
      std::vector<uint8_t> out = frames[i];
      size_t len = out.size();
      out.resize(2048);
      const PacketResult &x = a.result(i), y = plain_->ProcessFrame(out, len, ports[i]);
      out.resize(len);
      ASSERT_EQ(x.verdict, y.verdict) << "frame " << i;
      ASSERT_EQ(x.reason, y.reason) << "frame " << i;
      ASSERT_EQ(x.parse_error, y.parse_error) << "frame " << i;
      ASSERT_EQ(x.out_port, y.out_port) << "frame " << i;
      ASSERT_TRUE(std::equal(a.frame(i).begin(), a.frame(i).end(), out.begin(), out.end()))
          << "frame " << i << " leaves rewritten differently";
      outputs_.emplace_back(a.frame(i).begin(), a.frame(i).end());
      verdicts_.push_back(x.verdict);
    }
  }

  // Every counter and every connection agree.
  void ExpectSameState() const {
    const DeviceCounters &x = cached_->counters(), &y = plain_->counters();
    EXPECT_EQ(x.rx_packets, y.rx_packets);
    EXPECT_EQ(x.rx_bytes, y.rx_bytes);
    EXPECT_EQ(x.forwarded, y.forwarded);
    EXPECT_EQ(x.dropped, y.dropped);
    EXPECT_EQ(x.rejected, y.rejected);
    EXPECT_EQ(x.punted, y.punted);
    EXPECT_EQ(x.ct_committed, y.ct_committed);
    EXPECT_EQ(x.parse_errors, y.parse_errors);
    EXPECT_EQ(x.drops, y.drops);
    for (const auto& table : cached_->installed().entries) {
      for (const ft::Entry& e : table) {
        const std::string key = ft::EntryKey(e);
        auto ca = cached_->GetEntryCounters(key), cb = plain_->GetEntryCounters(key);
        ASSERT_TRUE(ca.ok() && cb.ok()) << key;
        EXPECT_EQ(ca->packets, cb->packets) << key;
        EXPECT_EQ(ca->bytes, cb->bytes) << key;
      }
    }
    for (ft::TableId t = 0; t < program_.tables.size(); ++t) {
      auto ta = *cached_->GetTableCounters(t), tb = *plain_->GetTableCounters(t);
      EXPECT_EQ(ta.packets, tb.packets) << "table " << t;
      EXPECT_EQ(ta.bytes, tb.bytes) << "table " << t;
      EXPECT_EQ(ta.hits, tb.hits) << "table " << t;
      EXPECT_EQ(ta.misses, tb.misses) << "table " << t;
      EXPECT_EQ(ta.ties, tb.ties) << "table " << t;
    }
    ASSERT_EQ(cached_->ports().size(), plain_->ports().size());
    for (PortId p = 0; p < cached_->ports().size(); ++p) {
      auto pa = *cached_->GetPortCounters(p), pb = *plain_->GetPortCounters(p);
      EXPECT_EQ(pa.rx_packets, pb.rx_packets);
      EXPECT_EQ(pa.tx_packets, pb.tx_packets);
      EXPECT_EQ(pa.tx_bytes, pb.tx_bytes);
    }
    const std::vector<CtEntry> ca = cached_->conntrack().Snapshot();
    const std::vector<CtEntry> cb = plain_->conntrack().Snapshot();
    ASSERT_EQ(ca.size(), cb.size());
    for (size_t i = 0; i < ca.size(); ++i) {
      EXPECT_EQ(ca[i].orig, cb[i].orig);
      EXPECT_EQ(ca[i].reply, cb[i].reply);
      EXPECT_EQ(ca[i].tcp, cb[i].tcp);
      EXPECT_EQ(ca[i].fin_seen, cb[i].fin_seen);
      EXPECT_EQ(ca[i].seen_reply, cb[i].seen_reply);
      EXPECT_EQ(ca[i].expires_ns, cb[i].expires_ns);
      EXPECT_EQ(ca[i].packets[0], cb[i].packets[0]);
      EXPECT_EQ(ca[i].packets[1], cb[i].packets[1]);
      EXPECT_EQ(ca[i].bytes[0], cb[i].bytes[0]);
      EXPECT_EQ(ca[i].bytes[1], cb[i].bytes[1]);
    }
  }

  ManualClock clock_;
  std::unique_ptr<SimNic> cached_, plain_;
  ft::Program program_;
  std::vector<std::vector<uint8_t>> outputs_;
  std::vector<Verdict> verdicts_;
};

std::vector<uint8_t> Frame(const Flow& f, bool reverse, uint8_t flags, size_t payload) {
  PacketSpec s;
  s.proto = f.proto;
  s.src = Ip(reverse ? f.dst : f.src);
  s.dst = Ip(reverse ? f.src : f.dst);
  s.src_port = reverse ? f.dport : f.sport;
  s.dst_port = reverse ? f.sport : f.dport;
  s.tcp_flags = flags;
  s.payload_len = payload;
  if (f.proto == kProtoIcmp) s.icmp_type = reverse ? 0 : 8;
  return *BuildPacket(s);
}

// The flow a forwarded frame left as, reversed: what its peer's answer looks like.
std::optional<Flow> ReplyTo(const std::vector<uint8_t>& out, PortId back_in) {
  ParsedPacket p;
  if (ParsePacket(out, p) != ParseError::kNone || p.is_v6) return std::nullopt;
  Flow f;
  f.in = back_in;
  f.src = DstAddr(p).ToString();
  f.dst = SrcAddr(p).ToString();
  f.proto = p.l4_proto;
  f.sport = static_cast<uint16_t>(p.fields.get(Field::kL4Dst).lo);
  f.dport = static_cast<uint16_t>(p.fields.get(Field::kL4Src).lo);
  if (p.l4_proto == kProtoIcmp) f.sport = f.dport = p.icmp_id;
  return f;
}

class FlowCacheRandom : public ::testing::TestWithParam<uint64_t> {};

TEST_P(FlowCacheRandom, SameVerdictsFramesConntrackAndCountersAsWithoutCache) {
  Twin t;
  const size_t filler = GetParam() % 2 ? 600 : 0;
  t.Install(WithFiller(Variant(0), filler));
  std::mt19937_64 rng(GetParam());
  const std::vector<std::string> dsts = {kVip,       "10.0.2.1", "10.0.2.2", "10.0.1.9",
                                         "10.0.3.3", "8.8.8.8",  "10.0.2.1"};
  std::vector<Flow> flows;
  for (int i = 0; i < 40; ++i) {
    const MiniPod& pod = kPods[rng() % kPods.size()];
    Flow f;
    f.in = *t.cached_->FindPortByName("vf:" + pod.name);
    f.src = pod.ip;
    f.sport = static_cast<uint16_t>(1000 + rng() % 50);
    f.dst = dsts[rng() % dsts.size()];
    f.dport = f.dst == kVip ? 80 : static_cast<uint16_t>(rng() % 3 ? 8080 : 53);
    const int kind = static_cast<int>(rng() % 8);
    f.proto = kind < 6 ? kProtoTcp : kind == 6 ? kProtoUdp : kProtoIcmp;
    if (f.proto == kProtoIcmp) f.dport = f.sport;
    flows.push_back(f);
  }
  const uint8_t kFlags[] = {kTcpSyn,           kTcpAck,           kTcpAck,           kTcpAck,
                            kTcpAck | kTcpPsh, kTcpAck | kTcpPsh, kTcpFin | kTcpAck, kTcpRst,
                            kTcpSyn | kTcpAck, kTcpSyn | kTcpFin};
  int variant = 0;
  for (int round = 0; round < 1000; ++round) {
    std::vector<std::vector<uint8_t>> frames;
    std::vector<PortId> ports;
    std::vector<std::pair<size_t, PortId>> sent;  // (flow, reply port) for answers
    const size_t n = 1 + rng() % 24;
    for (size_t k = 0; k < n; ++k) {
      const size_t fi = rng() % flows.size();
      Flow f = flows[fi];
      const uint8_t flags = kFlags[rng() % std::size(kFlags)];
      if (rng() % 5 == 0 && !t.outputs_.empty()) {
        // An answer to something forwarded earlier, entering where the packet left.
        const size_t o = rng() % t.outputs_.size();
        if (t.verdicts_[o] == Verdict::kForward) {
          const auto r = ReplyTo(t.outputs_[o], kUplinkPort + rng() % 5);
          if (r) f = *r;
        }
      }
      std::vector<uint8_t> frame =
          Frame(f, false, rng() % 3 ? uint8_t{kTcpAck} : flags, rng() % 40);
      if (rng() % 50 == 0) frame.resize(rng() % frame.size());  // truncated: parse error
      frames.push_back(std::move(frame));
      ports.push_back(f.in);
    }
    t.Send(frames, ports);
    if (::testing::Test::HasFatalFailure()) return;
    switch (rng() % 20) {
      case 0:
        t.Switch(WithFiller(Variant(++variant), filler));
        break;
      case 1:
        t.clock_.AdvanceS(1 + rng() % 6);  // SYN_SENT, UDP, CLOSE connections expire
        break;
      case 2:
        t.clock_.AdvanceS(45);  // everything expires
        break;
      case 3:
        EXPECT_EQ(t.cached_->ExpireConntrack(), t.plain_->ExpireConntrack());
        break;
      default:
        t.clock_.AdvanceNs(rng() % 200'000'000);
        break;
    }
    if (round % 50 == 0) t.ExpectSameState();
  }
  t.ExpectSameState();
  const FlowCacheStats& st = t.cached_->flow_cache_stats();
  EXPECT_GT(st.hits, 1000u) << "the cache was exercised";
  EXPECT_GT(st.invalidations, 5u);
  EXPECT_EQ(t.plain_->flow_cache_stats().hits, 0u);
}

INSTANTIATE_TEST_SUITE_P(Seeds, FlowCacheRandom, ::testing::Values(1, 2, 3, 4, 5, 6));

class FlowCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    nic_ = SimNic::Create(*BuiltinProfile("unlimited"), {&clock_, {}, 256, 1024});
    ASSERT_TRUE(nic_->Install(Variant(0)).ok());
    a_ = *nic_->FindPortByName("vf:ns/a");
  }
  PacketResult Send(const Flow& f, uint8_t flags, bool reverse = false) {
    std::vector<uint8_t> buf = Frame(f, reverse, flags, 0);
    size_t len = buf.size();
    buf.resize(2048);
    return nic_->ProcessFrame(buf, len, f.in);
  }
  ManualClock clock_;
  std::unique_ptr<SimNic> nic_;
  PortId a_ = 0;
};

TEST_F(FlowCacheTest, EstablishedPacketsHitAfterTheFirstAndNewConnectionsAreNotCached) {
  const Flow f{a_, "10.0.1.1", 4000, kVip, 80, kProtoTcp};
  EXPECT_EQ(Send(f, kTcpSyn).verdict, Verdict::kForward);
  EXPECT_EQ(nic_->flow_cache_stats().uncacheable, 1u) << "a SYN commits: not cacheable";
  EXPECT_EQ(Send(f, kTcpAck).verdict, Verdict::kForward);
  EXPECT_EQ(nic_->flow_cache_stats().insertions, 1u);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(Send(f, kTcpAck).verdict, Verdict::kForward);
  EXPECT_EQ(nic_->flow_cache_stats().hits, 5u);
  EXPECT_EQ(nic_->conntrack().Snapshot().at(0).packets[0], 7u) << "hits are tracked";
}

TEST_F(FlowCacheTest, ProgramChangeInvalidates) {
  const Flow f{a_, "10.0.1.1", 4001, kVip, 80, kProtoTcp};
  Send(f, kTcpSyn);
  Send(f, kTcpAck);
  Send(f, kTcpAck);
  EXPECT_EQ(nic_->flow_cache_stats().hits, 1u);
  auto d = ft::Diff(Variant(0), Variant(1));
  ASSERT_TRUE(d.ok());
  ASSERT_TRUE(nic_->Apply(*d).ok());
  Send(f, kTcpAck);
  EXPECT_EQ(nic_->flow_cache_stats().hits, 1u) << "the entry went stale with the program";
  EXPECT_EQ(nic_->flow_cache_stats().insertions, 2u);
}

TEST_F(FlowCacheTest, ExpiredOrResetConnectionFallsBackToThePipeline) {
  const Flow f{a_, "10.0.1.1", 4002, kVip, 80, kProtoTcp};
  Send(f, kTcpSyn);
  Send(f, kTcpAck);
  Send(f, kTcpRst);  // CLOSE: 10 s
  EXPECT_EQ(nic_->flow_cache_stats().hits, 1u) << "an RST is still tracked as established";
  clock_.AdvanceS(11);
  const uint64_t hits = nic_->flow_cache_stats().hits;
  // The connection expired: the ACK is a fresh (loosely picked up) connection, not a hit.
  EXPECT_EQ(Send(f, kTcpAck).verdict, Verdict::kForward);
  EXPECT_EQ(nic_->flow_cache_stats().hits, hits);
  EXPECT_EQ(nic_->counters().ct_committed, 2u);
}

TEST_F(FlowCacheTest, InvalidSegmentForTheConnectionRunsThePipeline) {
  const Flow f{a_, "10.0.1.1", 4003, kVip, 80, kProtoTcp};
  Send(f, kTcpSyn);
  Send(f, kTcpSyn);  // retransmission: a hit on a SYN_SENT connection is fine
  const uint64_t misses = nic_->flow_cache_stats().misses;
  // SYN+ACK from the client is invalid in SYN_SENT: ct_state inv, dropped by ct_state.
  const PacketResult r = Send(f, kTcpSyn | kTcpAck);
  EXPECT_EQ(r.verdict, Verdict::kDrop);
  EXPECT_EQ(r.reason, DropReason::kDropAction);
  EXPECT_EQ(nic_->flow_cache_stats().misses, misses + 1);
}

TEST_F(FlowCacheTest, AffinityProgramStillCachesEstablishedTraffic) {
  // The ClientIP pick happens on the new connection (never cached); established packets skip
  // the service table and are cached as usual.
  ASSERT_TRUE(nic_->Install(Variant(2)).ok());
  const Flow f{*nic_->FindPortByName("vf:ns/d"), "10.0.1.9", 4004, kVip, 80, kProtoTcp};
  Send(f, kTcpSyn);
  for (int i = 0; i < 3; ++i) Send(f, kTcpAck);
  EXPECT_EQ(nic_->flow_cache_stats().uncacheable, 1u);
  EXPECT_EQ(nic_->flow_cache_stats().hits, 2u);
}

TEST_F(FlowCacheTest, DisabledCacheCountsNothing) {
  auto nic = SimNic::Create(*BuiltinProfile("unlimited"), {&clock_, {}, 256, 0});
  ASSERT_TRUE(nic->Install(Variant(0)).ok());
  const Flow f{*nic->FindPortByName("vf:ns/a"), "10.0.1.1", 4006, kVip, 80, kProtoTcp};
  for (uint8_t flags : {kTcpSyn, kTcpAck, kTcpAck}) {
    std::vector<uint8_t> buf = Frame(f, false, flags, 0);
    size_t len = buf.size();
    buf.resize(2048);
    EXPECT_EQ(nic->ProcessFrame(buf, len, f.in).verdict, Verdict::kForward);
  }
  EXPECT_EQ(nic->flow_cache_stats().hits + nic->flow_cache_stats().misses, 0u);
}

// Probes hash a key from words assembled out of its members (FlowKey::ToWords); they must be the
// key's bytes, so that Hash() and the probe's hash agree and the sets stay where they were.
TEST(FlowKey, WordsAreTheKeyBytesAndHashMixesThem) {
  std::mt19937_64 rng(11);
  for (int i = 0; i < 100; ++i) {
    FlowKey k;
    k.src = {rng(), rng()};
    k.dst = {rng(), rng()};
    k.in_port = static_cast<uint32_t>(rng());
    k.present = static_cast<uint32_t>(rng());
    k.src_port = static_cast<uint16_t>(rng());
    k.dst_port = static_cast<uint16_t>(rng());
    k.icmp_id = static_cast<uint16_t>(rng());
    k.eth_type = static_cast<uint16_t>(rng());
    k.proto = static_cast<uint8_t>(rng());
    k.tcp_flags = static_cast<uint8_t>(rng());
    k.icmp_type = static_cast<uint8_t>(rng());
    k.pkt_flags = static_cast<uint8_t>(rng());
    const FlowKey::Words w = k.ToWords();
    uint64_t bytes[7];
    std::memcpy(bytes, &k, sizeof(bytes));
    EXPECT_EQ(std::memcmp(w.data(), bytes, sizeof(bytes)), 0);
    EXPECT_EQ(FlowKey::FromWords(w), k);
    uint64_t h = 0x9e3779b97f4a7c15ull;  // the mix the cache has always used
    for (uint64_t x : bytes) h = (h ^ x) * 0xbf58476d1ce4e5b9ull + (h >> 31);
    h ^= h >> 29;
    h *= 0x94d049bb133111ebull;
    EXPECT_EQ(k.Hash(), h ^ (h >> 32));
    EXPECT_EQ(FlowKey::HashWords(w), k.Hash());
  }
}

}  // namespace
}  // namespace nicflow::sim
