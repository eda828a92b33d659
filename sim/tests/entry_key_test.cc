// The simulator's entry index compares and hashes entries without building their keys
// (device_state.h: SameEntryKey, EntryKeyHash, EntryHasKey); it must agree with the key every
// other component uses, flowtables::EntryKey, or an apply could miss an installed entry or take
// one entry for another.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "device_state.h"
#include "nicflow/flowtables/ir.h"

namespace nicflow::sim {
namespace {

namespace ft = flowtables;

// Entries drawn from a small space, so that equal keys, and keys differing in one detail (the
// match kind, a prefix length, one bound of a range), come up often. Canonical: fields sorted,
// one match per field.
ft::Entry RandomEntry(std::mt19937_64& rng) {
  static const Field kFields[] = {Field::kInPort, Field::kIpv4Dst, Field::kIpProto, Field::kL4Dst,
                                  Field::kIpv6Src};
  ft::Entry e;
  e.table = static_cast<ft::TableId>(rng() % 2);
  e.priority = static_cast<int32_t>(rng() % 2);
  auto small = [&] { return U128{rng() % 3 == 0 ? rng() % 2 : 0, rng() % 3}; };
  for (Field f : kFields) {
    if (rng() % 2) continue;
    ft::FieldMatch m;
    m.field = f;
    switch (rng() % 4) {
      case 0:
        m.value = ft::ExactMatch{small()};
        break;
      case 1:
        m.value = ft::TernaryMatch{small(), small()};
        break;
      case 2:
        m.value = ft::LpmMatch{small(), static_cast<int>(rng() % 3 ? rng() % 2 * 24 : rng() % 129)};
        break;
      default:
        m.value = ft::RangeMatch{small(), small()};
        break;
    }
    e.match.push_back(m);
  }
  return e;
}

TEST(EntryKey, IndexComparisonAndHashAgreeWithEntryKeyOnRandomEntries) {
  std::mt19937_64 rng(11);
  std::vector<ft::Entry> entries;
  for (int i = 0; i < 400; ++i) entries.push_back(RandomEntry(rng));
  size_t equal = 0;
  for (const ft::Entry& a : entries) {
    const std::string ka = ft::EntryKey(a);
    EXPECT_TRUE(EntryHasKey(a, ka)) << ka;
    for (const ft::Entry& b : entries) {
      const std::string kb = ft::EntryKey(b);
      const bool same = ka == kb;
      equal += same;
      ASSERT_EQ(SameEntryKey(a, b), same) << ka << " / " << kb;
      ASSERT_EQ(EntryHasKey(a, kb), same) << ka << " / " << kb;
      if (same) {
        ASSERT_EQ(EntryKeyHash(a), EntryKeyHash(b)) << ka;
      }
    }
  }
  // Beyond each entry with itself, some pairs are equal: the comparison was tested both ways.
  EXPECT_GT(equal, entries.size() + 20);
}

}  // namespace
}  // namespace nicflow::sim
