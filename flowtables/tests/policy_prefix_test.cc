#include "policy_prefix.h"

#include <random>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace nicflow::flowtables {
namespace {

IpPrefix P(std::string_view text) { return IpPrefix::Parse(text).value(); }
IpAddr A(std::string_view text) { return IpAddr::Parse(text).value(); }

PrefixBitsItem Item(std::string_view cidr, uint32_t bits,
                    std::vector<std::string_view> except = {}) {
  PrefixBitsItem item{P(cidr), {}, bits};
  for (auto e : except) item.except.push_back(P(e));
  return item;
}

// What an LPM table holding `entries` gives `addr` (0 on a miss).
uint32_t Lookup(const std::vector<PrefixBits>& entries, const IpAddr& addr) {
  int best_len = -1;
  uint32_t bits = 0;
  for (const PrefixBits& e : entries) {
    if (e.prefix.Contains(addr) && e.prefix.prefix_len_bits > best_len) {
      best_len = e.prefix.prefix_len_bits;
      bits = e.bits;
    }
  }
  return bits;
}

// The definition: the OR of the bits of every item whose range (cidr minus excepts) holds addr.
uint32_t Reference(const std::vector<PrefixBitsItem>& items, const IpAddr& addr) {
  uint32_t bits = 0;
  for (const PrefixBitsItem& item : items) {
    if (!item.cidr.Contains(addr)) continue;
    bool excepted = false;
    for (const IpPrefix& e : item.except) excepted |= e.Contains(addr);
    if (!excepted) bits |= item.bits;
  }
  return bits;
}

TEST(ComputePrefixBits, NestedPrefixesGetTheUnionOfTheirEnclosingItems) {
  std::vector<PrefixBitsItem> items{Item("10.0.0.0/8", 1), Item("10.1.0.0/16", 2)};
  EXPECT_THAT(ComputePrefixBits(items), testing::ElementsAre(PrefixBits{P("10.0.0.0/8"), 1, 0},
                                                             PrefixBits{P("10.1.0.0/16"), 3, 1}));
}

TEST(ComputePrefixBits, ExceptPrefixClearsTheBitOfItsBlock) {
  std::vector<PrefixBitsItem> items{Item("10.0.0.0/8", 1, {"10.1.0.0/16"})};
  EXPECT_THAT(ComputePrefixBits(items), testing::ElementsAre(PrefixBits{P("10.0.0.0/8"), 1, 0},
                                                             PrefixBits{P("10.1.0.0/16"), 0, 0}));
}

TEST(ComputePrefixBits, ExceptKeepsTheBitsOfOtherItemsThatStillContainIt) {
  std::vector<PrefixBitsItem> items{Item("10.0.0.0/8", 1, {"10.1.0.0/16"}), Item("10.0.0.0/8", 2),
                                    Item("10.1.2.3/32", 4)};
  EXPECT_THAT(ComputePrefixBits(items), testing::ElementsAre(PrefixBits{P("10.0.0.0/8"), 3, 0},
                                                             PrefixBits{P("10.1.0.0/16"), 2, 1},
                                                             PrefixBits{P("10.1.2.3/32"), 6, 2}));
}

TEST(ComputePrefixBits, EntriesThatChangeNothingAreLeftOut) {
  // The host prefix adds no bit its enclosing block does not give already.
  std::vector<PrefixBitsItem> items{Item("10.0.0.0/8", 1), Item("10.2.3.4/32", 1)};
  EXPECT_THAT(ComputePrefixBits(items), testing::ElementsAre(PrefixBits{P("10.0.0.0/8"), 1, 0}));
}

TEST(ComputePrefixBits, AnExceptOutsideItsBlockIsIgnored) {
  std::vector<PrefixBitsItem> items{Item("10.0.0.0/8", 1, {"192.168.0.0/16"})};
  EXPECT_THAT(ComputePrefixBits(items), testing::ElementsAre(PrefixBits{P("10.0.0.0/8"), 1, 0}));
}

TEST(ComputePrefixBits, FamiliesAreIndependent) {
  std::vector<PrefixBitsItem> items{Item("0.0.0.0/0", 1), Item("2001:db8::/32", 2),
                                    Item("2001:db8::5/128", 4)};
  const auto entries = ComputePrefixBits(items);
  EXPECT_EQ(entries.size(), 3u);
  EXPECT_EQ(Lookup(entries, A("192.0.2.1")), 1u);
  EXPECT_EQ(Lookup(entries, A("2001:db8::1")), 2u);
  EXPECT_EQ(Lookup(entries, A("2001:db8::5")), 6u);
  EXPECT_EQ(Lookup(entries, A("2001:db9::1")), 0u);
}

// Like the OVS classifier tests: the table must agree with the definition for every address.
TEST(ComputePrefixBits, AgreesWithTheDefinitionOnRandomItems) {
  std::mt19937 rng(7);
  for (int round = 0; round < 200; ++round) {
    std::vector<PrefixBitsItem> items;
    const int n = 1 + static_cast<int>(rng() % 6);
    for (int i = 0; i < n; ++i) {
      const int len = 24 + static_cast<int>(rng() % 9);
      IpPrefix cidr{IpAddr::V4(0x0a000000u | (rng() & 0xff)).Masked(len), len};
      PrefixBitsItem item{cidr, {}, uint32_t{1} << (rng() % 4)};
      for (int e = static_cast<int>(rng() % 3); e > 0; --e) {
        const int elen = len + static_cast<int>(rng() % (33 - len));
        const uint32_t inside = cidr.addr.v4() | (rng() & (len == 32 ? 0u : (~0u >> len)));
        item.except.push_back(IpPrefix{IpAddr::V4(inside).Masked(elen), elen});
      }
      items.push_back(item);
    }
    const auto entries = ComputePrefixBits(items);
    for (uint32_t host = 0; host < 256; ++host) {
      const IpAddr addr = IpAddr::V4(0x0a000000u | host);
      ASSERT_EQ(Lookup(entries, addr), Reference(items, addr))
          << "round " << round << " address " << addr.ToString();
    }
  }
}

}  // namespace
}  // namespace nicflow::flowtables
