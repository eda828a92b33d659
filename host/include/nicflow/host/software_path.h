// SoftwarePath: finishes packets a device punted, in the simulator holding the whole program.
//
// A device punts at table T with the packet as it left the device (headers possibly rewritten)
// and the pipeline registers (meta.*, ct_state). The software path must continue exactly where
// the device stopped, not from table 0: by then a DNAT may have rewritten the destination the
// service table matched on. It resumes by running a *resume program*: the full program plus one
// catch-all entry of the highest priority in table 0 that restores the registers and jumps to T.
// (The simulator has no public "start at table T" entry point; see the host report.)
//
// Cost: one resume program per (table, registers) pair, built on demand; fine for traces, tests
// and the first-packet slow path, not a per-packet fast path.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <tuple>

#include "absl/status/statusor.h"
#include "nicflow/flowtables/ir.h"
#include "nicflow/sim/device.h"

namespace nicflow::host {

/// The pipeline registers a device hands over with a punted packet.
struct PuntRegisters {
  uint32_t meta_flags = 0;
  uint32_t src_set = 0;
  uint32_t dst_set = 0;
  uint32_t peer_bits = 0;
  uint8_t ct_state = 0;
  friend auto operator<=>(const PuntRegisters&, const PuntRegisters&) = default;
};

class SoftwarePath {
 public:
  /// `program` is the whole (unplaced) program.
  explicit SoftwarePath(flowtables::Program program);

  /// Traces `packet` (as the device left it) from table `table` with `regs`. Errors: as
  /// SimNic::Install / Trace; InvalidArgument for a table out of range.
  absl::StatusOr<sim::TraceResult> Resume(flowtables::TableId table, const PuntRegisters& regs,
                                          const sim::TraceRequest& packet);

  /// The simulator holding the plain program (ports are resolved through it).
  absl::StatusOr<sim::SimNic*> Plain();

 private:
  absl::StatusOr<sim::SimNic*> NicFor(flowtables::TableId table, const PuntRegisters& regs);

  flowtables::Program program_;
  std::map<std::tuple<flowtables::TableId, PuntRegisters>, std::unique_ptr<sim::SimNic>> nics_;
};

}  // namespace nicflow::host
