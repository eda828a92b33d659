#include "nicflow/sim/classifier.h"

#include <gtest/gtest.h>

#include <random>

#include "test_programs.h"

namespace nicflow::sim {
namespace {

namespace ft = flowtables;
using F = ft::Field;
using K = ft::MatchKind;
using testing::Exact;
using testing::Range;
using testing::Ternary;

PacketFields V4Packet(uint32_t src, uint32_t dst, uint8_t proto, uint16_t sp, uint16_t dp) {
  PacketFields f;
  f.set(F::kIpv4Src, U128::Of(src));
  f.set(F::kIpv4Dst, U128::Of(dst));
  f.set(F::kIpProto, U128::Of(proto));
  f.set(F::kL4Src, U128::Of(sp));
  f.set(F::kL4Dst, U128::Of(dp));
  f.set(F::kMetaFlags, U128::Of(0));
  return f;
}

std::vector<ft::KeyField> PolicyKeys() {
  return {{F::kIpv4Src, K::kLpm}, {F::kIpv4Dst, K::kTernary},   {F::kIpProto, K::kExact},
          {F::kL4Dst, K::kRange}, {F::kMetaFlags, K::kTernary}, {F::kIpv6Src, K::kLpm}};
}

// Values drawn from small pools so random rules and packets actually overlap.
struct Gen {
  std::mt19937_64 rng;
  uint32_t Addr() { return 0x0a000000u | static_cast<uint32_t>(rng() % 4) << 8 | (rng() % 4); }
  uint16_t Port() { return static_cast<uint16_t>(rng() % 12); }

