// Tuple space search classifier; the design is described in nicflow/sim/classifier.h.
#include <algorithm>
#include <array>
#include <map>

#include "absl/container/flat_hash_map.h"
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

// An open-addressing hash index from fixed-width keys (the tuple's masked key words) to bucket
// ids. Keys live inline next to their slot tags, so a probe touches two arrays and no pointers;
// linear probing with backward-shift deletion keeps no tombstones. Load factor <= 1/2.
class WordKeyIndex {
 public:
  static constexpr uint32_t kNone = 0xffffffffu;
  explicit WordKeyIndex(int words) : w_(words) { Rehash(16); }

  uint32_t Find(const uint64_t* key, uint64_t h) const noexcept {
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      const uint64_t s = slots_[i];
      if (s == 0) return kNone;
      if ((s >> 32) == (h >> 32) && KeyEq(i, key)) return static_cast<uint32_t>(s) - 1;
    }
  }
  void Insert(const uint64_t* key, uint64_t h, uint32_t value) {
    if (2 * (size_ + 1) > slots_.size()) Rehash(2 * slots_.size());
    Place(key, h, value);
    ++size_;
  }
  void Erase(const uint64_t* key, uint64_t h) {
    size_t i = h & mask_;
    while (!(slots_[i] != 0 && (slots_[i] >> 32) == (h >> 32) && KeyEq(i, key))) {
      i = (i + 1) & mask_;
    }
    // Backward shift: pull later entries of the probe run into the hole.
    for (size_t j = (i + 1) & mask_; slots_[j] != 0; j = (j + 1) & mask_) {
      const size_t home = hashes_[j] & mask_;
      if (((j - home) & mask_) >= ((j - i) & mask_)) {
        Move(j, i);
        i = j;
      }
    }
    slots_[i] = 0;
    --size_;
  }

 private:
  bool KeyEq(size_t i, const uint64_t* key) const noexcept {
    const uint64_t* k = keys_.data() + i * w_;
    for (int n = 0; n < w_; ++n) {
      if (k[n] != key[n]) return false;
    }
    return true;
  }
  void Place(const uint64_t* key, uint64_t h, uint32_t value) {
    size_t i = h & mask_;
    while (slots_[i] != 0) i = (i + 1) & mask_;
    slots_[i] = (h & 0xffffffff00000000ull) | (uint64_t{value} + 1);
    hashes_[i] = h;
    std::copy(key, key + w_, keys_.begin() + static_cast<ptrdiff_t>(i * w_));
  }
  void Move(size_t from, size_t to) {
    slots_[to] = slots_[from];
    hashes_[to] = hashes_[from];
    std::copy(keys_.begin() + static_cast<ptrdiff_t>(from * w_),
              keys_.begin() + static_cast<ptrdiff_t>((from + 1) * w_),
              keys_.begin() + static_cast<ptrdiff_t>(to * w_));
    slots_[from] = 0;
  }
  void Rehash(size_t capacity) {
    std::vector<uint64_t> slots = std::move(slots_), hashes = std::move(hashes_),
                          keys = std::move(keys_);
    slots_.assign(capacity, 0);
    hashes_.assign(capacity, 0);
    keys_.assign(capacity * w_, 0);
    mask_ = capacity - 1;
    for (size_t i = 0; i < slots.size(); ++i) {
      if (slots[i] != 0) {
        Place(keys.data() + i * w_, hashes[i], static_cast<uint32_t>(slots[i]) - 1);
      }
    }
  }

  int w_;
  size_t size_ = 0;
  size_t mask_ = 0;
  std::vector<uint64_t> slots_;   // 0 empty; else hash tag (high 32 bits) | value + 1
  std::vector<uint64_t> hashes_;  // full hash per slot, for rehash and backward shift
  std::vector<uint64_t> keys_;    // w_ words per slot
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

struct Tuple {
  std::vector<uint64_t> mask;
  uint32_t required = 0;
  WordKeyIndex index;  // masked key -> bucket id
  std::vector<std::vector<BucketRule>> buckets;
  std::vector<uint32_t> free_buckets;
  std::map<int32_t, uint32_t> priorities;  // priority -> rule count, for max after removals
  int32_t max_priority = 0;
};

