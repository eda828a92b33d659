// The simulator's Maglev lookup table for select groups; the builder and its design are in
// nicflow/flowtables/maglev.h (shared with the FPGA image so both pick the same bucket).
//
// Lookup is one multiply-shift and one array read.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "nicflow/flowtables/maglev.h"

namespace nicflow::sim {

using flowtables::HashLabel;
using flowtables::MaglevBackend;
using flowtables::MaglevTableSize;

class MaglevTable {
 public:
  MaglevTable() = default;
  /// Builds the lookup table. With no positive weight the table is empty (Pick returns kNone).
  static MaglevTable Build(std::span<const MaglevBackend> backends, uint32_t table_size = 0);
  /// As Build, into this table (its buffer is reused when large enough). Same slots as Build.
  void Rebuild(std::span<const MaglevBackend> backends, uint32_t table_size = 0);

  static constexpr uint32_t kNone = flowtables::kMaglevEmpty;
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
