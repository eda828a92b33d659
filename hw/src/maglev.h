// Weighted Maglev lookup tables for select groups: the simulator's algorithm (see
// nicflow/sim/maglev.h for the design), reproduced so the kernel picks the same bucket.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace nicflow::hw {

struct MaglevBackend {
  uint64_t key_hash = 0;
  uint32_t weight = 1;
};
/// Slot -> backend index; empty when no backend has a positive weight.
using MaglevLookup = std::vector<uint32_t>;

uint64_t HashLabel(std::string_view label);
uint32_t MaglevTableSize(size_t backends);
MaglevLookup BuildMaglev(std::span<const MaglevBackend> backends);

}  // namespace nicflow::hw
