// Weighted Maglev lookup tables for select groups, built by the same code as the simulator's
// (nicflow/flowtables/maglev.h), so the kernel picks the same bucket.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "nicflow/flowtables/maglev.h"

namespace nicflow::hw {

using flowtables::HashLabel;
using flowtables::MaglevBackend;
using flowtables::MaglevTableSize;
/// Slot -> backend index; empty when no backend has a positive weight.
using MaglevLookup = std::vector<uint32_t>;

inline MaglevLookup BuildMaglev(std::span<const MaglevBackend> backends) {
  MaglevLookup slots;
  flowtables::BuildMaglevSlots(backends, 0, slots);
  return slots;
}

}  // namespace nicflow::hw
