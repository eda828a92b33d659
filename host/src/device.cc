#include "nicflow/host/device.h"

#include <algorithm>

namespace nicflow::host {

namespace {

bool AllExact(const flowtables::TableSchema& t) {
  return std::all_of(t.keys.begin(), t.keys.end(), [](const flowtables::KeyField& k) {
    return k.kind == flowtables::MatchKind::kExact;
  });
}

}  // namespace

uint32_t Capabilities::CapacityOf(const flowtables::TableSchema& t) const {
  if (auto it = table_capacity.find(t.name); it != table_capacity.end()) return it->second;
  return AllExact(t) ? exact_table_capacity : wildcard_table_capacity;
}

bool Capabilities::TableHeld(const flowtables::TableSchema& t) const {
  auto it = table_capacity.find(t.name);
  return it == table_capacity.end() || it->second != 0;
}

Capabilities Capabilities::Unlimited() {
  Capabilities c;
  c.actions.fill(true);
  c.match_fields.fill(true);
  return c;
}

}  // namespace nicflow::host
