// Reconciler: keeps a device on the desired program, pushing only the difference.
//
// What it guarantees
// ------------------
// 1. Minimal change. Converge(desired) diffs the desired program against what the device holds
//    (flowtables::Diff) and pushes only that delta. "What the device holds" is read back from the
//    device on the first Converge of a Reconciler and after any failure that may have left the
//    cache unsure; so a restarted process converges by diff, without flushing what is installed
//    (no traffic gap), and converging twice to the same program pushes nothing.
// 2. Make-before-break. The delta is applied in Diff's order: groups added/modified, then
//    entries added/modified from the last table to the first (the target of a goto or group
//    exists before the entry that leads to it), then deletes from the first table to the last,
//    then group deletes. Every intermediate state therefore references only things that exist.
// 3. No half-applied program. With Mode::kTransaction the delta goes to the device in
//    transactions of `batch_ops` ops (0 = one transaction for the whole delta); each is
//    all-or-nothing (Device::Apply's contract). With Mode::kPerOp each op is its own transaction,
//    for devices whose native operations are single rules (rte_flow). When any transaction fails,
//    the reconciler undoes the transactions that succeeded, newest first, with the inverse ops
//    (add <-> delete, modify <-> modify back to the installed value). The reverse of a
//    make-before-break sequence is itself make-before-break, so the rollback never exposes a
//    dangling reference either. The device ends on the last good program; Converge returns the
//    device's error naming the failed op, and last_report() says what was rolled back.
// 4. A failed rollback (the device refuses the undo too) is reported as Internal and the cache is
//    dropped: the next Converge reads the device back before diffing.
//
// Where a naive design falls short: flushing and reinstalling is simple but blackholes traffic
// for the whole install; applying a diff in arbitrary order exposes gotos to missing tables
// entries and groups; retrying a failed op forever leaves the device on a mix of programs.
//
// Per-packet consistency: with a whole-delta transaction every packet sees the old program or
// the new one. Op by op, every packet's path only ever meets entries that exist; the tests check
// that each packet's verdict after every op is the old or the new one for realistic deltas.
//
// A schema change (different tables) cannot be diffed: the reconciler reinstalls (Device::Install)
// and reports it. Ports are declared before the delta (new VFs exist before entries output to
// them).
//
// Thread-safety: none; one owner thread calls Converge.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "nicflow/flowtables/ir.h"
#include "nicflow/host/device.h"

namespace nicflow::host {

struct ReconcilerOptions {
  enum class Mode : uint8_t { kTransaction, kPerOp };
  Mode mode = Mode::kTransaction;
  /// kTransaction: ops per device transaction; 0 = the whole delta in one.
  size_t batch_ops = 0;
  /// Called after every transaction the device accepted, with the number of ops applied so far
  /// (tests send packets here to check the states in between). Not called during rollback.
  std::function<void(size_t ops_applied)> on_applied;
  /// Read the device back after applying and fail (Internal) if it differs from desired.
  bool verify = false;
};

/// What one Converge did.
struct ConvergeReport {
  std::string device;
  bool read_back = false;    ///< installed state was read from the device first
  bool reinstalled = false;  ///< schemas differed: Device::Install replaced everything
  size_t ops_total = 0;      ///< ops in the delta
  size_t ops_applied = 0;    ///< ops the device accepted (before any rollback)
  size_t ops_rolled_back = 0;
  size_t transactions = 0;
  size_t groups_added = 0, groups_modified = 0, groups_deleted = 0;
  size_t entries_added = 0, entries_modified = 0, entries_deleted = 0;
  /// The declared pod ports changed (a pod port added or removed, its IPs or its VF changed).
  bool ports_changed = false;
  bool failed = false;
  std::string error;  ///< the device's error when failed
  int64_t read_ns = 0, diff_ns = 0, apply_ns = 0, total_ns = 0;

  std::string ToText() const;
  nlohmann::json ToJson() const;
};

class Reconciler {
 public:
  /// `device` must outlive the reconciler.
  explicit Reconciler(Device& device, ReconcilerOptions options = {});

  /// Brings the device to `desired` (which must validate). Errors: the device's error for the
  /// failed op, prefixed with the op ("op 3/10 add entry service/...: ..."), after a successful
  /// rollback; Internal when the rollback failed too; FailedPrecondition when the device cannot
  /// be read back.
  [[nodiscard]] absl::StatusOr<ConvergeReport> Converge(const flowtables::Program& desired);
  /// The same, taking the program (saves a copy of a large program on the hot path).
  [[nodiscard]] absl::StatusOr<ConvergeReport> Converge(flowtables::Program&& desired);

  /// Pushes a delta the caller already has (from flowtables::IncrementalCompiler, which keeps
  /// the desired program itself) with the same ordering, transactions and rollback as Converge,
  /// skipping the whole-program Diff. `delta` must be a make-before-break delta from installed()
  /// and `ports` the desired program's ports. Errors: FailedPrecondition when installed() is
  /// unknown (call Converge with the full program instead) or the delta does not fit it; the
  /// device's error after a rollback, as Converge.
  [[nodiscard]] absl::StatusOr<ConvergeReport> ConvergeDelta(
      const flowtables::Delta& delta, const std::vector<flowtables::PortDecl>& ports);

  /// The program the device holds as far as the reconciler knows (nullopt before the first
  /// Converge or after a failed rollback).
  const std::optional<flowtables::Program>& installed() const { return installed_; }
  /// The report of the last Converge, also when it failed.
  const ConvergeReport& last_report() const { return report_; }

 private:
  absl::Status ApplyDelta(const flowtables::Program& from, const flowtables::Delta& delta);
  absl::Status Rollback(const flowtables::Program& from, const flowtables::Delta& delta,
                        size_t applied);

  Device& device_;
  ReconcilerOptions options_;
  std::optional<flowtables::Program> installed_;
  ConvergeReport report_;
};

/// The inverse of `op` given the program it applies to (`before`), e.g. a delete that undoes an
/// add. Errors: FailedPrecondition when `before` lacks what a modify or delete refers to.
absl::StatusOr<flowtables::DeltaOp> InverseOp(const flowtables::Program& before,
                                              const flowtables::DeltaOp& op);

/// One line describing an op: "add entry service prio 100 ipv4_dst=10.96.0.10/32 ...".
std::string DeltaOpToString(const flowtables::DeltaOp& op);

}  // namespace nicflow::host
