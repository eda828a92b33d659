// Private: the exact-match flow cache in front of SimNic's pipeline (the idea of OVS's EMC).
//
// Why
// ---
// An established connection's packets all take the same path: the same entries in the same
// tables, the same conntrack connection, the same rewrite, the same output port. Running the
// interpreter for each of them costs a lookup per table and a pointer chase per action list; the
// cache replaces that with one hash probe and a replay of the remembered effects.
//
// What is remembered, keyed by what
// ---------------------------------
// The key is every input the pipeline's fate can depend on: the input port (which fixes the port
// class) and every non-metadata field of the parsed packet with its presence bits, plus the
// parser's facts the datapath reads (family, L4 present, fragment, ICMP echo id). Metadata starts
// at zero, so it is not part of the key. TCP flags are in the key only when some table matches on
// them: otherwise they influence the path only through conntrack's validity check, which a hit
// runs for real. The value is the outcome: verdict, drop reason, output port, the final L3/L4
// addresses and ports, the conntrack connection the path hit (slot, never-reused id, direction),
// and the path: the (table, rule, tie) of every lookup, interned (many flows share few paths).
//
// A hit replays exactly what the interpreter would have done: the table and entry counters of
// the path, Conntrack::Track() of the remembered connection (the real call, so TCP state, its
// timeout and the connection's counters advance as before), the rewrite and the device counters.
//
// What may not be cached, and invalidation
// ----------------------------------------
// Only paths whose outcome is a pure function of the key and of the hit connection are stored:
// no CtCommit, no SNAT (port allocation reads conntrack), no select group with ClientIP affinity,
// no REJECT, at most one CtLookup and it found a connection the packet was valid for (a missed
// lookup depends on the absence of a connection, which the next commit changes). Then:
// * any program change (Install, Apply, port declarations) bumps the cache's generation, which
//   makes every entry stale at once; the interned paths go with it;
// * the connection is revalidated on each hit: the slot must still hold the same id and must not
//   have expired (else the interpreter runs, and its lookup removes the expired connection as
//   before); a packet conntrack finds invalid for the connection's state (Track() refuses it and
//   changes nothing) also falls back to the interpreter, which reaches the same verdict. The
//   ct_state bits a valid tracked packet gets (trk|est, plus rpl in the reply direction) do not
//   depend on the TCP state, so FIN, RST and other transitions cannot change a cached path.
//
// Layout: 8-way set associative. A set's tags are one cache line: per way a 32-bit hash tag and
// the generation it was stored in (0: empty), so a probe reads one line to find the candidate
// way, then the entry: two cache lines (key in the first, outcome in the second). A first
// version with 2-way sets of whole entries missed 15 % of 16,384 established flows in a
// 32,768-entry cache (sets overflow); 8 ways bring that under 1 % for the cost of the tag line.
// Replacement: the key's own way, else a stale or empty way, else one picked by hash bits.
// Memory is allocated at the first insert.
//
// Thread-safety: none; owned by one SimNic.
#pragma once

#include <array>
#include <bit>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "nicflow/flowtables/ir.h"
#include "nicflow/sim/device.h"

namespace nicflow::sim {

/// The cache key; laid out without padding so keys compare with memcmp.
struct FlowKey {
  flowtables::U128 src, dst;  ///< IPv4 in the low bits
  uint32_t in_port = 0;
  uint32_t present = 0;  ///< PacketFields::present of the parsed packet
  uint16_t src_port = 0, dst_port = 0, icmp_id = 0, eth_type = 0;
  uint8_t proto = 0, tcp_flags = 0, icmp_type = 0, pkt_flags = 0;  ///< v6 | has_l4 | fragment
  uint32_t reserved = 0;

  bool operator==(const FlowKey& o) const noexcept {
    return std::memcmp(this, &o, sizeof(FlowKey)) == 0;
  }
  using Words = std::array<uint64_t, 7>;
  /// The key's bytes as 64-bit words, assembled from the members' values (flow_cache_test checks
  /// they equal the bytes).
  Words ToWords() const noexcept {
    return {src.hi,
            src.lo,
            dst.hi,
            dst.lo,
            uint64_t{in_port} | uint64_t{present} << 32,
            uint64_t{src_port} | uint64_t{dst_port} << 16 | uint64_t{icmp_id} << 32 |
                uint64_t{eth_type} << 48,
            uint64_t{proto} | uint64_t{tcp_flags} << 8 | uint64_t{icmp_type} << 16 |
                uint64_t{pkt_flags} << 24 | uint64_t{reserved} << 32};
  }
  static FlowKey FromWords(const Words& w) noexcept { return std::bit_cast<FlowKey>(w); }
  /// Hash() of the key whose words are `w`. A key just built field by field is hashed from its
  /// words in registers: read back from memory as words, its narrow stores failed to forward
  /// to the wide loads and stalled the cache probe.
  static uint64_t HashWords(const Words& w) noexcept {
    uint64_t h = 0x9e3779b97f4a7c15ull;
#pragma GCC unroll 7
    for (uint64_t x : w) h = (h ^ x) * 0xbf58476d1ce4e5b9ull + (h >> 31);
    h ^= h >> 29;
    h *= 0x94d049bb133111ebull;
    return h ^ (h >> 32);
  }
  uint64_t Hash() const noexcept { return HashWords(std::bit_cast<Words>(*this)); }
};
static_assert(sizeof(FlowKey) == 56 && std::has_unique_object_representations_v<FlowKey>);
static_assert(std::endian::native == std::endian::little, "FlowKey::ToWords() is the key's bytes");

/// One lookup of a path: the table and the rule that won (kNoRule: the default actions ran).
struct PathStep {
  uint32_t rule;
  uint8_t table;
  uint8_t tie;
  uint16_t reserved;
};

struct alignas(64) FlowCacheEntry {
  FlowKey key;
  uint32_t reserved = 0;
  uint32_t path = 0;
  // Second cache line: the outcome.
  flowtables::U128 out_src, out_dst;
  uint64_t ct_id = 0;
  uint32_t ct_slot = 0;
  uint32_t out_port = 0;
  uint16_t out_src_port = 0, out_dst_port = 0;
  uint8_t verdict = 0, reason = 0, ct_dir = 0, has_ct = 0;
};
static_assert(sizeof(FlowCacheEntry) == 128);

class FlowCache {
 public:
  /// `entries` is rounded up to a power of two (at least kWays); 0 disables the cache.
  explicit FlowCache(uint32_t entries);

