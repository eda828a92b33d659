// Private to host/: RteFlowSim, a software model of an rte_flow device that executes the rule
// arrays the lowering produces (DPDK's own rte_flow_attr / rte_flow_item / rte_flow_action), so
// the lowering is proven by running it, not by reading it.
//
// Semantics modelled (rte_flow.h, "Flow rules" and "Matching pattern"):
// * A packet starts in group 0. In a group, the rule with the lowest `priority` whose pattern
//   matches wins (ties: the rule created first). A miss in a group is reported as such (PMDs
//   drop on a miss outside group 0; the lowering never relies on it).
// * An item matches when the packet carries its protocol layer and, for every field,
//   (packet & mask) == (spec & mask), or with `last` set above spec, spec <= packet <= last
//   after masking. A null spec matches the layer's presence only. Masks on fields this model does
//   not carry (MACs, TTL, ...) are refused when the rule set is loaded, never ignored.
// * Actions run in order: COUNT, MARK, SET_TAG, SET_META, SET_IPV4_DST, SET_IPV6_DST,
//   SET_TP_DST, SAMPLE (a copy goes to software; the packet continues) and one fate: JUMP,
//   DROP, QUEUE/RSS (to software), REPRESENTED_PORT / PORT_REPRESENTOR. Header rewrites are seen
//   by the groups a JUMP leads to, as on NICs that modify headers before the next table lookup.
// * Registers: TAG[0..7] and META start at zero for every packet.
//
// Thread-safety: Run/Trace are const; counters are not kept here (the caller counts hits).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nicflow/sim/packet.h"
#include "rteflow_lower.h"

namespace nicflow::host::rteflow {

enum class Fate : uint8_t { kForward, kDrop, kQueue, kMiss, kLoop };
const char* FateName(Fate f);

struct SimPacket {
  sim::PacketFields fields;
  std::array<uint32_t, 8> tags{};
  uint32_t meta = 0;
};

struct SimResult {
  Fate fate = Fate::kDrop;
  uint16_t port_id = 0;      ///< kForward
  bool representor = false;  ///< kForward: PORT_REPRESENTOR (else REPRESENTED_PORT)
  uint16_t queue = 0;        ///< kQueue
  uint32_t mark = 0;
  bool marked = false;
  bool sampled = false;      ///< a SAMPLE action sent a copy to software
  SimPacket packet;          ///< as it leaves (or is punted)
  std::vector<size_t> hits;  ///< rule indexes in the RuleSet, in order
};

class RteFlowSim {
 public:
  /// Indexes `rules` (which must outlive the model). Errors: Unimplemented naming the rule
  /// (by group and priority) and the item or action the model does not execute.
  static absl::StatusOr<RteFlowSim> Create(const RuleSet& rules);

  /// Runs one packet.
  SimResult Run(const SimPacket& in) const noexcept;
  /// Runs one packet and forks at select groups: one result per distinct bucket path.
  std::vector<SimResult> Trace(const SimPacket& in) const;

 private:
  explicit RteFlowSim(const RuleSet& rules) : rules_(&rules) {}
  bool Matches(const Rule& r, const SimPacket& p, flowtables::Field ignore) const noexcept;
  // Runs the winning rule's actions; returns the next group or -1 when a fate was reached.
  int64_t Execute(size_t rule, SimPacket& p, SimResult& out) const noexcept;
  void TraceFrom(uint32_t group, SimResult state, int depth, std::vector<SimResult>& out) const;

  const RuleSet* rules_;
  std::vector<std::vector<size_t>> by_group_;   ///< rule indexes by (priority, creation)
  std::vector<flowtables::Field> select_hash_;  ///< per group: the bucket field, or kCount
};

/// A packet's RteFlowSim view from a parsed frame.
SimPacket PacketFromParsed(const sim::ParsedPacket& p);

}  // namespace nicflow::host::rteflow
