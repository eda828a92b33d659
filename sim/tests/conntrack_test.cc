#include "nicflow/sim/conntrack.h"

#include <gtest/gtest.h>

#include "nicflow/sim/packet.h"

namespace nicflow::sim {
namespace {

constexpr uint64_t kS = 1'000'000'000ull;

CtTuple Tcp(uint32_t src, uint16_t sp, uint32_t dst, uint16_t dp) {
  return {U128::Of(src), U128::Of(dst), sp, dp, kProtoTcp, false, 0};
}

TEST(Conntrack, TcpHandshakeWalksSynSentSynRecvEstablished) {
  Conntrack ct(16);
  const CtTuple c = Tcp(1, 1000, 2, 80);
  ASSERT_EQ(ct.Commit(c, c, kTcpSyn, 60, kS), CtCommitResult::kCommitted);
  auto reply = ct.Find(Reverse(c), kS);
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->dir, CtDir::kReply);
  EXPECT_EQ(ct.entry(reply->slot).tcp, TcpState::kSynSent);
  ASSERT_TRUE(ct.Track(*reply, kTcpSyn | kTcpAck, 60, kS));
  EXPECT_EQ(ct.entry(reply->slot).tcp, TcpState::kSynRecv);
  auto orig = ct.Find(c, kS);
  ASSERT_TRUE(ct.Track(*orig, kTcpAck, 60, kS));
  EXPECT_EQ(ct.entry(orig->slot).tcp, TcpState::kEstablished);
  // Established lives 5 days; a day later it is still there.
  EXPECT_TRUE(ct.Find(c, kS + 86400 * kS));
  EXPECT_FALSE(ct.Track(*orig, kTcpSyn | kTcpFin, 60, kS)) << "impossible flags are invalid";
}

TEST(Conntrack, SynSentTimesOutAfter120Seconds) {
  Conntrack ct(16);
  const CtTuple c = Tcp(1, 1000, 2, 80);
  ASSERT_EQ(ct.Commit(c, c, kTcpSyn, 60, kS), CtCommitResult::kCommitted);
  EXPECT_TRUE(ct.Find(c, kS + 119 * kS));
  EXPECT_FALSE(ct.Find(c, kS + 120 * kS));
  EXPECT_EQ(ct.size(), 0u);
}

TEST(Conntrack, FinFinAckReachesTimeWaitAndRstCloses) {
  Conntrack ct(16);
  const CtTuple c = Tcp(1, 1000, 2, 80);
  ASSERT_EQ(ct.Commit(c, c, kTcpAck, 60, kS), CtCommitResult::kCommitted);  // loose pickup
  auto o = *ct.Find(c, kS);
  auto r = *ct.Find(Reverse(c), kS);
  EXPECT_EQ(ct.entry(o.slot).tcp, TcpState::kEstablished);
  ct.Track(o, kTcpFin | kTcpAck, 60, kS);
  EXPECT_EQ(ct.entry(o.slot).tcp, TcpState::kFinWait);
  ct.Track(r, kTcpAck, 60, kS);
  EXPECT_EQ(ct.entry(o.slot).tcp, TcpState::kCloseWait);
  ct.Track(r, kTcpFin | kTcpAck, 60, kS);
  EXPECT_EQ(ct.entry(o.slot).tcp, TcpState::kLastAck);
  ct.Track(o, kTcpAck, 60, kS);
  EXPECT_EQ(ct.entry(o.slot).tcp, TcpState::kTimeWait);
  EXPECT_TRUE(ct.Find(c, kS + 119 * kS));
  EXPECT_FALSE(ct.Find(c, kS + 241 * kS));
  const CtTuple d = Tcp(1, 1001, 2, 80);
  ASSERT_EQ(ct.Commit(d, d, kTcpSyn, 60, kS), CtCommitResult::kCommitted);
  ct.Track(*ct.Find(Reverse(d), kS), kTcpRst, 40, kS);
  EXPECT_EQ(ct.entry(ct.Find(d, kS)->slot).tcp, TcpState::kClose);
  EXPECT_FALSE(ct.Find(d, kS + 10 * kS));
}

TEST(Conntrack, FirstSegmentsThatCannotStartAConnectionAreInvalid) {
  EXPECT_TRUE(TcpCanStart(kTcpSyn));
  EXPECT_TRUE(TcpCanStart(kTcpAck));
  EXPECT_FALSE(TcpCanStart(kTcpSyn | kTcpAck));
  EXPECT_FALSE(TcpCanStart(kTcpRst));
  EXPECT_FALSE(TcpCanStart(kTcpFin | kTcpAck));
  Conntrack ct(4);
  const CtTuple c = Tcp(1, 1, 2, 2);
  EXPECT_EQ(ct.Commit(c, c, kTcpRst, 40, kS), CtCommitResult::kInvalid);
}

TEST(Conntrack, UdpLives30SecondsThen120OnceReplied) {
  Conntrack ct(16);
  CtTuple u{U128::Of(1), U128::Of(2), 5000, 53, kProtoUdp, false, 0};
  ASSERT_EQ(ct.Commit(u, u, 0, 60, kS), CtCommitResult::kCommitted);
  EXPECT_FALSE(ct.Find(u, kS + 30 * kS));
  ASSERT_EQ(ct.Commit(u, u, 0, 60, kS), CtCommitResult::kCommitted);
  ct.Track(*ct.Find(Reverse(u), kS + kS), 0, 60, kS + kS);
  EXPECT_TRUE(ct.Find(u, kS + 100 * kS));
  EXPECT_FALSE(ct.Find(u, kS + 122 * kS));
}

TEST(Conntrack, NatBindingKeysTheReplyByTheTranslatedTuple) {
  Conntrack ct(16);
  const CtTuple orig = Tcp(0x0a000001, 40000, 0x0a600001, 80);  // pod -> ClusterIP
  CtTuple xlat = orig;
  xlat.dst = U128::Of(0x0af40005);  // DNAT to an endpoint
  xlat.dst_port = 8080;
  ASSERT_EQ(ct.Commit(orig, xlat, kTcpSyn, 60, kS), CtCommitResult::kCommitted);
  const CtEntry& e = ct.entry(ct.Find(orig, kS)->slot);
  EXPECT_TRUE(e.dnat);
  EXPECT_FALSE(e.snat);
  auto r = ct.Find(Reverse(xlat), kS);  // endpoint -> pod
  ASSERT_TRUE(r);
  EXPECT_EQ(r->dir, CtDir::kReply);
  EXPECT_FALSE(ct.Find(Reverse(orig), kS)) << "replies come from the endpoint, not the VIP";
  // Another connection whose translated tuple equals ours clashes.
  CtTuple other = Tcp(0x0a000001, 40000, 0x0a600002, 80);
  EXPECT_EQ(ct.Commit(other, xlat, kTcpSyn, 60, kS), CtCommitResult::kClash);
  EXPECT_EQ(ct.Commit(orig, xlat, kTcpSyn, 60, kS), CtCommitResult::kExists);
}

TEST(Conntrack, FullTableRefusesNewConnectionsUntilExpiry) {
  Conntrack ct(2);
  for (uint16_t p = 1; p <= 2; ++p) {
    const CtTuple c = Tcp(1, p, 2, 80);
    ASSERT_EQ(ct.Commit(c, c, kTcpSyn, 60, kS), CtCommitResult::kCommitted);
  }
  const CtTuple c = Tcp(1, 3, 2, 80);
  EXPECT_EQ(ct.Commit(c, c, kTcpSyn, 60, kS), CtCommitResult::kFull);
  EXPECT_EQ(ct.Expire(kS + 121 * kS), 2u);
  EXPECT_EQ(ct.Commit(c, c, kTcpSyn, 60, kS + 121 * kS), CtCommitResult::kCommitted);
}

}  // namespace
}  // namespace nicflow::sim