  bool enabled() const { return capacity_ != 0; }

  static constexpr int kWays = 8;

  /// Hints the CPU to load the key's tag line.
  void Prefetch(uint64_t hash) const noexcept {
    if (!tags_.empty()) __builtin_prefetch(&tags_[SetOf(hash)]);
  }
  /// The ways of `hash`'s set whose tag matches in the current generation (bit w: way w; the
  /// keys still have to be compared). Valid until the next Insert() or Invalidate().
  uint32_t Ways(uint64_t hash) const noexcept {
    return tags_.empty() ? 0 : MatchingWays(tags_[SetOf(hash)], hash);
  }
  /// The entry of the lowest of `ways` (non-zero, from Ways(hash)). For prefetching.
  const FlowCacheEntry* Candidate(uint64_t hash, uint32_t ways) const noexcept {
    return &table_[SetOf(hash) * kWays + std::countr_zero(ways)];
  }
  static void PrefetchEntry(const FlowCacheEntry* e) noexcept {
    __builtin_prefetch(e);
    __builtin_prefetch(reinterpret_cast<const char*>(e) + 64);
  }
  /// The live entry for `key`, or nullptr.
  const FlowCacheEntry* Find(const FlowKey& key, uint64_t hash) const noexcept {
    return FindIn(key, hash, Ways(hash));
  }
  /// Find() given `ways` = Ways(hash), taken since the last Insert() or Invalidate().
  const FlowCacheEntry* FindIn(const FlowKey& key, uint64_t hash, uint32_t ways) const noexcept {
    for (; ways != 0; ways &= ways - 1) {
      const FlowCacheEntry& e = table_[SetOf(hash) * kWays + std::countr_zero(ways)];
      if (e.key == key) return &e;
    }
    return nullptr;
  }
  /// Stores an outcome (replacing the key's entry, a stale way, or one way chosen by the hash).
  /// `steps` is interned; false (nothing stored) when the path store is full.
  bool Insert(const FlowKey& key, uint64_t hash, FlowCacheEntry outcome, const PathStep* steps,
              size_t n_steps);
  /// The steps of an interned path.
  std::pair<const PathStep*, size_t> Path(uint32_t id) const noexcept {
    const auto [off, len] = paths_[id];
    return {steps_.data() + off, len};
  }
  /// Makes every entry stale (a program change).
  void Invalidate();
  /// Changes whenever an entry is stored or invalidated (never 0): while it stays the same,
  /// Find() for a key returns what it returned before.
  uint64_t version() const noexcept { return version_; }

  FlowCacheStats stats;

 private:
  struct Tag {
    uint32_t tag;
    uint32_t gen;  // 0: empty
  };
  struct alignas(64) TagLine {
    Tag tag[kWays];
  };
  size_t SetOf(uint64_t hash) const noexcept { return hash & set_mask_; }
  // Bit w set when way w holds `hash`'s tag in the current generation, computed for all ways
  // without a branch (unrolled: straight-line compares): a loop that stopped at the first match
  // branched on which way that is, which is random (Candidate and Find each paid that on every
  // established packet).
  uint32_t MatchingWays(const TagLine& line, uint64_t hash) const noexcept {
    const auto tag = static_cast<uint32_t>(hash >> 32);
    uint32_t ways = 0;
#pragma GCC unroll 8
    for (int w = 0; w < kWays; ++w) {
      ways |= static_cast<uint32_t>((line.tag[w].tag == tag) & (line.tag[w].gen == gen_)) << w;
    }
    return ways;
  }

  uint32_t capacity_ = 0;
  uint64_t set_mask_ = 0;
  uint32_t gen_ = 1;
  uint64_t version_ = 1;
  std::vector<TagLine> tags_;
  std::vector<FlowCacheEntry> table_;  // set * kWays + way
  std::vector<PathStep> steps_;
  std::vector<std::pair<uint32_t, uint32_t>> paths_;  // id -> (offset, length) in steps_
  absl::flat_hash_map<std::string, uint32_t> path_ids_;
};

}  // namespace nicflow::sim