struct RuleLoc {
  uint32_t tuple;
  std::vector<uint64_t> key;
};

class TupleSpaceClassifier final : public Classifier {
 public:
  explicit TupleSpaceClassifier(std::vector<KeyField> keys) : keys_(std::move(keys)) {
    for (const KeyField& k : keys_) {
      word_off_.push_back(static_cast<uint8_t>(words_));
      const int w = flowtables::GetFieldInfo(k.field).width_bits > 64 ? 2 : 1;
      nwords_.push_back(static_cast<uint8_t>(w));
      words_ += w;
    }
  }

  absl::Status Insert(uint32_t id, int32_t priority, std::span<const FieldMatch> match) override;
  absl::Status Remove(uint32_t id) override;
  LookupResult Lookup(const PacketFields& f) const noexcept override;
  size_t size() const override { return rules_.size(); }

  TupleSpaceStats Stats() const {
    TupleSpaceStats s{order_.size(), rules_.size(), 0};
    for (const Tuple& t : tuples_) {
      for (const auto& bucket : t.buckets) {
        for (const BucketRule& r : bucket) s.range_checked_rules += r.ranges.empty() ? 0 : 1;
      }
    }
    return s;
  }

 private:
  void Extract(const PacketFields& f, uint64_t* key) const noexcept {
    for (size_t i = 0; i < keys_.size(); ++i) {
      const U128 v = f.get(keys_[i].field);
      if (nwords_[i] == 2) {
        key[word_off_[i]] = v.hi;
        key[word_off_[i] + 1] = v.lo;
      } else {
        key[word_off_[i]] = v.lo;
      }
    }
  }
  void Store(U128 v, int i, uint64_t* out) const {
    if (nwords_[i] == 2) {
      out[word_off_[i]] = v.hi;
      out[word_off_[i] + 1] = v.lo;
    } else {
      out[word_off_[i]] = v.lo;
    }
  }
  static bool RangesOk(const BucketRule& r, const uint64_t* key) noexcept {
    for (const RangeCheck& c : r.ranges) {
      const U128 v = c.words == 2 ? U128{key[c.word], key[c.word + 1]} : U128::Of(key[c.word]);
      if (v < c.lo || c.hi < v) return false;
    }
    return true;
  }
  void Reorder();

  std::vector<KeyField> keys_;
  std::vector<uint8_t> word_off_;
  std::vector<uint8_t> nwords_;
  int words_ = 0;
  std::vector<Tuple> tuples_;
  std::map<std::vector<uint64_t>, uint32_t> tuple_index_;  // mask + required -> tuple
  std::vector<uint32_t> order_;                            // non-empty tuples, max priority desc
  absl::flat_hash_map<uint32_t, RuleLoc> rules_;
  uint64_t next_seq_ = 0;
};

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

