// Device profiles: what a simulated NIC can hold and express.
//
// A profile makes the simulator fail the way a real device would: a table that is full answers
// ResourceExhausted, a match kind or action the device cannot do answers Unimplemented, naming
// the table and entry. The built-in profiles are plausible models of real hardware, documented in
// docs/simulator.md ("Device profiles"), not vendor specifications.
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

namespace nicflow::sim {

inline constexpr size_t kMatchKindCount = 4;
inline constexpr size_t kActionKindCount = static_cast<size_t>(flowtables::ActionKind::kCount);

struct DeviceProfile {
  std::string name;
  std::string description;  ///< one line: what hardware it models
  /// Entries per table whose keys are all exact (hash/EM tables); 0 = unlimited.
  uint32_t exact_table_capacity = 0;
  /// Entries per table with any ternary/LPM/range key (TCAM-like); 0 = unlimited.
  uint32_t wildcard_table_capacity = 0;
  /// Entries across all tables; 0 = unlimited.
  uint32_t total_entry_capacity = 0;
  /// Per-table overrides by table name.
  std::map<std::string, uint32_t, std::less<>> table_capacity;
  std::array<bool, kMatchKindCount> match_kinds{true, true, true, true};
  std::array<bool, kActionKindCount> actions{};  ///< indexed by ActionKind; see AllActions()
  bool select_groups = true;
  uint32_t max_groups = 0;         ///< 0 = unlimited
  uint32_t max_group_buckets = 0;  ///< 0 = unlimited
  uint32_t conntrack_capacity = 1u << 20;
  uint32_t max_vfs = 0;  ///< 0 = unlimited

  bool SupportsMatch(flowtables::MatchKind k) const { return match_kinds[static_cast<size_t>(k)]; }
  bool SupportsAction(flowtables::ActionKind k) const { return actions[static_cast<size_t>(k)]; }
  /// The entry capacity of a table under this profile; 0 = unlimited.
  uint32_t CapacityOf(const flowtables::TableSchema& t) const;
};

/// Every action supported.
std::array<bool, kActionKindCount> AllActions();

/// "connectx6dx", "e810", "alveo-u280" or "unlimited". Errors: NotFound listing the names.
absl::StatusOr<DeviceProfile> BuiltinProfile(std::string_view name);
std::vector<std::string> BuiltinProfileNames();

/// Checks one entry's match kinds and actions (not capacity). Errors: Unimplemented naming the
/// table, the entry and the unsupported kind.
absl::Status CheckEntrySupported(const DeviceProfile& p, const flowtables::TableSchema& table,
                                 const flowtables::Entry& e);
/// Checks a group against select support, bucket count and bucket actions. Errors:
/// Unimplemented (no select groups, unsupported action), ResourceExhausted (too many buckets).
absl::Status CheckGroupSupported(const DeviceProfile& p, const flowtables::SelectGroup& g);
/// Checks a whole program, capacity included (ResourceExhausted naming the table).
absl::Status CheckProgramFits(const DeviceProfile& p, const flowtables::Program& prog);

}  // namespace nicflow::sim
