// RteFlowEal and RteFlowDevice: DPDK ports programmed through rte_flow (no DPDK type here).
//
// EAL
// ---
// DPDK's Environment Abstraction Layer can be initialised once per process and owns every port.
// RteFlowEal is the RAII owner: Init() runs rte_eal_init with the configured arguments and fails
// (FailedPrecondition) if EAL was initialised before; the destructor closes the ports it started
// and runs rte_eal_cleanup. CI uses `--no-huge --no-pci -m 256 --no-shconf --vdev=net_null0`.
//
// Ports and placement
// -------------------
// Probe() asks a port what it supports: rte_flow_info_get (template/async API present?) and
// rte_flow_validate of one representative rule per construct the lowering uses (JUMP to a group,
// ternary/range items, TAG/META, MODIFY actions, COUNT, QUEUE). The answers become the port's
// Capabilities, so placement keeps what the port refuses in software. A port without a flow API
// (the vdevs here answer ENOSYS/ENOTSUP) is reported as such: flow_api = false, and everything
// falls back to the software path.
//
// Applying
// --------
// Apply(delta) applies the delta to the installed program, lowers the result and diffs the rule
// sets: new rules are created first (helper groups before the rules that jump to them), then
// the rules no longer wanted are destroyed. A creation failure destroys what this call created,
// so the port is as before (all or nothing). Rules are created with the template/async API
// (rte_flow_configure, pattern/actions templates, template tables, rte_flow_async_create,
// push/pull) when the port reports queues for it, with rte_flow_create otherwise. Every handle is
// owned by an RAII object. rte_flow cannot be read back, so ReadBack() returns what this process
// installed (a restarted process owns a freshly started port, which holds nothing).
// Errors carry rte_flow_error's type and cause: "port 0: rte_flow_create: ITEM_MASK (type 9):
// unsupported mask: Function not implemented".
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nicflow/host/device.h"
#include "nicflow/host/rteflow.h"

namespace nicflow::host {

struct EalConfig {
  /// EAL arguments without argv[0], e.g. {"--no-huge", "--no-pci", "-m", "256", "--no-shconf",
  /// "-l", "0", "--vdev=net_null0"}.
  std::vector<std::string> args;
  /// CI defaults: no hugepages, no PCI, one null vdev port.
  static EalConfig ForTests();
};

/// What a port told the probe.
struct PortProbe {
  uint16_t port_id = 0;
  std::string driver;  ///< e.g. "net_null"
  bool flow_api = false;
  bool template_api = false;
  std::string error;  ///< why flow_api is false, with rte_flow_error's type and cause
  Capabilities capabilities;
  std::string ToText() const;
};

class RteFlowEal {
 public:
  /// Initialises EAL. Errors: FailedPrecondition (already initialised in this process),
  /// Unavailable (rte_eal_init failed; the message carries rte_strerror(rte_errno)).
  static absl::StatusOr<std::unique_ptr<RteFlowEal>> Init(const EalConfig& config);
  ~RteFlowEal();
  RteFlowEal(const RteFlowEal&) = delete;
  RteFlowEal& operator=(const RteFlowEal&) = delete;

  /// Ethdev port ids available.
  std::vector<uint16_t> Ports() const;
  /// Configures and starts a port (one rx/tx queue) so flow rules can be created on it.
  absl::Status StartPort(uint16_t port_id);
  /// Probes a port's rte_flow support. Errors: NotFound (no such port).
  absl::StatusOr<PortProbe> Probe(uint16_t port_id);

 private:
  RteFlowEal() = default;
  std::vector<uint16_t> started_;
};

class RteFlowDevice final : public Device {
 public:
  /// Opens a started port (probing it). Errors: as Probe.
  static absl::StatusOr<std::unique_ptr<RteFlowDevice>> Open(RteFlowEal& eal, uint16_t port_id,
                                                             RteFlowLowerOptions options = {});
  ~RteFlowDevice() override;

  std::string_view name() const override;
  const Capabilities& capabilities() const override;
  const PortProbe& probe() const;
  /// Errors: FailedPrecondition when the port has no flow API; the PMD's error otherwise.
  absl::Status Install(const flowtables::Program& p) override;
  absl::Status Apply(const flowtables::Delta& d) override;
  absl::Status DeclarePorts(const std::vector<flowtables::PortDecl>& ports) override;
  absl::StatusOr<flowtables::Program> ReadBack() const override;
  /// Sums rte_flow_query(COUNT) over the rules an entry was lowered to.
  absl::StatusOr<EntryCounter> GetEntryCounter(std::string_view entry_key) const override;
  /// Unimplemented: rte_flow counts rules, not table lookups.
  absl::StatusOr<TableCounter> GetTableCounter(flowtables::TableId table) const override;

  struct State;  // private (DPDK handles), in src/rteflow_device.cc

 private:
  explicit RteFlowDevice(std::unique_ptr<State> s);
  std::unique_ptr<State> s_;
};

}  // namespace nicflow::host
