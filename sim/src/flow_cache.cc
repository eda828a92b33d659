#include "flow_cache.h"

#include <algorithm>

namespace nicflow::sim {
namespace {

// Interned paths are few (one per distinct route through the tables); a bound keeps a
// pathological program from growing the store without limit between invalidations.
constexpr size_t kMaxPaths = 1u << 16;

}  // namespace

FlowCache::FlowCache(uint32_t entries) {
  if (entries == 0) return;
  uint32_t cap = kWays;
  while (cap < entries && cap < (1u << 30)) cap <<= 1;
  capacity_ = cap;
  set_mask_ = cap / kWays - 1;
}

bool FlowCache::Insert(const FlowKey& key, uint64_t hash, FlowCacheEntry outcome,
                       const PathStep* steps, size_t n_steps) {
  if (capacity_ == 0) return false;
  std::string path_key(reinterpret_cast<const char*>(steps), n_steps * sizeof(PathStep));
  auto it = path_ids_.find(path_key);
  if (it == path_ids_.end()) {
    if (paths_.size() >= kMaxPaths) return false;
    paths_.emplace_back(static_cast<uint32_t>(steps_.size()), static_cast<uint32_t>(n_steps));
    steps_.insert(steps_.end(), steps, steps + n_steps);
    it = path_ids_.emplace(std::move(path_key), static_cast<uint32_t>(paths_.size() - 1)).first;
  }
  if (table_.empty()) {
    table_.resize(capacity_);
    tags_.resize(capacity_ / kWays);
  }
  const size_t set = SetOf(hash);
  TagLine& line = tags_[set];
  const auto tag = static_cast<uint32_t>(hash >> 32);
  int way = -1;
  for (uint32_t ways = MatchingWays(line, hash); ways != 0 && way < 0; ways &= ways - 1) {
    const int w = std::countr_zero(ways);
    if (table_[set * kWays + w].key == key) way = w;
  }
  for (int w = 0; w < kWays && way < 0; ++w) {
    if (line.tag[w].gen != gen_) way = w;
  }
  if (way < 0) way = static_cast<int>((hash >> 24) % kWays);
  outcome.key = key;
  outcome.path = it->second;
  table_[set * kWays + way] = outcome;
  line.tag[way] = {tag, gen_};
  ++version_;
  ++stats.insertions;
  return true;
}

void FlowCache::Invalidate() {
  ++stats.invalidations;
  ++version_;
  if (++gen_ == 0) {  // wrapped: entries of generation 1 could come back to life
    std::fill(tags_.begin(), tags_.end(), TagLine{});
    gen_ = 1;
  }
  steps_.clear();
  paths_.clear();
  path_ids_.clear();
}

}  // namespace nicflow::sim
