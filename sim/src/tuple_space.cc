// Tuple space search classifier; the design is described in nicflow/sim/classifier.h.
#include <algorithm>
#include <array>
#include <map>
#include <optional>
#include <span>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "classifier_internal.h"
#include "nicflow/sim/classifier.h"

namespace nicflow::sim {
namespace {

using flowtables::ExactMatch;
using flowtables::FieldMatch;
using flowtables::KeyField;
using flowtables::LpmMatch;
using flowtables::RangeMatch;
using flowtables::TernaryMatch;

// 17 fields, at most 4 of them 128-bit: 21 words is the widest possible key.
constexpr int kMaxKeyWords = 24;

inline uint64_t Mix(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  return h;
}

inline size_t HashWords(const uint64_t* w, size_t n) {
  uint64_t h = 0x9e3779b97f4a7c15ull ^ n;
  for (size_t i = 0; i < n; ++i) h = (h ^ w[i]) * 0xbf58476d1ce4e5b9ull + (h >> 29);
  return Mix(h);
}

// What a lookup needs of a bucket's best rule, kept in the bucket's index slot: the probe that
// finds the bucket settles the common bucket of a single rule without ranges, with no second
// load (a separate array of these cost a cache miss of its own in the big tables).
struct BucketHot {
  int32_t priority = 0;
  uint32_t id = 0;
  uint64_t seq = 0;
  bool simple = false;  // exactly one rule, no range checks
};

// An open-addressing hash index from fixed-width keys (the tuple's masked key words) to bucket
// ids. Each slot is one run of words, [tag | value + 1][full hash][hot: priority | id][hot: seq |
// simple][key...], so a probe that hits touches one cache line; linear probing with
// backward-shift deletion keeps no tombstones. Load factor <= 1/2.
class WordKeyIndex {
 public:
  static constexpr uint32_t kNone = 0xffffffffu;
  static constexpr size_t kHeader = 4;
  explicit WordKeyIndex(int words) : w_(words), stride_(kHeader + static_cast<size_t>(words)) {
    Rehash(16);
  }

  void Prefetch(uint64_t h) const noexcept { __builtin_prefetch(&table_[(h & mask_) * stride_]); }
  /// The key's slot, or null.
  const uint64_t* FindSlot(const uint64_t* key, uint64_t h) const noexcept {
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      const uint64_t* e = &table_[i * stride_];
      if (e[0] == 0) return nullptr;
      if ((e[0] >> 32) == (h >> 32) && KeyEq(e, key)) return e;
    }
  }
  uint32_t Find(const uint64_t* key, uint64_t h) const noexcept {
    const uint64_t* e = FindSlot(key, h);
    return e == nullptr ? kNone : Value(e);
  }
  static uint32_t Value(const uint64_t* slot) noexcept {
    return static_cast<uint32_t>(slot[0]) - 1;
  }
  static BucketHot Hot(const uint64_t* slot) noexcept {
    return {static_cast<int32_t>(static_cast<uint32_t>(slot[2] >> 32)),
            static_cast<uint32_t>(slot[2]), slot[3] >> 1, (slot[3] & 1) != 0};
  }
  /// Sets the summary kept with an existing key.
  void SetHot(const uint64_t* key, uint64_t h, const BucketHot& hot) noexcept {
    auto* e = const_cast<uint64_t*>(FindSlot(key, h));
    e[2] = uint64_t{static_cast<uint32_t>(hot.priority)} << 32 | hot.id;
    e[3] = hot.seq << 1 | uint64_t{hot.simple};
  }
  /// Room for `n` more keys without regrowing (load factor <= 1/2 then too).
  void Reserve(size_t n) {
    size_t capacity = capacity_;
    while (2 * (size_ + n) > capacity) capacity *= 2;
    if (capacity != capacity_) Rehash(capacity);
  }
  void Insert(const uint64_t* key, uint64_t h, uint32_t value) {
    if (2 * (size_ + 1) > capacity_) Rehash(2 * capacity_);
    Place(key, h, value);
    ++size_;
  }
  void Erase(const uint64_t* key, uint64_t h) {
    size_t i = h & mask_;
    while (!(At(i)[0] != 0 && (At(i)[0] >> 32) == (h >> 32) && KeyEq(At(i), key))) {
      i = (i + 1) & mask_;
    }
    // Backward shift: pull later entries of the probe run into the hole.
    for (size_t j = (i + 1) & mask_; At(j)[0] != 0; j = (j + 1) & mask_) {
      const size_t home = At(j)[1] & mask_;
      if (((j - home) & mask_) >= ((j - i) & mask_)) {
        std::copy(At(j), At(j) + stride_, At(i));
        i = j;
      }
    }
    At(i)[0] = 0;
    --size_;
  }

