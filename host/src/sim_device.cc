#include "nicflow/host/sim_device.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "nicflow/flowtables/status.h"

namespace nicflow::host {

Capabilities CapabilitiesFromProfile(const sim::DeviceProfile& profile) {
  Capabilities c;
  c.note = profile.description;
  for (size_t k = 0; k < kMatchKindCount; ++k) c.match_kinds[k] = profile.match_kinds[k];
  for (size_t a = 0; a < kActionKindCount; ++a) c.actions[a] = profile.actions[a];
  c.match_fields.fill(true);
  c.select_groups = profile.select_groups;
  c.max_groups = profile.max_groups;
  c.max_group_buckets = profile.max_group_buckets;
  c.exact_table_capacity = profile.exact_table_capacity;
  c.wildcard_table_capacity = profile.wildcard_table_capacity;
  c.total_entry_capacity = profile.total_entry_capacity;
  for (const auto& [table, cap] : profile.table_capacity) c.table_capacity[table] = cap;
  return c;
}

SimDevice::SimDevice(sim::DeviceProfile profile, sim::SimNic::Options options)
    : owned_(sim::SimNic::Create(std::move(profile), options)),
      nic_(owned_.get()),
      name_(absl::StrCat("sim:", nic_->profile().name)),
      caps_(CapabilitiesFromProfile(nic_->profile())) {}

SimDevice::SimDevice(sim::SimNic& nic)
    : nic_(&nic),
      name_(absl::StrCat("sim:", nic.profile().name)),
      caps_(CapabilitiesFromProfile(nic.profile())) {}

absl::Status SimDevice::Install(const flowtables::Program& p) { return nic_->Install(p); }

absl::Status SimDevice::Apply(const flowtables::Delta& d) { return nic_->Apply(d); }

absl::Status SimDevice::DeclarePorts(const std::vector<flowtables::PortDecl>& ports) {
  return nic_->DeclarePorts(ports);
}

absl::StatusOr<flowtables::Program> SimDevice::ReadBack() const { return nic_->installed(); }

absl::StatusOr<EntryCounter> SimDevice::GetEntryCounter(std::string_view entry_key) const {
  NICFLOW_ASSIGN_OR_RETURN(sim::EntryCounters c, nic_->GetEntryCounters(entry_key));
  return EntryCounter{c.packets, c.bytes};
}

absl::StatusOr<TableCounter> SimDevice::GetTableCounter(flowtables::TableId table) const {
  NICFLOW_ASSIGN_OR_RETURN(sim::TableCounters c, nic_->GetTableCounters(table));
  return TableCounter{c.packets, c.bytes, c.hits, c.misses};
}

}  // namespace nicflow::host
