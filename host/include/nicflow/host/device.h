// Device: the one interface every offload backend implements (the software simulator, DPDK
// rte_flow ports, the FPGA table image).
//
// A device holds one pipeline program (flowtables/ir.h). The control plane above it (placement,
// reconciler) needs four things from a backend and nothing else:
//   * what it can hold and express (Capabilities), so placement can keep the rest in software;
//   * a transactional Apply of a flowtables::Delta: all ops or none, and on failure the device
//     is exactly as before (backends without native transactions undo their partial work);
//   * read-back of what is installed, so a restarted process converges by diff instead of
//     flushing (no traffic gap);
//   * counters per entry (by flowtables::EntryKey) and per table.
//
// Thread-safety: a Device is used by one thread at a time (the reconciler serialises calls).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nicflow/flowtables/ir.h"

namespace nicflow::host {

inline constexpr size_t kMatchKindCount = 4;
inline constexpr size_t kActionKindCount = static_cast<size_t>(flowtables::ActionKind::kCount);
inline constexpr size_t kFieldCount = static_cast<size_t>(flowtables::Field::kCount);

/// What a device can hold and express. Placement reads nothing else about a device.
struct Capabilities {
  /// False when the device has no usable flow API at all (e.g. a DPDK port answering ENOTSUP):
  /// everything is placed in software. `note` says why.
  bool flow_api = true;
  std::string note;
  std::array<bool, kMatchKindCount> match_kinds{true, true, true, true};
  std::array<bool, kActionKindCount> actions{};  ///< indexed by ActionKind
  std::array<bool, kFieldCount> match_fields{};  ///< fields an entry may match on, by Field
  bool select_groups = true;
  uint32_t max_groups = 0;         ///< 0 = unlimited
  uint32_t max_group_buckets = 0;  ///< 0 = unlimited
  /// Entries per table whose keys are all exact; 0 = unlimited.
  uint32_t exact_table_capacity = 0;
  /// Entries per table with any ternary/LPM/range key; 0 = unlimited.
  uint32_t wildcard_table_capacity = 0;
  /// Entries across all tables; 0 = unlimited.
  uint32_t total_entry_capacity = 0;
  /// Per-table overrides by table name (0 = the table cannot be held at all).
  std::map<std::string, uint32_t, std::less<>> table_capacity;

  bool SupportsMatch(flowtables::MatchKind k) const { return match_kinds[static_cast<size_t>(k)]; }
  bool SupportsAction(flowtables::ActionKind k) const { return actions[static_cast<size_t>(k)]; }
  bool SupportsField(flowtables::Field f) const { return match_fields[static_cast<size_t>(f)]; }
  /// Entry capacity of a table; 0 = unlimited. A table named in table_capacity with 0 is
  /// reported by TableHeld() instead.
  uint32_t CapacityOf(const flowtables::TableSchema& t) const;
  /// False when table_capacity names the table with capacity 0.
  bool TableHeld(const flowtables::TableSchema& t) const;

  /// Everything supported, unlimited (a software device).
  static Capabilities Unlimited();
};

/// Packets and bytes that hit one entry.
struct EntryCounter {
  uint64_t packets = 0;
  uint64_t bytes = 0;
};

/// Lookups in one table.
struct TableCounter {
  uint64_t packets = 0;
  uint64_t bytes = 0;
  uint64_t hits = 0;
  uint64_t misses = 0;
};

class Device {
 public:
  virtual ~Device() = default;

  /// A short name for reports and errors, e.g. "sim:connectx6dx", "rteflow:port0".
  virtual std::string_view name() const = 0;
  virtual const Capabilities& capabilities() const = 0;

  /// Replaces everything the device holds by `p` (first install; a table schema change). Not
  /// hitless: the reconciler uses it only when a diff is impossible. Transactional.
  [[nodiscard]] virtual absl::Status Install(const flowtables::Program& p) = 0;

  /// Applies `d` in order, all or nothing: on error the device holds what it held before and the
  /// status names the op that failed. Errors: FailedPrecondition (an op does not fit what is
  /// installed, or nothing is installed), InvalidArgument, Unimplemented / ResourceExhausted
  /// (the device cannot express or hold it), Unavailable / Internal (device failures).
  [[nodiscard]] virtual absl::Status Apply(const flowtables::Delta& d) = 0;

  /// Declares the ports programs output to (pods' VFs come and go without a schema change).
  [[nodiscard]] virtual absl::Status DeclarePorts(
      const std::vector<flowtables::PortDecl>& ports) = 0;

  /// The program as installed: tables (empty when nothing is installed), entries, groups, ports.
  virtual absl::StatusOr<flowtables::Program> ReadBack() const = 0;

  /// Errors: NotFound when no installed entry has the key (flowtables::EntryKey).
  virtual absl::StatusOr<EntryCounter> GetEntryCounter(std::string_view entry_key) const = 0;
  /// Errors: NotFound for a table id not installed.
  virtual absl::StatusOr<TableCounter> GetTableCounter(flowtables::TableId table) const = 0;
};

}  // namespace nicflow::host
