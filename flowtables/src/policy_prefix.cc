#include "policy_prefix.h"

#include <algorithm>
#include <bitset>

#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"

namespace nicflow::flowtables {

namespace {

struct PrefixHash {
  size_t operator()(const IpPrefix& p) const {
    return absl::HashOf(p.addr.bytes(), p.prefix_len_bits, static_cast<int>(p.family()));
  }
};

// What the items say about one distinct prefix.
struct PrefixRefs {
  std::vector<int> cidr_of;    // items whose cidr is this prefix
  std::vector<int> except_of;  // items that list this prefix as an except
  uint32_t bits = 0;           // computed: the union an address matching it longest carries
};

using PrefixIndex = absl::flat_hash_map<IpPrefix, PrefixRefs, PrefixHash>;

int FamilyIndex(IpFamily f) { return f == IpFamily::kV4 ? 0 : 1; }

// Bits of `p` and the item that decided them; `parent_bits` receives what the longest proper
// enclosing prefix gives (0 for none). Enclosing prefixes must already be computed.
uint32_t EvaluatePrefix(const IpPrefix& p, const PrefixIndex& index,
                        const std::bitset<129>& lengths, std::span<const PrefixBitsItem> items,
                        int& deciding_item, uint32_t& parent_bits) {
  std::vector<int> in;
  std::vector<int> out;
  parent_bits = 0;
  for (int len = 0; len <= p.prefix_len_bits; ++len) {
    if (!lengths.test(len)) continue;
    auto it = index.find(IpPrefix{p.addr.Masked(len), len});
    if (it == index.end()) continue;
    in.insert(in.end(), it->second.cidr_of.begin(), it->second.cidr_of.end());
    out.insert(out.end(), it->second.except_of.begin(), it->second.except_of.end());
    if (len < p.prefix_len_bits) parent_bits = it->second.bits;
  }
  // The deciding item: one whose own cidr is `p` if it contributes, else the first contributing.
  uint32_t bits = 0;
  deciding_item = -1;
  bool deciding_is_own = false;
  for (int i : in) {
    if (std::find(out.begin(), out.end(), i) != out.end() || items[i].bits == 0) continue;
    bits |= items[i].bits;
    const bool own = items[i].cidr == p;
    if (deciding_item < 0 || (own && !deciding_is_own) ||
        (own == deciding_is_own && i < deciding_item)) {
      deciding_item = i;
      deciding_is_own = own;
    }
  }
  if (deciding_item < 0) {
    for (int i : out) deciding_item = deciding_item < 0 ? i : std::min(deciding_item, i);
    for (int i : in) deciding_item = deciding_item < 0 ? i : std::min(deciding_item, i);
  }
  return bits;
}

}  // namespace

std::vector<PrefixBits> ComputePrefixBits(std::span<const PrefixBitsItem> items) {
  PrefixIndex index;
  std::bitset<129> lengths[2];
  for (int i = 0; i < static_cast<int>(items.size()); ++i) {
    const PrefixBitsItem& item = items[i];
    index[item.cidr].cidr_of.push_back(i);
    lengths[FamilyIndex(item.cidr.family())].set(item.cidr.prefix_len_bits);
    for (const IpPrefix& e : item.except) {
      // An except outside its cidr removes nothing (the API forbids it; be safe anyway).
      if (!item.cidr.Contains(e)) continue;
      index[e].except_of.push_back(i);
      lengths[FamilyIndex(e.family())].set(e.prefix_len_bits);
    }
  }
  // Shorter prefixes first, so every enclosing prefix is computed before the ones inside it.
  std::vector<IpPrefix> order;
  order.reserve(index.size());
  for (const auto& [p, refs] : index) order.push_back(p);
  std::sort(order.begin(), order.end(), [](const IpPrefix& a, const IpPrefix& b) {
    if (a.prefix_len_bits != b.prefix_len_bits) return a.prefix_len_bits < b.prefix_len_bits;
    return a < b;
  });
  std::vector<PrefixBits> out;
  for (const IpPrefix& p : order) {
    int deciding = -1;
    uint32_t parent_bits = 0;
    const uint32_t bits =
        EvaluatePrefix(p, index, lengths[FamilyIndex(p.family())], items, deciding, parent_bits);
    index[p].bits = bits;
    if (bits != parent_bits) out.push_back(PrefixBits{p, bits, deciding});
  }
  std::sort(out.begin(), out.end(),
            [](const PrefixBits& a, const PrefixBits& b) { return a.prefix < b.prefix; });
  return out;
}

}  // namespace nicflow::flowtables
