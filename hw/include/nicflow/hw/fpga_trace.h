// `nicflow trace --target fpga`: one packet through the match-action kernel, explained.
//
// Unlike the simulator's trace, this runs the packet for real on the device (a trace must show
// what the hardware does): it counts in the counters and may commit a connection. The CLI builds
// a fresh pipeline per trace, so that is invisible there.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nicflow/flowtables/ir.h"
#include "nicflow/hw/fpga_pipeline.h"

namespace nicflow::hw {

struct FpgaTraceStep {
  std::string table;
  bool miss = false;  ///< the default actions ran
  int32_t priority = 0;
  std::string match;    ///< flowtables::MatchesToString ("" on a miss)
  std::string actions;  ///< flowtables::ActionsToString of what the slot holds
  std::string origin;   ///< flowtables::Origin::ToString ("" on a miss)
};

struct FpgaTraceReport {
  FpgaVerdict verdict = FpgaVerdict::kDrop;
  std::string out_port;  ///< "vf:ns/pod", "uplink", "host"; "" unless forwarded
  std::vector<FpgaTraceStep> steps;
  std::string src, dst;              ///< as the packet leaves: "ip:port" / "[v6]:port"
  bool translated = false;           ///< destination rewritten (DNAT)
  bool masquerade = false;           ///< source rewritten (SNAT)
  std::optional<std::string> group;  ///< the select group that ran, and the bucket it chose
  std::string bucket;
  /// Every destination the group could have chosen (bucket DNAT targets), for parity with the
  /// simulator's trace, which forks at groups; the chosen one when no group ran.
  std::vector<std::string> destinations;
  uint8_t ct_state = 0;
  uint32_t meta_flags = 0;
  uint8_t parse_error = 0;
};

/// Runs `frame` through `pipeline` (which must have a program) and explains the result.
absl::StatusOr<FpgaTraceReport> TraceFrame(FpgaPipeline& pipeline, std::span<const uint8_t> frame,
                                           uint32_t in_port, uint8_t port_class);

/// Explains a packet `pipeline` has processed (ProcessBatch): `packet.result` and `packet.frame`
/// as it left. Batch callers (the conformance runner) run many packets per kernel launch and
/// explain each; the pipeline's program must be the one the packet ran through.
FpgaTraceReport ExplainPacket(const FpgaPipeline& pipeline, const FpgaPacket& packet);

/// Opens a device as `options` says, installs `program` and traces one frame.
absl::StatusOr<FpgaTraceReport> TraceProgram(const flowtables::Program& program,
                                             FpgaOptions options, std::span<const uint8_t> frame,
                                             uint32_t in_port, uint8_t port_class);

}  // namespace nicflow::hw
