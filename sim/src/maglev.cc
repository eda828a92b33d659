#include "nicflow/sim/maglev.h"

#include <algorithm>
#include <array>

namespace nicflow::sim {
namespace {

uint64_t Mix64(uint64_t h) {
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  h ^= h >> 31;
  return h;
}

constexpr std::array<uint32_t, 14> kPrimes = {251,    509,    1021,    2039,   4093,
                                              8191,   16381,  32749,   65521,  131071,
                                              262139, 524287, 1048573, 2097143};

}  // namespace

uint64_t HashLabel(std::string_view label) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : label) h = (h ^ c) * 0x100000001b3ull;
  return Mix64(h);
}

uint32_t MaglevTableSize(size_t backends) {
  const uint64_t want = std::max<uint64_t>(100 * backends, 1);
  for (uint32_t p : kPrimes) {
    if (p >= want) return p;
  }
  return kPrimes.back();
}

MaglevTable MaglevTable::Build(std::span<const MaglevBackend> backends, uint32_t table_size) {
  MaglevTable t;
  uint32_t max_weight = 0;
  for (const MaglevBackend& b : backends) max_weight = std::max(max_weight, b.weight);
  if (max_weight == 0) return t;
  const uint64_t m = table_size ? table_size : MaglevTableSize(backends.size());
  t.slots_.assign(m, kNone);
  const size_t n = backends.size();
  std::vector<uint64_t> offset(n), skip(n), next(n, 0), credit(n, 0);
  for (size_t i = 0; i < n; ++i) {
    offset[i] = backends[i].key_hash % m;
    skip[i] = Mix64(backends[i].key_hash ^ 0x5851f42d4c957f2dull) % (m - 1) + 1;
  }
  uint64_t filled = 0;
  while (filled < m) {
    for (size_t i = 0; i < n && filled < m; ++i) {
      credit[i] += backends[i].weight;
      while (credit[i] >= max_weight && filled < m) {
        credit[i] -= max_weight;
        uint64_t slot;
        do {
          slot = (offset[i] + next[i] * skip[i]) % m;
          ++next[i];
        } while (t.slots_[slot] != kNone);
        t.slots_[slot] = static_cast<uint32_t>(i);
        ++filled;
      }
    }
  }
  return t;
}

std::vector<uint32_t> MaglevTable::SlotCounts(size_t backends) const {
  std::vector<uint32_t> c(backends, 0);
  for (uint32_t s : slots_) {
    if (s < backends) ++c[s];
  }
  return c;
}

}  // namespace nicflow::sim
