// Packet classification for one table: find the highest-priority entry whose every field match
// matches a packet.
//
// Naive design
// ------------
// LinearClassifier checks every rule in order and keeps the best (priority descending, insertion
// order ascending). It is obviously right and O(rules); tests use it as the oracle.
//
// Tuple space search (TupleSpaceClassifier)
// -----------------------------------------
// Rules that use the same *mask* on every key field (a "tuple": exact = all ones, ternary = its
// mask, LPM = the prefix mask, an unmentioned field = zero) can be found with one hash lookup of
// the packet's key ANDed with that mask (Srinivasan et al., SIGCOMM'99; OVS lib/classifier.c).
// A table with only exact keys therefore has a single tuple: a hash table. An LPM table has one
// tuple per prefix length in use.
//
// Optimisations and their cost:
// * Priority-ordered early exit: tuples are kept sorted by the highest priority they hold; the
//   search stops at the first tuple whose maximum is below the best match found. Insert/remove
//   re-sort the tuple list (O(T log T), T = tuples, small).
// * Active words: a tuple's index keys hold only the key words its mask keeps, so a probe hashes
//   and compares those words, not the whole key: most tuples of the pipeline's tables mention
//   one or two of their fields (the service table's /32 tuple: the destination, protocol and
//   port words of a ten-word key). It made new connections through the whole pipeline 1.25x
//   faster at 10k Services. Cost: a word-index list per tuple and a gather per probe.
// * Ranges: a range that is a single value becomes exact and an aligned power-of-two block
//   becomes a prefix; any other range is kept as a *per-rule range check*: the field's mask in
//   the tuple is zero (so those rules share a hash bucket with rules equal on the other fields)
//   and each rule in the bucket is checked against its ranges. We chose this over expanding a
//   range into prefixes because a 16-bit range expands to up to 30 prefixes, each a different
//   mask, i.e. up to 30 tuples and 30 copies of the rule, per range field (900 for two). The cost
//   of the check is a linear scan of the rules in a bucket that differ only by their ranges
//   (e.g. the port ranges of one policy rule set), which compiled policies keep short.
// * Presence: a mentioned field the packet does not carry never matches (ir.h), so each tuple
//   records the fields it requires and is skipped when the packet lacks one.
// * Partitioning (OVS tags subtables by metadata partition the same way): when the schema has
//   an exact key of at most 64 bits, each value of it records which tuples hold its rules (a
//   64-bit tuple mask), and a lookup probes only the tuples of the packet's value plus those of
//   rules that leave the key wildcarded. The policy rule tables key on the policy-set tag first,
//   so a lookup probes the 1-3 tuples of one pod's policy set instead of every tuple of every set
//   (19 on 2,000 synthetic sets). Cost: one more hash probe per lookup, a mask per value. A first
//   version gave every value its own tuple space; with thousands of values that scattered the
//   tables over memory and was slower than no partitioning at all.
// * Small partitions: a partition value with at most 8 rules (a policy set's few rules) also
//   keeps them in one list in lookup order (priority desc, insertion asc) with masks and values
//   side by side, and a lookup scans that list instead of hashing the key once per tuple: one
//   hash probe for the partition plus a few word compares, instead of one probe per tuple (the
//   rules of one set use 2-3 different masks). It doubled the policy tables' lookup rate (0.34 ->
//   0.88 of rte_acl for rule tables, 0.16 -> 0.58 for peer tables). Cost: a copy of each rule,
//   and rebuilding the list on insert/remove (it is short). A partition that grows past 8 drops
//   its list for good (until it empties) and is probed through its tuples.
//
// Invariants: rule ids are unique; within a bucket rules are sorted by (priority desc, seq asc);
// each partition lists its non-empty tuples by max priority desc; empty partitions are removed.
//
// Thread-safety: Lookup() is const and safe to call concurrently; Insert/Remove need exclusive
// access.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "nicflow/flowtables/ir.h"
#include "nicflow/sim/packet.h"

namespace nicflow::sim {

inline constexpr uint32_t kNoRule = 0xffffffffu;

/// The result of a lookup: the winning rule id (kNoRule on a miss) and whether another rule of
/// the same priority also matched (the compiler promises it never happens; the device counts it).
struct LookupResult {
  uint32_t rule = kNoRule;
  bool tie = false;
};

/// Common interface, so tests run the same cases through both classifiers.
class Classifier {
 public:
  virtual ~Classifier() = default;
  /// Adds a rule. `match` must use only the table's key fields with their declared kinds.
  /// Errors: InvalidArgument (unknown field, wrong kind), AlreadyExists (id in use).
  virtual absl::Status Insert(uint32_t id, int32_t priority,
                              std::span<const flowtables::FieldMatch> match) = 0;
  /// Removes a rule; NotFound if absent.
  virtual absl::Status Remove(uint32_t id) = 0;
  virtual LookupResult Lookup(const PacketFields& f) const noexcept = 0;
  /// Hints the CPU to load what Lookup(f) is likely to read first (batches call it for all their
  /// packets before looking any up). No effect on results.
  virtual void Prefetch(const PacketFields& f) const noexcept { (void)f; }
  /// Makes room for `rules` more rules, so a batch of inserts does not regrow the indices one
  /// rule at a time. No effect on results.
  virtual void Reserve(size_t rules) { (void)rules; }
  struct RuleSpec {
    uint32_t id;
    int32_t priority;
    std::span<const flowtables::FieldMatch> match;
  };
  /// Inserts `rules` in order: the same result as calling Insert for each, which is what this
  /// default does (stopping at the first error, the rules before it inserted). Implementations
  /// may size their indices for the whole batch first.
  virtual absl::Status InsertBatch(std::span<const RuleSpec> rules) {
    for (const RuleSpec& r : rules) {
      if (absl::Status s = Insert(r.id, r.priority, r.match); !s.ok()) return s;
    }
    return absl::OkStatus();
  }
  virtual size_t size() const = 0;
};

/// Whether one field match matches the packet (the reference semantics of ir.h).
bool FieldMatches(const flowtables::FieldMatch& m, const PacketFields& f) noexcept;

/// Mask of the top `prefix_len_bits` of a `width_bits` wide field, and the low `bits` ones.
U128 PrefixMaskBits(int width_bits, int prefix_len_bits);
U128 LowOnes(int bits);

std::unique_ptr<Classifier> MakeLinearClassifier(std::vector<flowtables::KeyField> keys);
std::unique_ptr<Classifier> MakeTupleSpaceClassifier(std::vector<flowtables::KeyField> keys);

/// Statistics of a tuple space classifier (for dumps and the benchmark).
struct TupleSpaceStats {
  size_t tuples = 0;  ///< summed over partitions
  size_t rules = 0;
  size_t range_checked_rules = 0;
  size_t partitions = 0;
};
TupleSpaceStats GetTupleSpaceStats(const Classifier& c);

}  // namespace nicflow::sim