 private:
  uint64_t* At(size_t i) { return &table_[i * stride_]; }
  bool KeyEq(const uint64_t* e, const uint64_t* key) const noexcept {
    for (int n = 0; n < w_; ++n) {
      if (e[kHeader + n] != key[n]) return false;
    }
    return true;
  }
  void Place(const uint64_t* key, uint64_t h, uint32_t value) {
    size_t i = h & mask_;
    while (At(i)[0] != 0) i = (i + 1) & mask_;
    uint64_t* e = At(i);
    e[0] = (h & 0xffffffff00000000ull) | (uint64_t{value} + 1);
    e[1] = h;
    e[2] = e[3] = 0;
    std::copy(key, key + w_, e + kHeader);
  }
  // Moves a whole slot of the old table (its hot words with it).
  void PlaceSlot(const uint64_t* slot) {
    size_t i = slot[1] & mask_;
    while (At(i)[0] != 0) i = (i + 1) & mask_;
    std::copy(slot, slot + stride_, At(i));
  }
  void Rehash(size_t capacity) {
    std::vector<uint64_t> old = std::move(table_);
    const size_t old_capacity = capacity_;
    table_.assign(capacity * stride_, 0);
    capacity_ = capacity;
    mask_ = capacity - 1;
    for (size_t i = 0; i < old_capacity; ++i) {
      const uint64_t* e = &old[i * stride_];
      if (e[0] != 0) PlaceSlot(e);
    }
  }

  int w_;
  size_t stride_;
  size_t size_ = 0;
  size_t capacity_ = 0;
  size_t mask_ = 0;
  std::vector<uint64_t> table_;
};

struct RangeCheck {
  uint8_t word;   // first word of the field in the key
  uint8_t words;  // 1 or 2
  U128 lo;
  U128 hi;
};

struct BucketRule {
  int32_t priority;
  uint64_t seq;
  uint32_t id;
  std::vector<RangeCheck> ranges;
};

// A rule compiled against the key layout.
struct CompiledRule {
  std::vector<uint64_t> mask;
  std::vector<uint64_t> value;  // already masked
  uint32_t required = 0;
  BucketRule rule;
};

// The key words a tuple's mask keeps (any bit set), in key order. Its index holds only those
// words of each masked key: a tuple on one field of a wide schema hashes and compares one or two
// words instead of the whole key (most tuples of the pipeline's tables mention few of their key
// fields, e.g. a destination address and a port out of the service table's ten words).
struct ActiveWords {
  std::array<uint8_t, kMaxKeyWords> at{};
  std::array<uint64_t, kMaxKeyWords> mask{};
  uint8_t n = 0;

  explicit ActiveWords(const std::vector<uint64_t>& full) {
    for (size_t w = 0; w < full.size(); ++w) {
      if (full[w] == 0) continue;
      at[n] = static_cast<uint8_t>(w);
      mask[n++] = full[w];
    }
  }
  // `out` = the kept words of `key` under the mask.
  void Gather(const uint64_t* key, uint64_t* out) const noexcept {
    for (uint8_t i = 0; i < n; ++i) out[i] = key[at[i]] & mask[i];
  }
  // The same in place (each kept word moves down, never over one still to be read).
  void Compact(std::vector<uint64_t>& key) const {
    Gather(key.data(), key.data());
    key.resize(n);
  }
};

struct Tuple {
  uint32_t required = 0;
  ActiveWords active;
  WordKeyIndex index;  // active words of the masked key -> bucket id
  std::vector<std::vector<BucketRule>> buckets;
  std::vector<uint32_t> free_buckets;
  std::map<int32_t, uint32_t> priorities;  // priority -> rule count, for max after removals
  int32_t max_priority = 0;
};

struct RuleLoc {
  uint32_t tuple;
  std::vector<uint64_t> key;  // the tuple's active words of the rule's value
};

// The best rule found so far.
struct Best {
  bool found = false;
  int32_t priority = 0;
  uint64_t seq = 0;
  uint32_t id = kNoRule;