  std::vector<ft::FieldMatch> Rule() {
    std::vector<ft::FieldMatch> m;
    if (rng() % 2) {
      const int len = static_cast<int>(rng() % 33);
      m.push_back({F::kIpv4Src, ft::LpmMatch{U128::Of(Addr()) & PrefixMaskBits(32, len), len}});
    }
    if (rng() % 2) {
      const uint64_t mask =
          std::array<uint64_t, 4>{0xffffffff, 0xffffff00, 0xff00ff00, 0x3}[rng() % 4];
      m.push_back(Ternary(F::kIpv4Dst, Addr(), mask));
    }
    if (rng() % 3 == 0) m.push_back(Exact(F::kIpProto, rng() % 2 ? 6 : 17));
    if (rng() % 2) {
      uint16_t a = Port(), b = Port();
      if (a > b) std::swap(a, b);
      if (rng() % 4 == 0) a = 0, b = 65535;
      if (rng() % 4 == 0) a = 8, b = 11;  // aligned block: becomes a prefix
      m.push_back(Range(F::kL4Dst, a, b));
    }
    if (rng() % 4 == 0) m.push_back(Ternary(F::kMetaFlags, rng() % 4, rng() % 4));
    if (rng() % 16 == 0) m.push_back({F::kIpv6Src, ft::LpmMatch{U128{}, 0}});
    return m;
  }
  PacketFields Packet() {
    PacketFields f = V4Packet(Addr(), Addr(), rng() % 2 ? 6 : 17, Port(), Port());
    f.set(F::kMetaFlags, U128::Of(rng() % 4));
    return f;
  }
};

TEST(Classifier, TupleSpaceAgreesWithLinearOnRandomRulesAndPackets) {
  Gen g{std::mt19937_64(1)};
  size_t hits = 0, cases = 0;
  for (int round = 0; round < 40; ++round) {
    auto tss = MakeTupleSpaceClassifier(PolicyKeys());
    auto lin = MakeLinearClassifier(PolicyKeys());
    const int rules = 1 + static_cast<int>(g.rng() % 120);
    for (int i = 0; i < rules; ++i) {
      // Distinct priorities except for a few deliberate ties.
      const int32_t prio = static_cast<int32_t>(g.rng() % 10 == 0 ? 5 : g.rng() % 1000);
      auto m = g.Rule();
      ASSERT_TRUE(tss->Insert(i, prio, m).ok());
      ASSERT_TRUE(lin->Insert(i, prio, m).ok());
    }
    // Remove a few, so removal paths are compared too.
    for (int i = 0; i < rules; i += 7) {
      ASSERT_TRUE(tss->Remove(i).ok());
      ASSERT_TRUE(lin->Remove(i).ok());
    }
    for (int p = 0; p < 250; ++p) {
      const PacketFields f = g.Packet();
      const LookupResult a = tss->Lookup(f);
      const LookupResult b = lin->Lookup(f);
      ASSERT_EQ(a.rule, b.rule) << "round " << round << " packet " << p;
      ASSERT_EQ(a.tie, b.tie) << "round " << round << " packet " << p;
      hits += a.rule != kNoRule;
      ++cases;
    }
  }
  EXPECT_GT(hits, cases / 4) << "the generator must produce real matches";
}

TEST(Classifier, PartitionsOnTheExactSetTagAndStillAgreesWithLinear) {
  const std::vector<ft::KeyField> keys = {{F::kMetaDstSet, K::kExact},
                                          {F::kIpProto, K::kTernary},
                                          {F::kL4Dst, K::kRange},
                                          {F::kMetaPeerBits, K::kTernary}};
  std::mt19937_64 rng(5);
  auto tss = MakeTupleSpaceClassifier(keys);
  auto lin = MakeLinearClassifier(keys);
  for (uint32_t i = 0; i < 600; ++i) {
    std::vector<ft::FieldMatch> m;
    if (rng() % 10) m.push_back(Exact(F::kMetaDstSet, 1 + rng() % 20));
    if (rng() % 2) m.push_back(Ternary(F::kIpProto, rng() % 2 ? 6 : 17, 0xff));
    uint16_t a = static_cast<uint16_t>(rng() % 16), b = static_cast<uint16_t>(rng() % 16);
    if (a > b) std::swap(a, b);
    m.push_back(Range(F::kL4Dst, a, b));
    const uint64_t bit = 1ull << (rng() % 4);
    m.push_back(Ternary(F::kMetaPeerBits, bit, bit));
    const auto prio = static_cast<int32_t>(rng() % 100000);
    ASSERT_TRUE(tss->Insert(i, prio, m).ok());
    ASSERT_TRUE(lin->Insert(i, prio, m).ok());
  }
  for (uint32_t i = 0; i < 600; i += 5) {
    ASSERT_TRUE(tss->Remove(i).ok());
    ASSERT_TRUE(lin->Remove(i).ok());
  }
  EXPECT_GT(GetTupleSpaceStats(*tss).partitions, 10u);
  size_t hits = 0;
  for (int p = 0; p < 5000; ++p) {
    PacketFields f = V4Packet(1, 2, rng() % 2 ? 6 : 17, 1, static_cast<uint16_t>(rng() % 16));
    f.set(F::kMetaDstSet, U128::Of(rng() % 22));
    f.set(F::kMetaPeerBits, U128::Of(rng() % 16));
    const LookupResult a = tss->Lookup(f), b = lin->Lookup(f);
    ASSERT_EQ(a.rule, b.rule) << p;
    ASSERT_EQ(a.tie, b.tie) << p;
    hits += a.rule != kNoRule;
  }
  EXPECT_GT(hits, 1000u);
}

TEST(Classifier, SmallPartitionsAreScannedAndAgreeWithLinearThroughGrowthAndRemoval) {
  // Partitions of 1-12 rules (crossing the small-list bound), a few wildcard-set rules, equal
  // priorities (ties), many tuples (masks past the 64th share a bit), removals and re-inserts.
  const std::vector<ft::KeyField> keys = {{F::kMetaDstSet, K::kExact},
                                          {F::kIpv4Src, K::kLpm},
                                          {F::kIpProto, K::kTernary},
                                          {F::kL4Dst, K::kRange}};
  std::mt19937_64 rng(9);
  auto tss = MakeTupleSpaceClassifier(keys);
  auto lin = MakeLinearClassifier(keys);
  auto rule = [&] {
    std::vector<ft::FieldMatch> m;
    if (rng() % 20) m.push_back(Exact(F::kMetaDstSet, 1 + rng() % 60));
    const int len = static_cast<int>(rng() % 33);
    const uint64_t ip = (0x0a000000 | (rng() % 4) << 8) & PrefixMaskBits(32, len).lo;
    m.push_back({F::kIpv4Src, ft::LpmMatch{U128::Of(ip), len}});
    if (rng() % 2) m.push_back(Ternary(F::kIpProto, rng() % 2 ? 6 : 17, 0xff));
    if (rng() % 2) {
      uint16_t a = static_cast<uint16_t>(rng() % 40), b = static_cast<uint16_t>(rng() % 40);
      if (a > b) std::swap(a, b);
      m.push_back(Range(F::kL4Dst, a, b));
    }
    return m;
  };
  uint32_t next = 0;
  std::vector<uint32_t> live;
  for (int round = 0; round < 6; ++round) {
    for (int i = 0; i < 150; ++i) {
      const auto prio = static_cast<int32_t>(rng() % 4 == 0 ? 50 : rng() % 100);
      const auto m = rule();
      ASSERT_TRUE(tss->Insert(next, prio, m).ok());
      ASSERT_TRUE(lin->Insert(next, prio, m).ok());
      live.push_back(next++);
    }
    for (size_t i = 0; i < live.size(); i += 3) {
      ASSERT_TRUE(tss->Remove(live[i]).ok());
      ASSERT_TRUE(lin->Remove(live[i]).ok());
      live[i] = live.back();
      live.pop_back();
    }
    size_t hits = 0;
    for (int p = 0; p < 3000; ++p) {
      PacketFields f = V4Packet(0x0a000000 | static_cast<uint32_t>(rng() % 1024), 2,
                                rng() % 2 ? 6 : 17, 1, static_cast<uint16_t>(rng() % 40));
      if (rng() % 10) f.set(F::kMetaDstSet, U128::Of(rng() % 62));
      const LookupResult a = tss->Lookup(f), b = lin->Lookup(f);
      ASSERT_EQ(a.rule, b.rule) << "round " << round << " packet " << p;
      ASSERT_EQ(a.tie, b.tie) << "round " << round << " packet " << p;
      hits += a.rule != kNoRule;
    }
    EXPECT_GT(hits, 1000u);
  }
  EXPECT_GT(GetTupleSpaceStats(*tss).tuples, 64u) << "tuples past the 64th are exercised";
}

TEST(Classifier, BatchedInsertsAgreeWithOneByOneAndFailLikeThem) {
  const std::vector<ft::KeyField> keys = {{F::kMetaDstSet, K::kExact},
                                          {F::kIpProto, K::kTernary},
                                          {F::kL4Dst, K::kRange},
                                          {F::kMetaPeerBits, K::kTernary}};
  std::mt19937_64 rng(9);
  auto batched = MakeTupleSpaceClassifier(keys);
  auto single = MakeTupleSpaceClassifier(keys);
  auto lin = MakeLinearClassifier(keys);
  std::vector<std::vector<ft::FieldMatch>> matches(900);
  for (uint32_t chunk = 0; chunk < 3; ++chunk) {
    std::vector<Classifier::RuleSpec> specs;
    for (uint32_t i = chunk * 300; i < (chunk + 1) * 300; ++i) {
      std::vector<ft::FieldMatch>& m = matches[i];
      if (rng() % 10) m.push_back(Exact(F::kMetaDstSet, 1 + rng() % 20));
      if (rng() % 2) m.push_back(Ternary(F::kIpProto, rng() % 2 ? 6 : 17, 0xff));
      uint16_t a = static_cast<uint16_t>(rng() % 16), b = static_cast<uint16_t>(rng() % 16);
      if (a > b) std::swap(a, b);
      m.push_back(Range(F::kL4Dst, a, b));
      const auto prio = static_cast<int32_t>(rng() % 50);  // many ties, shared buckets
      specs.push_back({i, prio, m});
      ASSERT_TRUE(single->Insert(i, prio, m).ok());
      ASSERT_TRUE(lin->Insert(i, prio, m).ok());
    }
    ASSERT_TRUE(batched->InsertBatch(specs).ok());
    for (uint32_t i = chunk * 300; i < (chunk + 1) * 300; i += 7) {
      ASSERT_TRUE(batched->Remove(i).ok());
      ASSERT_TRUE(single->Remove(i).ok());
      ASSERT_TRUE(lin->Remove(i).ok());
    }
  }
  for (int p = 0; p < 5000; ++p) {
    PacketFields f = V4Packet(1, 2, rng() % 2 ? 6 : 17, 1, static_cast<uint16_t>(rng() % 16));
    f.set(F::kMetaDstSet, U128::Of(rng() % 22));
    f.set(F::kMetaPeerBits, U128::Of(rng() % 16));
    const LookupResult a = batched->Lookup(f), b = single->Lookup(f), c = lin->Lookup(f);
    ASSERT_EQ(a.rule, b.rule) << p;
    ASSERT_EQ(a.tie, b.tie) << p;
    ASSERT_EQ(a.rule, c.rule) << p;
  }
  // An invalid rule: the rules before it are in, it and those after are not (as one by one).
  const std::vector<ft::FieldMatch> ok = {Exact(F::kMetaDstSet, 3)};
  const std::vector<ft::FieldMatch> bad = {Exact(F::kL4Src, 1)};
  const std::vector<Classifier::RuleSpec> specs = {{1000, 1, ok}, {1001, 1, bad}, {1002, 1, ok}};
  const size_t before = batched->size();
  EXPECT_EQ(batched->InsertBatch(specs).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(batched->size(), before + 1);
  const std::vector<Classifier::RuleSpec> again = {{1000, 1, ok}};
  EXPECT_EQ(batched->InsertBatch(again).code(), absl::StatusCode::kAlreadyExists);
}

TEST(Classifier, HighestPriorityWinsAcrossTuples) {
  auto c = MakeTupleSpaceClassifier(PolicyKeys());
  ASSERT_TRUE(c->Insert(1, 10, std::vector{testing::Lpm(F::kIpv4Src, "10.0.0.0/8")}).ok());
  ASSERT_TRUE(c->Insert(2, 20, std::vector{testing::Lpm(F::kIpv4Src, "10.1.0.0/16")}).ok());
  ASSERT_TRUE(c->Insert(3, 5, std::vector{testing::Lpm(F::kIpv4Src, "10.1.2.3/32")}).ok());
  EXPECT_EQ(c->Lookup(V4Packet(0x0a010203, 0, 6, 1, 1)).rule, 2u);
  EXPECT_EQ(c->Lookup(V4Packet(0x0a020203, 0, 6, 1, 1)).rule, 1u);
  EXPECT_EQ(c->Lookup(V4Packet(0x0b020203, 0, 6, 1, 1)).rule, kNoRule);
  ASSERT_TRUE(c->Remove(2).ok());
  EXPECT_EQ(c->Lookup(V4Packet(0x0a010203, 0, 6, 1, 1)).rule, 1u);
}

TEST(Classifier, MentionedFieldMissingFromThePacketNeverMatches) {
  auto c = MakeTupleSpaceClassifier(PolicyKeys());
  // ipv6_src ::/0 still requires an IPv6 packet (an ipBlock 0.0.0.0/0 must not admit IPv6).
  ASSERT_TRUE(c->Insert(1, 10, std::vector{ft::FieldMatch{F::kIpv6Src, ft::LpmMatch{{}, 0}}}).ok());
  EXPECT_EQ(c->Lookup(V4Packet(1, 2, 6, 1, 1)).rule, kNoRule);
  PacketFields f = V4Packet(1, 2, 6, 1, 1);
  f.present &= ~FieldBit(F::kL4Dst);  // e.g. ICMP
  ASSERT_TRUE(c->Insert(2, 5, std::vector{Range(F::kL4Dst, 0, 65535)}).ok());
  EXPECT_EQ(c->Lookup(f).rule, kNoRule);
  EXPECT_EQ(c->Lookup(V4Packet(1, 2, 6, 1, 1)).rule, 2u);
}

TEST(Classifier, RejectsMatchesTheSchemaDoesNotDeclare) {
  auto c = MakeTupleSpaceClassifier(PolicyKeys());
  EXPECT_EQ(c->Insert(1, 1, std::vector{Exact(F::kL4Src, 1)}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(c->Insert(1, 1, std::vector{Exact(F::kL4Dst, 1)}).code(),
            absl::StatusCode::kInvalidArgument);  // declared as a range
  EXPECT_EQ(c->Insert(1, 1, std::vector{Range(F::kL4Dst, 9, 3)}).code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(c->Insert(1, 1, std::vector{Range(F::kL4Dst, 3, 9)}).ok());
  EXPECT_EQ(c->Insert(1, 1, {}).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(c->Remove(7).code(), absl::StatusCode::kNotFound);
}

TEST(Classifier, NonAlignedRangesAreCheckedPerRuleAndAlignedOnesBecomePrefixes) {
  auto c = MakeTupleSpaceClassifier(PolicyKeys());
  ASSERT_TRUE(c->Insert(1, 10, std::vector{Range(F::kL4Dst, 1000, 2000)}).ok());
  ASSERT_TRUE(c->Insert(2, 10, std::vector{Range(F::kL4Dst, 1024, 2047)}).ok());
  ASSERT_TRUE(c->Insert(3, 10, std::vector{Range(F::kL4Dst, 80, 80)}).ok());
  const TupleSpaceStats s = GetTupleSpaceStats(*c);
  EXPECT_EQ(s.range_checked_rules, 1u);
  EXPECT_EQ(s.tuples, 3u);
  EXPECT_EQ(c->Lookup(V4Packet(1, 2, 6, 1, 999)).rule, kNoRule);
  EXPECT_EQ(c->Lookup(V4Packet(1, 2, 6, 1, 1000)).rule, 1u);
  EXPECT_EQ(c->Lookup(V4Packet(1, 2, 6, 1, 80)).rule, 3u);
  const LookupResult both = c->Lookup(V4Packet(1, 2, 6, 1, 1500));
  EXPECT_EQ(both.rule, 1u) << "equal priority: the first inserted wins";
  EXPECT_TRUE(both.tie);
}

}  // namespace
}  // namespace nicflow::sim
