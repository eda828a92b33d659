#include "nicflow/host/fpga_device.h"

#ifdef NICFLOW_HOST_HAVE_FPGA

#include "absl/strings/str_cat.h"
#include "nicflow/flowtables/status.h"
#include "nicflow/hw/image_format.h"

namespace nicflow::host {

Capabilities CapabilitiesFromGeometry(const hw::ImageGeometry& g) {
  const hw::ImageCapacity c = hw::CapacityOf(g);
  Capabilities caps;
  caps.actions.fill(true);
  caps.match_fields.fill(true);
  caps.select_groups = true;
  caps.max_groups = c.groups;
  caps.max_group_buckets = NF_MAX_BUCKETS;
  caps.wildcard_table_capacity = c.ternary_rows_per_table;
  caps.exact_table_capacity = c.ternary_rows_per_table + c.exact_entries_per_table / 2;
  // Every entry, bucket and table default owns one action slot.
  caps.total_entry_capacity = c.action_slots - NF_MAX_TABLES;
  return caps;
}

FpgaDevice::FpgaDevice(std::unique_ptr<hw::FpgaPipeline> p, Capabilities caps)
    : pipeline_(std::move(p)), caps_(std::move(caps)) {
  name_ = absl::StrCat("fpga:", pipeline_->device().device);
}

absl::StatusOr<std::unique_ptr<FpgaDevice>> FpgaDevice::Open(hw::FpgaOptions options) {
  Capabilities caps = CapabilitiesFromGeometry(options.geometry);
  NICFLOW_ASSIGN_OR_RETURN(auto p, hw::FpgaPipeline::Create(std::move(options)));
  return std::unique_ptr<FpgaDevice>(new FpgaDevice(std::move(p), std::move(caps)));
}

absl::Status FpgaDevice::Install(const flowtables::Program& p) {
  flowtables::Program with_ports = p;
  if (with_ports.ports.empty()) with_ports.ports = ports_;
  return pipeline_->Install(with_ports);
}

absl::Status FpgaDevice::Apply(const flowtables::Delta& d) {
  if (!pipeline_->has_program()) {
    return absl::FailedPreconditionError(absl::StrCat(name_, ": no program installed"));
  }
  absl::Status st = pipeline_->Apply(d);
  if (!st.ok()) return absl::Status(st.code(), absl::StrCat(name_, ": ", st.message()));
  return st;
}

absl::Status FpgaDevice::DeclarePorts(const std::vector<flowtables::PortDecl>& ports) {
  // Output ports get their index when an entry first names them; declarations only record the
  // addresses behind each port for read-back.
  ports_ = ports;
  return absl::OkStatus();
}

absl::StatusOr<flowtables::Program> FpgaDevice::ReadBack() const {
  if (!pipeline_->has_program()) return flowtables::Program{};
  flowtables::Program p = pipeline_->installed();
  if (!ports_.empty()) p.ports = ports_;
  return p;
}

absl::StatusOr<EntryCounter> FpgaDevice::GetEntryCounter(std::string_view entry_key) const {
  NICFLOW_ASSIGN_OR_RETURN(hw::FpgaEntryCounters c, pipeline_->GetEntryCounters(entry_key));
  return EntryCounter{c.packets, c.bytes};
}

absl::StatusOr<TableCounter> FpgaDevice::GetTableCounter(flowtables::TableId table) const {
  NICFLOW_ASSIGN_OR_RETURN(hw::FpgaTableCounters c, pipeline_->GetTableCounters(table));
  return TableCounter{c.hits + c.misses, c.bytes, c.hits, c.misses};
}

}  // namespace nicflow::host

#endif  // NICFLOW_HOST_HAVE_FPGA