  void Offer(int32_t priority_, uint64_t seq_, uint32_t id_, bool bucket_tie, bool& tie) {
    // A small partition's rule may be offered again by a tuple past the 64th (they share the
    // last bit of the tuple masks, so they are probed for every packet): it is not a tie.
    if (found && id_ == id) return;
    if (!found || priority_ > priority) {
      *this = {true, priority_, seq_, id_};
      tie = bucket_tie;
    } else if (priority_ == priority) {
      tie = true;
      if (seq_ < seq) *this = {true, priority_, seq_, id_};
    }
  }
};

bool RangesOk(const BucketRule& r, const uint64_t* key) noexcept {
  for (const RangeCheck& c : r.ranges) {
    const U128 v = c.words == 2 ? U128{key[c.word], key[c.word + 1]} : U128::Of(key[c.word]);
    if (v < c.lo || c.hi < v) return false;
  }
  return true;
}

// The tuples of one partition (see TupleSpaceClassifier).
class TupleSpace {
 public:
  /// Both return the index of the rule's tuple (stable for the classifier's lifetime).
  uint32_t Insert(CompiledRule r);
  uint32_t Remove(uint32_t id);
  void Reserve(size_t rules) { rules_.reserve(rules_.size() + rules); }
  /// Creates the tuples of `rules` (in the order Insert would) and sizes their indices for them.
  void ReserveFor(std::span<const CompiledRule> rules);
  bool empty() const { return rules_.empty(); }
  // Prefetches the index slots of the first `max_tuples` tuples the packet can match.
  void Prefetch(const uint64_t* key, uint32_t present, size_t max_tuples) const noexcept {
    std::array<uint64_t, kMaxKeyWords> masked;
    for (uint32_t ti : order_) {
      if (max_tuples == 0) return;
      const Tuple& t = tuples_[ti];
      if ((present & t.required) != t.required) continue;
      t.active.Gather(key, masked.data());
      t.index.Prefetch(HashWords(masked.data(), t.active.n));
      --max_tuples;
    }
  }
  // Improves `best` (and `tie`) with this partition's rules; see classifier.h for the order.
  // Only tuples whose bit (index, capped at 63) is set in `allowed` are probed.
  void Lookup(const uint64_t* key, uint32_t present, uint64_t allowed, Best& best,
              bool& tie) const noexcept;
  void AddStats(TupleSpaceStats& s) const {
    s.tuples += order_.size();
    for (const Tuple& t : tuples_) {
      for (const auto& bucket : t.buckets) {
        for (const BucketRule& r : bucket) s.range_checked_rules += r.ranges.empty() ? 0 : 1;
      }
    }
  }

 private:
  void Reorder();
  static Tuple NewTuple(const CompiledRule& r) {
    const ActiveWords active(r.mask);
    return Tuple{r.required, active, WordKeyIndex(active.n), {}, {}, {}, 0};
  }
  // Refreshes the summary in bucket `b`'s index slot (its key `key`, hashed `h`).
  static void Summarize(Tuple& t, uint32_t b, const uint64_t* key, uint64_t h) {
    const std::vector<BucketRule>& rules = t.buckets[b];
    if (rules.empty()) return;
    t.index.SetHot(key, h,
                   {rules[0].priority, rules[0].id, rules[0].seq,
                    rules.size() == 1 && rules[0].ranges.empty()});
  }

