// The public rte_flow entry points that need no EAL: capabilities, testpmd export, lowering
// stats, and the trace through RteFlowSim (rteflow.h).
#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nicflow/flowtables/status.h"
#include "nicflow/host/rteflow.h"
#include "nicflow/host/software_path.h"
#include "rteflow_lower.h"
#include "rteflow_sim.h"

namespace nicflow::host {

namespace {

namespace ft = ::nicflow::flowtables;
using ft::ActionKind;

ft::PortClass ClassOfPortName(std::string_view name) {
  if (name == "host") return ft::PortClass::kHost;
  if (name == "uplink") return ft::PortClass::kUplink;
  return ft::PortClass::kPod;
}

absl::StatusOr<rteflow::RuleSet> PlaceAndLower(const ft::Program& p,
                                               const rteflow::LowerOptions& lo,
                                               PlacementReport* report) {
  NICFLOW_ASSIGN_OR_RETURN(PlacedProgram placed, Place(RteFlowCapabilities(), p, "rteflow"));
  if (report != nullptr) *report = placed.report;
  return rteflow::Lower(placed.device, lo);
}

rteflow::LowerOptions ToLowerOptions(const ft::Program& p, const RteFlowLowerOptions& o) {
  rteflow::LowerOptions lo;
  lo.port_class = ClassOfPortName(o.in_port);
  lo.transfer = o.transfer;
  lo.punt_queue = o.punt_queue;
  lo.select_max_bits = o.select_max_bits;
  lo.outputs = rteflow::DefaultOutputs(p);
  return lo;
}

}  // namespace

Capabilities RteFlowCapabilities() {
  Capabilities c;
  c.note = "rte_flow lowering (groups, JUMP, TAG/META registers, hash-bucket select groups)";
  c.actions.fill(true);
  c.actions[static_cast<size_t>(ActionKind::kReject)] = false;
  c.actions[static_cast<size_t>(ActionKind::kSnat)] = false;
  c.match_fields.fill(true);
  c.max_group_buckets = 256;
  return c;
}

absl::StatusOr<std::vector<std::string>> ExportTestpmd(const ft::Program& p,
                                                       const RteFlowLowerOptions& options,
                                                       PlacementReport* report) {
  const rteflow::LowerOptions lo = ToLowerOptions(p, options);
  NICFLOW_ASSIGN_OR_RETURN(rteflow::RuleSet rs, PlaceAndLower(p, lo, report));
  std::vector<std::string> out = rteflow::TestpmdPreamble(lo);
  out.reserve(out.size() + rs.rules.size());
  for (const rteflow::Rule& r : rs.rules) {
    out.push_back(rteflow::RuleToTestpmd(r, options.ethdev_port_id));
  }
  return out;
}

absl::StatusOr<RteFlowLoweringStats> LowerForStats(const ft::Program& p,
                                                   const RteFlowLowerOptions& options) {
  NICFLOW_ASSIGN_OR_RETURN(rteflow::RuleSet rs,
                           PlaceAndLower(p, ToLowerOptions(p, options), nullptr));
  RteFlowLoweringStats s;
  s.rules = rs.rules.size();
  s.groups = rs.groups;
  for (const auto& r : rs.rules) {
    s.entry_rules += r.role == rteflow::RuleRole::kEntry;
    s.bucket_rules += r.role == rteflow::RuleRole::kSelectBucket;
  }
  s.arena_bytes = rs.arena->bytes();
  s.notes = rs.notes;
  return s;
}

}  // namespace nicflow::host
