#include "nicflow/sim/profile.h"

#include <algorithm>

#include "absl/functional/function_ref.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "sv.h"

namespace nicflow::sim {

using flowtables::Action;
using flowtables::ActionKind;
using flowtables::Entry;
using flowtables::MatchKind;
using flowtables::SelectGroup;
using flowtables::TableSchema;

std::array<bool, kActionKindCount> AllActions() {
  std::array<bool, kActionKindCount> a;
  a.fill(true);
  return a;
}

namespace {

std::array<bool, kActionKindCount> ActionsExcept(std::initializer_list<ActionKind> missing) {
  auto a = AllActions();
  for (ActionKind k : missing) a[static_cast<size_t>(k)] = false;
  return a;
}

// Numbers are documented (with their reasoning) in docs/simulator.md, "Device profiles".
DeviceProfile ConnectX6Dx() {
  DeviceProfile p;
  p.name = "connectx6dx";
  p.description = "NVIDIA ConnectX-6 Dx-like: hardware steering in host memory (ICM), CT offload";
  p.exact_table_capacity = 1u << 20;
  p.wildcard_table_capacity = 1u << 16;
  p.total_entry_capacity = 1u << 22;
  p.match_kinds = {true, true, true, false};  // no range items
  p.actions = ActionsExcept({ActionKind::kReject});
  p.select_groups = false;  // rte_flow has no weighted select: lowered to hash buckets upstream
  p.conntrack_capacity = 1u << 20;
  p.max_vfs = 127;
  return p;
}

DeviceProfile E810() {
  DeviceProfile p;
  p.name = "e810";
  p.description = "Intel E810-like: switch filters and a small ACL TCAM, no header rewrite";
  p.exact_table_capacity = 32768;
  p.wildcard_table_capacity = 2048;
  p.total_entry_capacity = 32768;
  p.match_kinds = {true, true, true, false};
  p.actions = ActionsExcept({ActionKind::kReject, ActionKind::kDnat, ActionKind::kSnat,
                             ActionKind::kGroup, ActionKind::kCtLookup, ActionKind::kCtCommit});
  p.select_groups = false;
  p.conntrack_capacity = 0;
  p.max_vfs = 256;
  return p;
}

DeviceProfile AlveoU280() {
  DeviceProfile p;
  p.name = "alveo-u280";
  p.description = "AMD Alveo U280-like FPGA: exact tables in HBM, wildcard tables in URAM TCAM";
  p.exact_table_capacity = 1u << 20;
  p.wildcard_table_capacity = 4096;
  p.total_entry_capacity = 1u << 23;
  p.actions = AllActions();
  p.select_groups = true;
  p.max_groups = 65536;
  p.max_group_buckets = 256;
  p.conntrack_capacity = 1u << 22;
  p.max_vfs = 0;
  return p;
}

DeviceProfile Unlimited() {
  DeviceProfile p;
  p.name = "unlimited";
  p.description = "no limits: every match kind and action, unbounded tables";
  p.actions = AllActions();
  return p;
}

std::string EntryText(const TableSchema& t, const Entry& e) {
  return absl::StrCat("table ", t.name, ": entry priority ", e.priority, " match {",
                      flowtables::MatchesToString(e.match), "}");
}

// `where` names the culprit; it is only called on failure, so the common (supported) case
// formats no text.
absl::Status CheckActions(const DeviceProfile& p, const std::vector<Action>& actions,
                          absl::FunctionRef<std::string()> where) {
  for (const Action& a : actions) {
    if (!p.SupportsAction(flowtables::KindOf(a))) {
      return absl::UnimplementedError(
          absl::StrCat(where(), ": action ", Sv(flowtables::ActionKindName(flowtables::KindOf(a))),
                       " not supported by device profile ", p.name));
    }
  }
  return absl::OkStatus();
}

}  // namespace

uint32_t DeviceProfile::CapacityOf(const TableSchema& t) const {
  if (auto it = table_capacity.find(t.name); it != table_capacity.end()) return it->second;
  const bool exact = std::all_of(t.keys.begin(), t.keys.end(), [](const flowtables::KeyField& k) {
    return k.kind == MatchKind::kExact;
  });
  return exact ? exact_table_capacity : wildcard_table_capacity;
}

absl::StatusOr<DeviceProfile> BuiltinProfile(std::string_view name) {
  if (name == "connectx6dx") return ConnectX6Dx();
  if (name == "e810") return E810();
  if (name == "alveo-u280") return AlveoU280();
  if (name == "unlimited") return Unlimited();
  return absl::NotFoundError(absl::StrCat("device profile \"", Sv(name), "\" unknown; built-in: ",
                                          absl::StrJoin(BuiltinProfileNames(), ", ")));
}

std::vector<std::string> BuiltinProfileNames() {
  return {"connectx6dx", "e810", "alveo-u280", "unlimited"};
}

absl::Status CheckEntrySupported(const DeviceProfile& p, const TableSchema& t, const Entry& e) {
  for (const flowtables::FieldMatch& m : e.match) {
    const auto kind = static_cast<MatchKind>(m.value.index());
    if (!p.SupportsMatch(kind)) {
      return absl::UnimplementedError(absl::StrCat(
          EntryText(t, e), ": ", Sv(flowtables::MatchKindName(kind)), " match on ",
          Sv(flowtables::GetFieldInfo(m.field).name), " not supported by device profile ", p.name));
    }
  }
  return CheckActions(p, e.actions, [&] { return EntryText(t, e); });
}

absl::Status CheckGroupSupported(const DeviceProfile& p, const SelectGroup& g) {
  if (!p.select_groups) {
    return absl::UnimplementedError(
        absl::StrCat("group ", g.name, ": select groups not supported by device profile ", p.name));
  }
  if (p.max_group_buckets && g.buckets.size() > p.max_group_buckets) {
    return absl::ResourceExhaustedError(absl::StrCat("group ", g.name, ": ", g.buckets.size(),
                                                     " buckets, device profile ", p.name,
                                                     " allows ", p.max_group_buckets));
  }
  for (const flowtables::Bucket& b : g.buckets) {
    auto where = [&] { return absl::StrCat("group ", g.name, " bucket ", b.label); };
    if (absl::Status s = CheckActions(p, b.actions, where); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status CheckProgramFits(const DeviceProfile& p, const flowtables::Program& prog) {
  size_t total = 0;
  for (const TableSchema& t : prog.tables) {
    const auto& entries = prog.entries.size() > t.id ? prog.entries[t.id] : std::vector<Entry>{};
    const uint32_t cap = p.CapacityOf(t);
    if (cap && entries.size() > cap) {
      return absl::ResourceExhaustedError(absl::StrCat("table ", t.name, ": ", entries.size(),
                                                       " entries, device profile ", p.name,
                                                       " holds ", cap));
    }
    total += entries.size();
    auto where = [&] { return absl::StrCat("table ", t.name, ": default actions"); };
    if (absl::Status s = CheckActions(p, t.default_actions, where); !s.ok()) return s;
    for (const Entry& e : entries) {
      if (absl::Status s = CheckEntrySupported(p, t, e); !s.ok()) return s;
    }
  }
  if (p.total_entry_capacity && total > p.total_entry_capacity) {
    return absl::ResourceExhaustedError(absl::StrCat(total, " entries, device profile ", p.name,
                                                     " holds ", p.total_entry_capacity));
  }
  if (p.max_groups && prog.groups.size() > p.max_groups) {
    return absl::ResourceExhaustedError(absl::StrCat(prog.groups.size(), " groups, device profile ",
                                                     p.name, " holds ", p.max_groups));
  }
  for (const SelectGroup& g : prog.groups) {
    if (absl::Status s = CheckGroupSupported(p, g); !s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace nicflow::sim