  std::vector<Tuple> tuples_;
  std::map<std::vector<uint64_t>, uint32_t> tuple_index_;  // mask + required -> tuple
  std::vector<uint32_t> order_;                            // non-empty tuples, max priority desc
  absl::flat_hash_map<uint32_t, RuleLoc> rules_;
  std::vector<uint64_t> sig_;  // scratch: the tuple_index_ key of the rule being inserted
};

void TupleSpace::ReserveFor(std::span<const CompiledRule> rules) {
  std::vector<size_t> adding;
  for (const CompiledRule& r : rules) {
    sig_.assign(r.mask.begin(), r.mask.end());
    sig_.push_back(r.required);
    auto [it, fresh] = tuple_index_.try_emplace(sig_, tuples_.size());
    if (fresh) tuples_.push_back(NewTuple(r));
    if (adding.size() <= it->second) adding.resize(it->second + 1, 0);
    ++adding[it->second];
  }
  // An upper bound (rules may share a bucket): a larger index changes no result.
  for (size_t t = 0; t < adding.size(); ++t) {
    if (adding[t] > 1) tuples_[t].index.Reserve(adding[t]);
  }
}

uint32_t TupleSpace::Insert(CompiledRule r) {
  sig_.assign(r.mask.begin(), r.mask.end());
  sig_.push_back(r.required);
  auto [it, fresh] = tuple_index_.try_emplace(sig_, tuples_.size());
  if (fresh) tuples_.push_back(NewTuple(r));
  Tuple& t = tuples_[it->second];
  std::vector<uint64_t> key = std::move(r.value);
  t.active.Compact(key);
  const uint64_t h = HashWords(key.data(), key.size());
  uint32_t b = t.index.Find(key.data(), h);
  if (b == WordKeyIndex::kNone) {
    if (!t.free_buckets.empty()) {
      b = t.free_buckets.back();
      t.free_buckets.pop_back();
    } else {
      b = static_cast<uint32_t>(t.buckets.size());
      t.buckets.emplace_back();
    }
    t.index.Insert(key.data(), h, b);
  }
  std::vector<BucketRule>& bucket = t.buckets[b];
  const int32_t priority = r.rule.priority;
  auto pos = std::find_if(bucket.begin(), bucket.end(),
                          [&](const BucketRule& x) { return x.priority < priority; });
  const uint32_t id = r.rule.id;
  bucket.insert(pos, std::move(r.rule));
  Summarize(t, b, key.data(), h);
  // order_ depends only on which tuples are non-empty and their maximum priorities: a rule that
  // raises neither leaves it as it is.
  const bool reorder = t.priorities.empty() || priority > t.max_priority;
  ++t.priorities[priority];
  rules_.emplace(id, RuleLoc{it->second, std::move(key)});
  if (reorder) Reorder();
  return it->second;
}

uint32_t TupleSpace::Remove(uint32_t id) {
  auto it = rules_.find(id);
  const uint32_t tuple = it->second.tuple;
  Tuple& t = tuples_[tuple];
  const std::vector<uint64_t>& key = it->second.key;
  const uint64_t h = HashWords(key.data(), key.size());
  const uint32_t b = t.index.Find(key.data(), h);
  std::vector<BucketRule>& bucket = t.buckets[b];
  auto r =
      std::find_if(bucket.begin(), bucket.end(), [&](const BucketRule& x) { return x.id == id; });
  if (--t.priorities[r->priority] == 0) t.priorities.erase(r->priority);
  bucket.erase(r);
  if (bucket.empty()) {
    t.index.Erase(key.data(), h);
    t.free_buckets.push_back(b);
  } else {
    Summarize(t, b, key.data(), h);
  }
  rules_.erase(it);
  Reorder();
  return tuple;
}

void TupleSpace::Reorder() {
  order_.clear();
  for (uint32_t i = 0; i < tuples_.size(); ++i) {
    Tuple& t = tuples_[i];
    if (t.priorities.empty()) continue;
    t.max_priority = t.priorities.rbegin()->first;
    order_.push_back(i);
  }
  std::stable_sort(order_.begin(), order_.end(), [&](uint32_t a, uint32_t b) {
    return tuples_[a].max_priority > tuples_[b].max_priority;
  });
}

void TupleSpace::Lookup(const uint64_t* key, uint32_t present, uint64_t allowed, Best& best,
                        bool& tie) const noexcept {
  std::array<uint64_t, kMaxKeyWords> masked;
  for (uint32_t ti : order_) {
    const Tuple& t = tuples_[ti];
    if (best.found && t.max_priority < best.priority) break;
    if (!((allowed >> std::min<uint32_t>(ti, 63)) & 1)) continue;
    if ((present & t.required) != t.required) continue;
    t.active.Gather(key, masked.data());
    const uint64_t* slot = t.index.FindSlot(masked.data(), HashWords(masked.data(), t.active.n));
    if (slot == nullptr) continue;
    const BucketHot hot = WordKeyIndex::Hot(slot);
    if (hot.simple) {
      best.Offer(hot.priority, hot.seq, hot.id, false, tie);
      continue;
    }
    const std::vector<BucketRule>& bucket = t.buckets[WordKeyIndex::Value(slot)];
    size_t i = 0;
    while (i < bucket.size() && !RangesOk(bucket[i], key)) ++i;
    if (i == bucket.size()) continue;
    const BucketRule& cand = bucket[i];
    bool bucket_tie = false;
    for (size_t j = i + 1; j < bucket.size() && bucket[j].priority == cand.priority; ++j) {
      bucket_tie = bucket_tie || RangesOk(bucket[j], key);
    }
    best.Offer(cand.priority, cand.seq, cand.id, bucket_tie, tie);
  }
}

// A range that is one value is exact; an aligned power-of-two block is a prefix. Returns false
// when the range needs a per-rule check.
bool RangeAsMask(const RangeMatch& r, int width, U128& value, U128& mask) {
  const U128 x{r.lo.hi ^ r.hi.hi, r.lo.lo ^ r.hi.lo};
  // x must be low ones (2^k - 1) and lo must have those bits clear.
  const U128 x1 = x.lo == ~0ull ? U128{x.hi + 1, 0} : U128{x.hi, x.lo + 1};
  if ((x & x1) != U128{} || (r.lo & x) != U128{}) return false;
  mask = LowOnes(width) & ~x;
  value = r.lo;
  return true;
}

// Which tuples hold rules of one partition value (or of the wildcard partition), so a lookup
// probes only those. Tuple indices past 63 share bit 63.
struct TupleSet {
  uint64_t mask = 0;
  std::vector<std::pair<uint32_t, uint32_t>> counts;  // tuple -> rules, to clear bits on removal

