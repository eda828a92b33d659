// Weighted Maglev consistent hashing (Eisenbud et al., NSDI'16) for select groups.
//
// Each backend has a permutation of the M table slots, derived from a hash of its stable key
// (the bucket label, e.g. "10.244.1.10:8080"), so a backend's preferences do not depend on the
// other backends. Backends take turns claiming their next preferred free slot until the table is
// full. Weights are honoured by credit: each round a backend earns its weight and claims one slot
// per `max_weight` of credit, so slot shares are proportional to weights. M is a prime at least
// 100 x the number of backends (the paper's rule for <1% imbalance), which also keeps the
// fraction of flows that move when one of N backends leaves close to 1/N.
//
// Lookup is one multiply-shift and one array read.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace nicflow::sim {

struct MaglevBackend {
  uint64_t key_hash = 0;  ///< hash of the backend's stable identity (see HashLabel)
  uint32_t weight = 1;    ///< 0: never chosen
};

/// A stable 64-bit hash of a label (FNV-1a then a mixer; independent of process and platform).
uint64_t HashLabel(std::string_view label);

/// The smallest prime in our size list that is >= 100 * backends (at least 251).
uint32_t MaglevTableSize(size_t backends);

class MaglevTable {
 public:
  MaglevTable() = default;
  /// Builds the lookup table. With no positive weight the table is empty (Pick returns kNone).
  static MaglevTable Build(std::span<const MaglevBackend> backends, uint32_t table_size = 0);
  /// As Build, into this table (its buffer is reused when large enough). Same slots as Build.
  void Rebuild(std::span<const MaglevBackend> backends, uint32_t table_size = 0);

  static constexpr uint32_t kNone = 0xffffffffu;
  /// The backend index for a flow hash.
  uint32_t Pick(uint64_t flow_hash) const noexcept {
    if (slots_.empty()) return kNone;
    // Multiply-shift range reduction (Lemire): no 64-bit division on the per-packet path.
    __extension__ using Wide = unsigned __int128;
    const auto i = static_cast<size_t>((static_cast<Wide>(flow_hash) * slots_.size()) >> 64);
    return slots_[i];
  }
  void PrefetchSlot(uint64_t flow_hash) const noexcept {
    if (slots_.empty()) return;
    __extension__ using Wide = unsigned __int128;
    __builtin_prefetch(
        &slots_[static_cast<size_t>((static_cast<Wide>(flow_hash) * slots_.size()) >> 64)]);
  }
  size_t size() const { return slots_.size(); }
  /// Slots owned by each backend (for tests of weight proportionality).
  std::vector<uint32_t> SlotCounts(size_t backends) const;

 private:
  std::vector<uint32_t> slots_;
};

}  // namespace nicflow::sim
