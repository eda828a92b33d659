#include "nicflow/sim/classifier.h"

#include <algorithm>
#include <bit>
#include <map>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "classifier_internal.h"
#include "sv.h"

namespace nicflow::sim {

using flowtables::ExactMatch;
using flowtables::FieldMatch;
using flowtables::KeyField;
using flowtables::LpmMatch;
using flowtables::MatchKind;
using flowtables::RangeMatch;
using flowtables::TernaryMatch;

U128 LowOnes(int bits) {
  if (bits <= 0) return {};
  if (bits >= 128) return {~0ull, ~0ull};
  if (bits >= 64) return {bits == 64 ? 0 : (~0ull >> (128 - bits)), ~0ull};
  return {0, ~0ull >> (64 - bits)};
}

U128 PrefixMaskBits(int width_bits, int prefix_len_bits) {
  return LowOnes(width_bits) & ~LowOnes(width_bits - prefix_len_bits);
}

bool FieldMatches(const FieldMatch& m, const PacketFields& f) noexcept {
  if (!f.has(m.field)) return false;
  const U128 v = f.get(m.field);
  const int width = flowtables::GetFieldInfo(m.field).width_bits;
  if (const auto* e = std::get_if<ExactMatch>(&m.value)) return v == e->value;
  if (const auto* t = std::get_if<TernaryMatch>(&m.value))
    return (v & t->mask) == (t->value & t->mask);
  if (const auto* l = std::get_if<LpmMatch>(&m.value)) {
    const U128 mask = PrefixMaskBits(width, l->prefix_len_bits);
    return (v & mask) == (l->value & mask);
  }
  const auto& r = std::get<RangeMatch>(m.value);
  return r.lo <= v && v <= r.hi;
}

MatchKind KindOfMatch(const FieldMatch& m) { return static_cast<MatchKind>(m.value.index()); }

absl::Status CheckMatch(const std::vector<KeyField>& keys, std::span<const FieldMatch> match,
                        std::vector<int>* key_index) {
  uint32_t seen = 0;
  for (const FieldMatch& m : match) {
    const std::string_view name = flowtables::GetFieldInfo(m.field).name;
    auto it = std::find_if(keys.begin(), keys.end(),
                           [&](const KeyField& k) { return k.field == m.field; });
    if (it == keys.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("field ", Sv(name), " is not a key of the table"));
    }
    if (it->kind != KindOfMatch(m)) {
      return absl::InvalidArgumentError(
          absl::StrCat("field ", Sv(name), ": ", Sv(flowtables::MatchKindName(KindOfMatch(m))),
                       " match on a key declared ", Sv(flowtables::MatchKindName(it->kind))));
    }
    const uint32_t bit = FieldBit(m.field);
    if (seen & bit) return absl::InvalidArgumentError(absl::StrCat("field ", Sv(name), " twice"));
    seen |= bit;
    if (const auto* r = std::get_if<RangeMatch>(&m.value); r && r->hi < r->lo) {
      return absl::InvalidArgumentError(absl::StrCat("field ", Sv(name), ": empty range"));
    }
    if (key_index) key_index->push_back(static_cast<int>(it - keys.begin()));
  }
  return absl::OkStatus();
}

namespace {

// ---------------------------------------------------------------------------------------------
// Linear classifier: the oracle.

class LinearClassifier final : public Classifier {
 public:
  explicit LinearClassifier(std::vector<KeyField> keys) : keys_(std::move(keys)) {}

  absl::Status Insert(uint32_t id, int32_t priority, std::span<const FieldMatch> match) override {
    if (absl::Status s = CheckMatch(keys_, match, nullptr); !s.ok()) return s;
    for (const Rule& r : rules_) {
      if (r.id == id) return absl::AlreadyExistsError(absl::StrCat("rule ", id, " exists"));
    }
    rules_.push_back({id, priority, next_seq_++, {match.begin(), match.end()}});
    return absl::OkStatus();
  }

  absl::Status Remove(uint32_t id) override {
    auto it = std::find_if(rules_.begin(), rules_.end(), [&](const Rule& r) { return r.id == id; });
    if (it == rules_.end()) return absl::NotFoundError(absl::StrCat("rule ", id, " not found"));
    rules_.erase(it);
    return absl::OkStatus();
  }

  LookupResult Lookup(const PacketFields& f) const noexcept override {
    const Rule* best = nullptr;
    bool tie = false;
    for (const Rule& r : rules_) {
      if (best && r.priority < best->priority) continue;
      bool ok = true;
      for (const FieldMatch& m : r.match) ok = ok && FieldMatches(m, f);
      if (!ok) continue;
      if (best && r.priority == best->priority) {
        tie = true;  // rules_ is in insertion order: the earlier one stays
        continue;
      }
      best = &r;
      tie = false;
    }
    return {best ? best->id : kNoRule, tie};
  }

  size_t size() const override { return rules_.size(); }

 private:
  struct Rule {
    uint32_t id;
    int32_t priority;
    uint64_t seq;
    std::vector<FieldMatch> match;
  };
  std::vector<KeyField> keys_;
  std::vector<Rule> rules_;
  uint64_t next_seq_ = 0;
};

}  // namespace

std::unique_ptr<Classifier> MakeLinearClassifier(std::vector<KeyField> keys) {
  return std::make_unique<LinearClassifier>(std::move(keys));
}

}  // namespace nicflow::sim