  void Add(uint32_t tuple) {
    auto it = std::find_if(counts.begin(), counts.end(), [&](auto& c) { return c.first == tuple; });
    if (it == counts.end()) {
      counts.push_back({tuple, 1});
    } else {
      ++it->second;
    }
    mask |= Bit(tuple);
  }
  void Remove(uint32_t tuple) {
    auto it = std::find_if(counts.begin(), counts.end(), [&](auto& c) { return c.first == tuple; });
    if (--it->second == 0) counts.erase(it);
    mask = 0;
    for (const auto& c : counts) mask |= Bit(c.first);
  }
  static uint64_t Bit(uint32_t tuple) { return 1ull << std::min<uint32_t>(tuple, 63); }
};

// The rules of one partition value while there are few of them, in lookup order (priority
// descending, then insertion order), with their masks and values side by side: a lookup scans them
// instead of probing the partition's tuples (see "Small partitions" in classifier.h).
constexpr size_t kSmallPartition = 8;

struct SmallRule {
  int32_t priority;
  uint32_t id;
  uint64_t seq;
  uint32_t required;
  uint16_t range_begin;  // into SmallList::ranges
  uint16_t range_count;
};

struct SmallList {
  bool large = false;  // outgrew kSmallPartition: the tuples are probed instead
  std::vector<SmallRule> rules;
  std::vector<uint64_t> words;  // per rule: mask words then value words
  std::vector<RangeCheck> ranges;
};

struct Part {
  TupleSet tuples;
  SmallList small;
};

// One TupleSpace; when the schema has an exact key of at most 64 bits, the tuples are pruned per
// packet by that key's value (see "Partitioning" in classifier.h).
class TupleSpaceClassifier final : public Classifier {
 public:
  explicit TupleSpaceClassifier(std::vector<KeyField> keys) : keys_(std::move(keys)) {
    for (size_t i = 0; i < keys_.size(); ++i) {
      const int width = flowtables::GetFieldInfo(keys_[i].field).width_bits;
      word_off_.push_back(static_cast<uint8_t>(words_));
      nwords_.push_back(static_cast<uint8_t>(width > 64 ? 2 : 1));
      words_ += nwords_.back();
      if (part_ < 0 && keys_[i].kind == flowtables::MatchKind::kExact && width <= 64) {
        part_ = static_cast<int>(i);
      }
    }
  }

