// The DPDK rte_flow backend, as the rest of nicflow sees it (no DPDK type crosses this header).
//
//   RteFlowCapabilities()  what the lowering can express; placement punts the rest
//   ExportTestpmd()        `nicflow compile -o testpmd`: the rules as dpdk-testpmd commands
//   TraceRteFlow()         `nicflow trace --target rteflow`: compile -> place -> lower -> run one
//                          packet in RteFlowSim (an rte_flow model executing DPDK's own structs),
//                          punted packets finished by the simulator
//   RteFlowEal / RteFlowDevice  (rteflow_device.h) EAL and real ports
//
// docs/rteflow.md describes the lowering (tables -> groups, priorities, items, TAG/META
// registers, NAT actions, select groups as hash buckets, conntrack).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "nicflow/flowtables/ir.h"
#include "nicflow/host/device.h"
#include "nicflow/host/placement.h"
#include "nicflow/sim/device.h"

namespace nicflow::host {

/// What the rte_flow lowering expresses: every match kind (range via `last`), every field but
/// in_port/port_class matched per port, actions Drop, Output, Goto, SetField (metadata, or a whole
/// IPv4 dst / L4 dst), Dnat, Group (as hash buckets), CtLookup, CtCommit, Punt. Not Reject (a
/// NIC does not generate replies) nor Snat (port allocation is state). Buckets per group <= 256.
Capabilities RteFlowCapabilities();

struct RteFlowLowerOptions {
  /// Ingress port the rules are created on and its class (matches on the port class are decided
  /// per port). "uplink", "host" or "vf:ns/pod".
  std::string in_port = "uplink";
  uint16_t ethdev_port_id = 0;  ///< the `<port>` of testpmd's `flow create <port>`
  bool transfer = false;        ///< E-Switch (transfer) rules instead of ingress
  uint16_t punt_queue = 0;
  int select_max_bits = 8;
  /// VF PCI address -> ethdev port id of its representor. A pod port declared with a VF
  /// (PortDecl::vf_pci) outputs there; when this map is set, a pod port whose VF is not in it has
  /// no output (lowering fails naming it) rather than a guessed one. Empty: pod ports are
  /// numbered 1, 2, ... in declaration order (tests, testpmd dumps).
  std::map<std::string, uint16_t> vf_ethdev_ports;
};

/// Counts of a lowering (for reports and the benchmark).
struct RteFlowLoweringStats {
  size_t rules = 0;
  size_t groups = 0;
  size_t entry_rules = 0;
  size_t bucket_rules = 0;
  size_t arena_bytes = 0;
  std::vector<std::string> notes;
};

/// Places `p` for rte_flow, lowers it and prints one `flow create` line per rule, preceded by the
/// `set sample_actions` line the CtCommit rules refer to. Errors: as Place() and the lowering.
absl::StatusOr<std::vector<std::string>> ExportTestpmd(const flowtables::Program& p,
                                                       const RteFlowLowerOptions& options,
                                                       PlacementReport* report = nullptr);

/// Lowers `p` (as placed) and returns only the counts: the benchmark's unit of work.
absl::StatusOr<RteFlowLoweringStats> LowerForStats(const flowtables::Program& p,
                                                   const RteFlowLowerOptions& options);

/// One rte_flow rule a traced packet hit.
struct RteFlowRuleHit {
  uint32_t group = 0;
  uint32_t priority = 0;
  std::string group_name;  ///< the table, or "select svc/...", "conntrack (after ...)"
  std::string pattern;     ///< testpmd syntax
  std::string actions;
  std::string origin;  ///< the IR entry's Kubernetes origin, if any
  std::string note;
};

struct RteFlowPath {
  std::string verdict;      ///< "forward", "drop", "reject", "punt" (final, after software)
  std::string out_port;     ///< "vf:ns/pod", "uplink", "host"
  std::string destination;  ///< "ip:port" as the packet leaves
  bool translated = false;
  bool masquerade = false;
  std::vector<RteFlowRuleHit> rules;
  /// Set when the device punted: the table software resumed at and its steps.
  bool punted = false;
  std::string punt_table;
  std::vector<std::string> software_steps;
};

struct RteFlowTraceResult {
  std::string verdict;  ///< forward if any path forwards, else reject, else punt, else drop
  std::vector<std::string> destinations;
  bool translated = false;
  bool masquerade = false;
  std::vector<std::string> out_ports;
  std::vector<RteFlowPath> paths;
  PlacementReport placement;
  size_t rules = 0;  ///< rules in the lowering

  nlohmann::json ToJson() const;
  std::string ToText() const;
};

/// Traces one packet through the rte_flow lowering of `p`, in RteFlowSim; what the device punts
/// is finished by the simulator holding the whole program, resuming where the device stopped.
/// Errors: InvalidArgument (request), Unimplemented (not lowerable), as SimNic::Trace.
absl::StatusOr<RteFlowTraceResult> TraceRteFlow(const flowtables::Program& p,
                                                const sim::TraceRequest& request);

}  // namespace nicflow::host
