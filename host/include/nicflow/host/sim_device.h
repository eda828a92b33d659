// SimDevice: the Device backed by the software SmartNIC (sim::SimNic).
//
// The simulator already applies deltas transactionally, reads back and counts per entry, so this
// is a thin adapter; its capabilities come from the simulator's device profile. It is also the
// software datapath placement falls back to (an "unlimited" profile) and the device the
// reconciler's fault-injection tests run against (nic().InjectFault()).
#pragma once

#include <memory>
#include <string>

#include "nicflow/host/device.h"
#include "nicflow/sim/device.h"
#include "nicflow/sim/profile.h"

namespace nicflow::host {

/// Capabilities equivalent to a simulator device profile.
Capabilities CapabilitiesFromProfile(const sim::DeviceProfile& profile);

class SimDevice final : public Device {
 public:
  /// Wraps a new SimNic with `profile`.
  explicit SimDevice(sim::DeviceProfile profile, sim::SimNic::Options options = {});
  /// Wraps an existing SimNic (not owned; must outlive this object), e.g. one a live loop runs.
  explicit SimDevice(sim::SimNic& nic);

  std::string_view name() const override { return name_; }
  const Capabilities& capabilities() const override { return caps_; }
  absl::Status Install(const flowtables::Program& p) override;
  absl::Status Apply(const flowtables::Delta& d) override;
  absl::Status DeclarePorts(const std::vector<flowtables::PortDecl>& ports) override;
  absl::StatusOr<flowtables::Program> ReadBack() const override;
  absl::StatusOr<EntryCounter> GetEntryCounter(std::string_view entry_key) const override;
  absl::StatusOr<TableCounter> GetTableCounter(flowtables::TableId table) const override;

  /// The simulated NIC (packets, traces, fault injection).
  sim::SimNic& nic() { return *nic_; }
  const sim::SimNic& nic() const { return *nic_; }

 private:
  std::unique_ptr<sim::SimNic> owned_;
  sim::SimNic* nic_;
  std::string name_;
  Capabilities caps_;
};

}  // namespace nicflow::host
