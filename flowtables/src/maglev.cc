#include "nicflow/flowtables/maglev.h"

#include <algorithm>
#include <array>

namespace nicflow::flowtables {
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

// The paper's slot sequence is (offset + next * skip) % m; stepping `pos` by `skip` and wrapping
// once gives the same sequence without a 64-bit division per probe (the build's cost: ~m ln m
// probes). All values stay below 2m < 2^32. The per-backend state is one small struct in a
// per-thread scratch vector, so a build allocates nothing but the table itself.
void BuildMaglevSlots(std::span<const MaglevBackend> backends, uint32_t table_size,
                      std::vector<uint32_t>& out) {
  uint32_t max_weight = 0;
  for (const MaglevBackend& b : backends) max_weight = std::max(max_weight, b.weight);
  if (max_weight == 0) {
    out.clear();
    return;
  }
  const uint32_t m = table_size ? table_size : MaglevTableSize(backends.size());
  out.assign(m, kMaglevEmpty);
  struct Walk {
    uint32_t pos;     // the backend's next preferred slot
    uint32_t skip;    // its permutation's stride, in [1, m)
    uint64_t credit;  // weight earned and not yet spent on slots
  };
  thread_local std::vector<Walk> walks;
  const size_t n = backends.size();
  walks.resize(n);
  for (size_t i = 0; i < n; ++i) {
    walks[i].pos = static_cast<uint32_t>(backends[i].key_hash % m);
    walks[i].skip =
        static_cast<uint32_t>(Mix64(backends[i].key_hash ^ 0x5851f42d4c957f2dull) % (m - 1) + 1);
    walks[i].credit = 0;
  }
  uint32_t* const slots = out.data();
  uint32_t filled = 0;
  while (filled < m) {
    for (size_t i = 0; i < n && filled < m; ++i) {
      Walk& w = walks[i];
      w.credit += backends[i].weight;
      while (w.credit >= max_weight && filled < m) {
        w.credit -= max_weight;
        uint32_t slot;
        do {
          slot = w.pos;
          w.pos += w.skip;
          if (w.pos >= m) w.pos -= m;
        } while (slots[slot] != kMaglevEmpty);
        slots[slot] = static_cast<uint32_t>(i);
        ++filled;
      }
    }
  }
}

}  // namespace nicflow::flowtables
