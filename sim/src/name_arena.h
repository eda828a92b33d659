// Private: names packed into large blocks, for maps keyed by views of them.
//
// The simulator looks installed groups up by name once per group action of every entry it
// applies. Names kept as std::string keys (or in the group itself) are each a small heap block
// somewhere among the groups' Maglev tables, so every lookup's final compare was a cache and TLB
// miss (~10% of the entry apply at 10,000 Services, docs/performance.md "Host and rte_flow").
// Packed here, 12,500 names take about half a megabyte, in the order the groups were added.
#pragma once

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "absl/strings/string_view.h"

namespace nicflow::sim {

class NameArena {
 public:
  /// A copy of `name` that stays valid until Clear() or the arena's destruction (moving the arena
  /// keeps it valid).
  absl::string_view Add(absl::string_view name) {
    if (blocks_.empty() || name.size() > capacity_ - used_) {
      capacity_ = std::max(kBlockBytes, name.size());
      blocks_.push_back(std::make_unique<char[]>(capacity_));
      used_ = 0;
    }
    char* at = blocks_.back().get() + used_;
    if (!name.empty()) std::memcpy(at, name.data(), name.size());
    used_ += name.size();
    live_bytes_ += name.size();
    return {at, name.size()};
  }
  /// Records that a name Add() returned is no longer used (its bytes stay until Clear()).
  void Release(absl::string_view name) {
    live_bytes_ -= name.size();
    dead_bytes_ += name.size();
  }
  /// Whether copying the live names into a fresh arena would free at least half of this one.
  bool WorthCompacting() const { return dead_bytes_ > kBlockBytes && dead_bytes_ > live_bytes_; }
  void Clear() {
    blocks_.clear();
    used_ = capacity_ = 0;
    live_bytes_ = dead_bytes_ = 0;
  }

 private:
  static constexpr size_t kBlockBytes = 64 * 1024;
  std::vector<std::unique_ptr<char[]>> blocks_;
  size_t capacity_ = 0;  // of blocks_.back()
  size_t used_ = 0;      // bytes of blocks_.back() handed out
  size_t live_bytes_ = 0;
  size_t dead_bytes_ = 0;
};

}  // namespace nicflow::sim
