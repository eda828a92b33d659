// Weighted Maglev consistent hashing (Eisenbud et al., NSDI'16) for select groups, shared by
// every datapath that picks a bucket: the simulator (nicflow/sim/maglev.h) and the FPGA image
// (hw/src/maglev.h). One builder means the kernel and the simulator cannot drift apart on which
// backend a flow gets.
//
// Each backend has a permutation of the M table slots, derived from a hash of its stable key
// (the bucket label, e.g. "10.244.1.10:8080"), so a backend's preferences do not depend on the
// other backends. Backends take turns claiming their next preferred free slot until the table is
// full. Weights are honoured by credit: each round a backend earns its weight and claims one slot
// per `max_weight` of credit, so slot shares are proportional to weights. M is a prime at least
// 100 x the number of backends (the paper's rule for <1% imbalance), which also keeps the
// fraction of flows that move when one of N backends leaves close to 1/N.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace nicflow::flowtables {

struct MaglevBackend {
  uint64_t key_hash = 0;  ///< hash of the backend's stable identity (see HashLabel)
  uint32_t weight = 1;    ///< 0: never chosen
};

/// A stable 64-bit hash of a label (FNV-1a then a mixer; independent of process and platform).
uint64_t HashLabel(std::string_view label);

/// The smallest prime in our size list that is >= 100 * backends (at least 251).
uint32_t MaglevTableSize(size_t backends);

/// Marks a free slot while a table is built (a finished table has none).
inline constexpr uint32_t kMaglevEmpty = 0xffffffffu;

/// Fills `slots` with slot -> backend index for `table_size` slots (0: MaglevTableSize), reusing
/// its buffer; leaves it empty when no backend has a positive weight.
void BuildMaglevSlots(std::span<const MaglevBackend> backends, uint32_t table_size,
                      std::vector<uint32_t>& slots);

}  // namespace nicflow::flowtables