  absl::Status Insert(uint32_t id, int32_t priority, std::span<const FieldMatch> match) override;
  absl::Status Remove(uint32_t id) override;
  LookupResult Lookup(const PacketFields& f) const noexcept override;
  void Prefetch(const PacketFields& f) const noexcept override {
    std::array<uint64_t, kMaxKeyWords> key;
    Extract(f, key.data());
    space_.Prefetch(key.data(), f.present, 4);
  }
  size_t size() const override { return where_.size(); }
  void Reserve(size_t rules) override {
    where_.reserve(where_.size() + rules);
    space_.Reserve(rules);
  }
  absl::Status InsertBatch(std::span<const RuleSpec> rules) override;

  TupleSpaceStats Stats() const {
    TupleSpaceStats s{0, where_.size(), 0, parts_.size()};
    space_.AddStats(s);
    return s;
  }

 private:
  void Extract(const PacketFields& f, uint64_t* key) const noexcept {
    for (size_t i = 0; i < keys_.size(); ++i) Store(f.get(keys_[i].field), i, key);
  }
  void Store(U128 v, size_t i, uint64_t* out) const noexcept {
    if (nwords_[i] == 2) {
      out[word_off_[i]] = v.hi;
      out[word_off_[i] + 1] = v.lo;
    } else {
      out[word_off_[i]] = v.lo;
    }
  }
  CompiledRule Compile(uint32_t id, int32_t priority, std::span<const FieldMatch> match,
                       const std::vector<int>& idx, std::optional<uint64_t>& part_value);

  std::vector<KeyField> keys_;
  std::vector<uint8_t> word_off_;
  std::vector<uint8_t> nwords_;
  int words_ = 0;
  int part_ = -1;  // key index partitioned on, -1 none
  TupleSpace space_;
  void AddSmall(SmallList& l, const CompiledRule& c) const;
  void RemoveSmall(SmallList& l, uint32_t id) const;
  void ScanSmall(const SmallList& l, const uint64_t* key, uint32_t present, Best& best,
                 bool& tie) const noexcept;

