// Placement: which part of a program runs on the device and which on the software path.
//
// A device cannot hold everything: a table may be too small, a match kind or action may be
// missing, select groups may be unsupported or too wide. Nothing is silently dropped: what the
// device cannot do is placed in software and the report says what went where and why.
//
// How a program is split
// ----------------------
// The device program keeps every table schema (so diffs against it stay possible and the
// software path resumes at the same table ids). Within a table, entries are walked in the order
// the device evaluates them (priority descending):
//   * an entry the device can express goes to the device as is;
//   * an entry whose match the device can express but whose actions (or select group) it cannot
//     becomes a *punt entry*: same match and priority, actions [Punt];
//   * at the first entry whose match the device cannot express, or when the table's capacity
//     would be exceeded, the table is cut: that entry and every lower-priority one stay in
//     software, and a catch-all punt entry (no match, lowest priority) replaces them on the
//     device. Cutting at a priority boundary is what keeps semantics: a packet either hits an
//     entry above the cut (same as unsplit, since nothing above was removed) or is punted.
//   * a table the device cannot hold at all, or whose default actions it cannot run, gets a
//     catch-all punt entry (its entries stay in software).
// A punted packet is finished by the software datapath (the simulator), which holds the whole
// program and resumes at the table where the device punted, with the packet as the device left
// it. Punt itself must be supported by every device (it is how a NIC hands a packet to the host).
//
// Cost: a punt entry uses a device slot; one catch-all per cut table. The capacity reserved for
// the catch-all is taken from the table's capacity.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "nicflow/flowtables/ir.h"
#include "nicflow/host/device.h"

namespace nicflow::host {

/// Priority of the catch-all punt entry of a cut table (below anything the compiler emits).
inline constexpr int32_t kCatchAllPuntPriority = std::numeric_limits<int32_t>::min();

enum class Where : uint8_t { kDevice, kSplit, kSoftware };
std::string_view WhereName(Where w);  ///< "device", "split", "software"

struct TablePlacement {
  flowtables::TableId table = 0;
  std::string name;
  Where where = Where::kDevice;
  size_t entries = 0;           ///< entries in the program
  size_t on_device = 0;         ///< entries installed as they are
  size_t punt_entries = 0;      ///< entries replaced by a punt entry (match kept)
  size_t in_software = 0;       ///< entries below a cut (software only)
  bool catch_all_punt = false;  ///< a catch-all punt entry was added
  std::vector<std::string> reasons;
};

struct GroupPlacement {
  std::string name;
  Where where = Where::kDevice;
  std::string reason;
};

struct PlacementReport {
  std::string device;
  bool flow_api = true;
  std::string note;
  std::vector<TablePlacement> tables;
  std::vector<GroupPlacement> groups;

  size_t EntriesOnDevice() const;
  size_t EntriesInSoftware() const;  ///< punt entries and entries below cuts
  std::string ToText() const;
  nlohmann::json ToJson() const;
};

struct PlacedProgram {
  flowtables::Program device;    ///< what the device installs
  flowtables::Program software;  ///< what the software path runs (the whole program)
  PlacementReport report;
};

/// Splits `p` for a device with `caps`; `device_name` labels the report. Errors: InvalidArgument
/// when `p` does not validate.
absl::StatusOr<PlacedProgram> Place(const Capabilities& caps, const flowtables::Program& p,
                                    std::string_view device_name = "device");

}  // namespace nicflow::host