absl::Status TupleSpaceClassifier::Insert(uint32_t id, int32_t priority,
                                          std::span<const FieldMatch> match) {
  std::vector<int> idx;
  if (absl::Status s = CheckMatch(keys_, match, &idx); !s.ok()) return s;
  if (rules_.contains(id)) return absl::AlreadyExistsError(absl::StrCat("rule ", id, " exists"));
  std::vector<uint64_t> mask(words_, 0);
  std::vector<uint64_t> value(words_, 0);
  BucketRule rule{priority, next_seq_++, id, {}};
  uint32_t required = 0;
  for (size_t m = 0; m < match.size(); ++m) {
    const int i = idx[m];
    const int width = flowtables::GetFieldInfo(match[m].field).width_bits;
    required |= FieldBit(match[m].field);
    U128 v{}, k{};
    if (const auto* e = std::get_if<ExactMatch>(&match[m].value)) {
      v = e->value, k = LowOnes(width);
    } else if (const auto* t = std::get_if<TernaryMatch>(&match[m].value)) {
      v = t->value & t->mask, k = t->mask & LowOnes(width);
    } else if (const auto* l = std::get_if<LpmMatch>(&match[m].value)) {
      k = PrefixMaskBits(width, l->prefix_len_bits), v = l->value & k;
    } else {
      const auto& r = std::get<RangeMatch>(match[m].value);
      if (!RangeAsMask(r, width, v, k)) {
        rule.ranges.push_back({word_off_[i], nwords_[i], r.lo, r.hi});
        v = k = U128{};
      }
    }
    Store(v & k, i, value.data());
    Store(k, i, mask.data());
  }
  std::vector<uint64_t> sig = mask;
  sig.push_back(required);
  auto [it, fresh] = tuple_index_.try_emplace(std::move(sig), tuples_.size());
  if (fresh) tuples_.push_back(Tuple{mask, required, WordKeyIndex(words_), {}, {}, {}, 0});
  Tuple& t = tuples_[it->second];
  const uint64_t h = HashWords(value.data(), value.size());
  uint32_t b = t.index.Find(value.data(), h);
  if (b == WordKeyIndex::kNone) {
    if (!t.free_buckets.empty()) {
      b = t.free_buckets.back();
      t.free_buckets.pop_back();
    } else {
      b = static_cast<uint32_t>(t.buckets.size());
      t.buckets.emplace_back();
    }
    t.index.Insert(value.data(), h, b);
  }
  std::vector<BucketRule>& bucket = t.buckets[b];
  auto pos = std::find_if(bucket.begin(), bucket.end(),
                          [&](const BucketRule& x) { return x.priority < priority; });
  bucket.insert(pos, std::move(rule));
  ++t.priorities[priority];
  rules_.emplace(id, RuleLoc{it->second, std::move(value)});
  Reorder();
  return absl::OkStatus();
}

absl::Status TupleSpaceClassifier::Remove(uint32_t id) {
  auto it = rules_.find(id);
  if (it == rules_.end()) return absl::NotFoundError(absl::StrCat("rule ", id, " not found"));
  Tuple& t = tuples_[it->second.tuple];
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
  }
  rules_.erase(it);
  Reorder();
  return absl::OkStatus();
}

void TupleSpaceClassifier::Reorder() {
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

LookupResult TupleSpaceClassifier::Lookup(const PacketFields& f) const noexcept {
  std::array<uint64_t, kMaxKeyWords> key;
  std::array<uint64_t, kMaxKeyWords> masked;
  Extract(f, key.data());
  const BucketRule* best = nullptr;
  bool tie = false;
  for (uint32_t ti : order_) {
    const Tuple& t = tuples_[ti];
    if (best && t.max_priority < best->priority) break;
    if ((f.present & t.required) != t.required) continue;
    for (int w = 0; w < words_; ++w) masked[w] = key[w] & t.mask[w];
    const uint32_t b = t.index.Find(masked.data(), HashWords(masked.data(), words_));
    if (b == WordKeyIndex::kNone) continue;
    const std::vector<BucketRule>& bucket = t.buckets[b];
    size_t i = 0;
    while (i < bucket.size() && !RangesOk(bucket[i], key.data())) ++i;
    if (i == bucket.size()) continue;
    const BucketRule* cand = &bucket[i];
    bool bucket_tie = false;
    for (size_t j = i + 1; j < bucket.size() && bucket[j].priority == cand->priority; ++j) {
      bucket_tie = bucket_tie || RangesOk(bucket[j], key.data());
    }
    if (!best || cand->priority > best->priority) {
      best = cand;
      tie = bucket_tie;
    } else if (cand->priority == best->priority) {
      tie = true;
      if (cand->seq < best->seq) best = cand;
    }
  }
  return {best ? best->id : kNoRule, tie};
}

}  // namespace

std::unique_ptr<Classifier> MakeTupleSpaceClassifier(std::vector<KeyField> keys) {
  return std::make_unique<TupleSpaceClassifier>(std::move(keys));
}

TupleSpaceStats GetTupleSpaceStats(const Classifier& c) {
  if (const auto* t = dynamic_cast<const TupleSpaceClassifier*>(&c)) return t->Stats();
  return {0, c.size(), 0};
}

}  // namespace nicflow::sim