  TupleSet wild_;                              // rules not mentioning the partition key
  absl::flat_hash_map<uint64_t, Part> parts_;  // partition value -> its tuples and small list
  absl::flat_hash_map<uint32_t, std::optional<uint64_t>> where_;  // rule -> its partition
  uint64_t next_seq_ = 0;
  std::vector<int> idx_;  // scratch: key index of each field of the rule being inserted
};

CompiledRule TupleSpaceClassifier::Compile(uint32_t id, int32_t priority,
                                           std::span<const FieldMatch> match,
                                           const std::vector<int>& idx,
                                           std::optional<uint64_t>& part_value) {
  CompiledRule c{std::vector<uint64_t>(words_, 0), std::vector<uint64_t>(words_, 0), 0,
                 BucketRule{priority, next_seq_++, id, {}}};
  for (size_t m = 0; m < match.size(); ++m) {
    const auto i = static_cast<size_t>(idx[m]);
    const int width = flowtables::GetFieldInfo(match[m].field).width_bits;
    c.required |= FieldBit(match[m].field);
    U128 v{}, k{};
    if (const auto* e = std::get_if<ExactMatch>(&match[m].value)) {
      v = e->value, k = LowOnes(width);
      if (static_cast<int>(i) == part_) part_value = v.lo;
    } else if (const auto* t = std::get_if<TernaryMatch>(&match[m].value)) {
      v = t->value & t->mask, k = t->mask & LowOnes(width);
    } else if (const auto* l = std::get_if<LpmMatch>(&match[m].value)) {
      k = PrefixMaskBits(width, l->prefix_len_bits), v = l->value & k;
    } else {
      const auto& r = std::get<RangeMatch>(match[m].value);
      if (!RangeAsMask(r, width, v, k)) {
        c.rule.ranges.push_back({word_off_[i], nwords_[i], r.lo, r.hi});
        v = k = U128{};
      }
    }
    Store(v & k, i, c.value.data());
    Store(k, i, c.mask.data());
  }
  return c;
}

absl::Status TupleSpaceClassifier::Insert(uint32_t id, int32_t priority,
                                          std::span<const FieldMatch> match) {
  idx_.clear();
  if (absl::Status s = CheckMatch(keys_, match, &idx_); !s.ok()) return s;
  if (where_.contains(id)) return absl::AlreadyExistsError(absl::StrCat("rule ", id, " exists"));
  std::optional<uint64_t> part_value;
  CompiledRule c = Compile(id, priority, match, idx_, part_value);
  if (part_value) {
    Part& part = parts_[*part_value];
    AddSmall(part.small, c);
    part.tuples.Add(space_.Insert(std::move(c)));
  } else {
    wild_.Add(space_.Insert(std::move(c)));
  }
  where_.emplace(id, part_value);
  return absl::OkStatus();
}

// Compiles the whole batch so each tuple's index is sized once (growing it rule by rule rehashed
// it log n times); then inserts in order, as Insert would. A batch with an invalid rule takes the
// rule-by-rule path, so it fails exactly as that would.
absl::Status TupleSpaceClassifier::InsertBatch(std::span<const RuleSpec> rules) {
  absl::flat_hash_set<uint32_t> ids;
  ids.reserve(rules.size());
  for (const RuleSpec& r : rules) {
    if (!CheckMatch(keys_, r.match, nullptr).ok() || where_.contains(r.id) ||
        !ids.insert(r.id).second) {
      return Classifier::InsertBatch(rules);
    }
  }
  Reserve(rules.size());
  std::vector<CompiledRule> compiled;
  std::vector<std::optional<uint64_t>> parts(rules.size());
  compiled.reserve(rules.size());
  for (size_t i = 0; i < rules.size(); ++i) {
    idx_.clear();
    (void)CheckMatch(keys_, rules[i].match, &idx_);  // checked above
    compiled.push_back(Compile(rules[i].id, rules[i].priority, rules[i].match, idx_, parts[i]));
  }
  space_.ReserveFor(compiled);
  for (size_t i = 0; i < rules.size(); ++i) {
    const uint32_t id = rules[i].id;
    if (parts[i]) {
      Part& part = parts_[*parts[i]];
      AddSmall(part.small, compiled[i]);
      part.tuples.Add(space_.Insert(std::move(compiled[i])));
    } else {
      wild_.Add(space_.Insert(std::move(compiled[i])));
    }
    where_.emplace(id, parts[i]);
  }
  return absl::OkStatus();
}

absl::Status TupleSpaceClassifier::Remove(uint32_t id) {
  auto it = where_.find(id);
  if (it == where_.end()) return absl::NotFoundError(absl::StrCat("rule ", id, " not found"));
  const uint32_t tuple = space_.Remove(id);
  if (it->second) {
    auto part = parts_.find(*it->second);
    part->second.tuples.Remove(tuple);
    RemoveSmall(part->second.small, id);
    if (part->second.tuples.counts.empty()) parts_.erase(part);
  } else {
    wild_.Remove(tuple);
  }
  where_.erase(it);
  return absl::OkStatus();
}

LookupResult TupleSpaceClassifier::Lookup(const PacketFields& f) const noexcept {
  std::array<uint64_t, kMaxKeyWords> key;
  Extract(f, key.data());
  uint64_t allowed = ~0ull;
  Best best;
  bool tie = false;
  if (part_ >= 0) {
    allowed = wild_.mask;
    if (f.has(keys_[part_].field)) {
      if (auto it = parts_.find(key[word_off_[part_]]); it != parts_.end()) {
        if (it->second.small.large) {
          allowed |= it->second.tuples.mask;
        } else {
          ScanSmall(it->second.small, key.data(), f.present, best, tie);
        }
      }
    }
  }
  if (allowed) space_.Lookup(key.data(), f.present, allowed, best, tie);
  return {best.id, tie};
}

void TupleSpaceClassifier::AddSmall(SmallList& l, const CompiledRule& c) const {
  if (l.large) return;
  if (l.rules.size() == kSmallPartition) {  // outgrown: from now on the tuples are probed
    l = SmallList{true, {}, {}, {}};
    return;
  }
  // Inserted in place: words and ranges stay in rule order (as RemoveSmall keeps them).
  const auto pos = static_cast<size_t>(
      std::find_if(l.rules.begin(), l.rules.end(),
                   [&](const SmallRule& r) { return r.priority < c.rule.priority; }) -
      l.rules.begin());
  const size_t range_at = pos < l.rules.size() ? l.rules[pos].range_begin : l.ranges.size();
  const auto count = static_cast<uint16_t>(c.rule.ranges.size());
  for (size_t i = pos; i < l.rules.size(); ++i) {
    l.rules[i].range_begin = static_cast<uint16_t>(l.rules[i].range_begin + count);
  }
  l.rules.insert(l.rules.begin() + static_cast<ptrdiff_t>(pos),
                 SmallRule{c.rule.priority, c.rule.id, c.rule.seq, c.required,
                           static_cast<uint16_t>(range_at), count});
  l.ranges.insert(l.ranges.begin() + static_cast<ptrdiff_t>(range_at), c.rule.ranges.begin(),
                  c.rule.ranges.end());
  const auto word_at =
      l.words.begin() + static_cast<ptrdiff_t>(pos * 2 * static_cast<size_t>(words_));
  const auto after_mask = l.words.insert(word_at, c.mask.begin(), c.mask.end()) + words_;
  l.words.insert(after_mask, c.value.begin(), c.value.end());
}

void TupleSpaceClassifier::RemoveSmall(SmallList& l, uint32_t id) const {
  if (l.large) return;
  auto it =
      std::find_if(l.rules.begin(), l.rules.end(), [&](const SmallRule& r) { return r.id == id; });
  const auto i = static_cast<size_t>(it - l.rules.begin());
  const size_t w = 2 * static_cast<size_t>(words_);
  l.words.erase(l.words.begin() + static_cast<ptrdiff_t>(i * w),
                l.words.begin() + static_cast<ptrdiff_t>((i + 1) * w));
  const uint16_t begin = it->range_begin, count = it->range_count;
  l.ranges.erase(l.ranges.begin() + begin, l.ranges.begin() + begin + count);
  l.rules.erase(it);
  for (SmallRule& r : l.rules) {
    if (r.range_begin > begin) r.range_begin = static_cast<uint16_t>(r.range_begin - count);
  }
}

// The first rule in lookup order that matches wins; a later one of the same priority that also
// matches is a tie (as a bucket reports it).
void TupleSpaceClassifier::ScanSmall(const SmallList& l, const uint64_t* key, uint32_t present,
                                     Best& best, bool& tie) const noexcept {
  const size_t w = static_cast<size_t>(words_);
  auto matches = [&](size_t i) {
    const SmallRule& r = l.rules[i];
    if ((present & r.required) != r.required) return false;
    const uint64_t* m = &l.words[i * 2 * w];
    for (size_t k = 0; k < w; ++k) {
      if ((key[k] & m[k]) != m[w + k]) return false;
    }
    for (uint16_t k = 0; k < r.range_count; ++k) {
      const RangeCheck& c = l.ranges[r.range_begin + k];
      const U128 v = c.words == 2 ? U128{key[c.word], key[c.word + 1]} : U128::Of(key[c.word]);
      if (v < c.lo || c.hi < v) return false;
    }
    return true;
  };
  for (size_t i = 0; i < l.rules.size(); ++i) {
    if (!matches(i)) continue;
    const SmallRule& r = l.rules[i];
    bool rule_tie = false;
    for (size_t j = i + 1; j < l.rules.size() && l.rules[j].priority == r.priority; ++j) {
      rule_tie = rule_tie || matches(j);
    }
    best.Offer(r.priority, r.seq, r.id, rule_tie, tie);
    return;
  }
}

}  // namespace

std::unique_ptr<Classifier> MakeTupleSpaceClassifier(std::vector<KeyField> keys) {
  return std::make_unique<TupleSpaceClassifier>(std::move(keys));
}

TupleSpaceStats GetTupleSpaceStats(const Classifier& c) {
  if (const auto* t = dynamic_cast<const TupleSpaceClassifier*>(&c)) return t->Stats();
  return {0, c.size(), 0, 0};
}

}  // namespace nicflow::sim
