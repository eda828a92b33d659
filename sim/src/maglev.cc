#include "nicflow/sim/maglev.h"

namespace nicflow::sim {

MaglevTable MaglevTable::Build(std::span<const MaglevBackend> backends, uint32_t table_size) {
  MaglevTable t;
  t.Rebuild(backends, table_size);
  return t;
}

void MaglevTable::Rebuild(std::span<const MaglevBackend> backends, uint32_t table_size) {
  flowtables::BuildMaglevSlots(backends, table_size, slots_);
}

std::vector<uint32_t> MaglevTable::SlotCounts(size_t backends) const {
  std::vector<uint32_t> c(backends, 0);
  for (uint32_t s : slots_) {
    if (s < backends) ++c[s];
  }
  return c;
}

}  // namespace nicflow::sim
