#include "nicflow/host/placement.h"

#include <algorithm>
#include <set>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "nicflow/flowtables/status.h"

namespace nicflow::host {

namespace {

using flowtables::Action;
using flowtables::Entry;
using flowtables::FieldMatch;
using flowtables::TableSchema;

flowtables::MatchKind KindOfMatch(const FieldMatch& m) {
  return static_cast<flowtables::MatchKind>(m.value.index());
}

// Why the device cannot express an entry's match; empty when it can.
std::string MatchProblem(const Capabilities& caps, const std::vector<FieldMatch>& match) {
  for (const FieldMatch& m : match) {
    const auto& info = flowtables::GetFieldInfo(m.field);
    if (!caps.SupportsField(m.field)) {
      return absl::StrCat("cannot match field ", Sv(info.name));
    }
    if (!caps.SupportsMatch(KindOfMatch(m))) {
      return absl::StrCat("no ", Sv(flowtables::MatchKindName(KindOfMatch(m))), " match (field ",
                          Sv(info.name), ")");
    }
  }
  return "";
}

// Why the device cannot run an action list; empty when it can.
std::string ActionProblem(const Capabilities& caps, const std::vector<Action>& actions,
                          const absl::flat_hash_map<std::string, std::string>& software_groups) {
  for (const Action& a : actions) {
    if (!caps.SupportsAction(flowtables::KindOf(a))) {
      return absl::StrCat("no ", Sv(flowtables::ActionKindName(flowtables::KindOf(a))), " action");
    }
    if (const auto* g = std::get_if<flowtables::GroupAction>(&a)) {
      if (auto it = software_groups.find(g->group); it != software_groups.end()) {
        return absl::StrCat("group ", g->group, " in software (", it->second, ")");
      }
    }
  }
  return "";
}

// Decides each group; returns software groups with their reasons.
absl::flat_hash_map<std::string, std::string> PlaceGroups(const Capabilities& caps,
                                                          const flowtables::Program& p) {
  absl::flat_hash_map<std::string, std::string> software;
  size_t on_device = 0;
  for (const auto& g : p.groups) {
    std::string why;
    if (!caps.select_groups) {
      why = "device has no select groups";
    } else if (caps.max_group_buckets != 0 && g.buckets.size() > caps.max_group_buckets) {
      why = absl::StrFormat("%d buckets > device maximum %d", g.buckets.size(),
                            caps.max_group_buckets);
    } else if (caps.max_groups != 0 && on_device >= caps.max_groups) {
      why = absl::StrFormat("device holds at most %d groups", caps.max_groups);
    } else {
      for (const auto& b : g.buckets) {
        if (why.empty()) why = ActionProblem(caps, b.actions, {});
      }
    }
    if (why.empty()) {
      ++on_device;
    } else {
      software.emplace(g.name, why);
    }
  }
  return software;
}

void AddReason(TablePlacement& t, std::string reason) {
  if (std::find(t.reasons.begin(), t.reasons.end(), reason) == t.reasons.end()) {
    t.reasons.push_back(std::move(reason));
  }
}

Entry CatchAllPunt(const TableSchema& t) {
  Entry e;
  e.table = t.id;
  e.priority = kCatchAllPuntPriority;
  e.actions = {flowtables::PuntAction{}};
  e.origin = {"nicflow", "", "placement", absl::StrCat("catch-all punt of table ", t.name)};
  return e;
}

// Places one table's entries (sorted by priority descending) within `budget` device slots
// (0 = unlimited).
std::vector<Entry> PlaceTable(const Capabilities& caps, const TableSchema& schema,
                              const std::vector<Entry>& entries, uint64_t budget,
                              const absl::flat_hash_map<std::string, std::string>& sw_groups,
                              TablePlacement& tp) {
  std::vector<Entry> out;
  tp.entries = entries.size();
  bool catch_all = false;
  if (!caps.TableHeld(schema)) {
    AddReason(tp, "device cannot hold the table");
    tp.in_software = entries.size();
    catch_all = true;
  } else {
    if (std::string why = ActionProblem(caps, schema.default_actions, sw_groups); !why.empty()) {
      AddReason(tp, absl::StrCat("default actions: ", why));
      catch_all = true;
    }
    for (size_t i = 0; i < entries.size(); ++i) {
      const Entry& e = entries[i];
      const size_t remaining = entries.size() - i;
      // Keep a slot for the catch-all unless everything left fits without one.
      const bool fits = budget == 0 || out.size() + remaining + (catch_all ? 1 : 0) <= budget ||
                        out.size() + 1 < budget;
      std::string match_why = MatchProblem(caps, e.match);
      if (!match_why.empty() || !fits) {
        AddReason(tp,
                  !match_why.empty() ? match_why : absl::StrFormat("capacity %d entries", budget));
        tp.in_software = remaining;
        catch_all = true;
        break;
      }
      if (std::string why = ActionProblem(caps, e.actions, sw_groups); !why.empty()) {
        AddReason(tp, why);
        Entry punt = e;
        punt.actions = {flowtables::PuntAction{}};
        out.push_back(std::move(punt));
        ++tp.punt_entries;
      } else {
        out.push_back(e);
        ++tp.on_device;
      }
    }
  }
  if (catch_all) {
    out.push_back(CatchAllPunt(schema));
    tp.catch_all_punt = true;
  }
  if (!catch_all && tp.on_device == tp.entries) {
    tp.where = Where::kDevice;
  } else if (tp.on_device == 0 && tp.punt_entries == 0) {
    tp.where = Where::kSoftware;
  } else {
    tp.where = Where::kSplit;
  }
  return out;
}

void CollectGroups(const std::vector<Action>& actions, std::set<std::string>& used) {
  for (const Action& a : actions) {
    if (const auto* g = std::get_if<flowtables::GroupAction>(&a)) used.insert(g->group);
  }
}

}  // namespace

std::string_view WhereName(Where w) {
  switch (w) {
    case Where::kDevice:
      return "device";
    case Where::kSplit:
      return "split";
    case Where::kSoftware:
      return "software";
  }
  return "?";
}

absl::StatusOr<PlacedProgram> Place(const Capabilities& caps, const flowtables::Program& p,
                                    std::string_view device_name) {
  NICFLOW_RETURN_IF_ERROR(flowtables::Validate(p));
  PlacedProgram out;
  out.software = p;
  out.report.device = std::string(device_name);
  out.report.flow_api = caps.flow_api;
  out.report.note = caps.note;
  Capabilities effective = caps;
  if (!caps.flow_api) {
    // Nothing can be offloaded: every table punts at once.
    effective.table_capacity.clear();
    for (const auto& t : p.tables) effective.table_capacity[t.name] = 0;
  }
  auto sw_groups = PlaceGroups(effective, p);
  out.device.tables = p.tables;
  out.device.ports = p.ports;
  out.device.entries.resize(p.tables.size());
  uint64_t total_left = effective.total_entry_capacity;
  std::set<std::string> used_groups;
  for (const auto& schema : p.tables) {
    TablePlacement tp;
    tp.table = schema.id;
    tp.name = schema.name;
    uint64_t budget = effective.CapacityOf(schema);
    if (effective.total_entry_capacity != 0) {
      budget = budget == 0 ? std::max<uint64_t>(total_left, 1)
                           : std::min<uint64_t>(budget, std::max<uint64_t>(total_left, 1));
    }
    auto placed = PlaceTable(effective, schema, p.entries[schema.id], budget, sw_groups, tp);
    if (effective.total_entry_capacity != 0) {
      total_left -= std::min<uint64_t>(total_left, placed.size());
    }
    for (const Entry& e : placed) CollectGroups(e.actions, used_groups);
    CollectGroups(schema.default_actions, used_groups);
    out.device.entries[schema.id] = std::move(placed);
    out.report.tables.push_back(std::move(tp));
  }
  for (const auto& g : p.groups) {
    GroupPlacement gp{g.name, Where::kDevice, ""};
    if (auto it = sw_groups.find(g.name); it != sw_groups.end()) {
      gp.where = Where::kSoftware;
      gp.reason = it->second;
    } else if (!used_groups.contains(g.name)) {
      gp.where = Where::kSoftware;
      gp.reason = "only referenced by entries placed in software";
    } else {
      out.device.groups.push_back(g);
    }
    out.report.groups.push_back(std::move(gp));
  }
  NICFLOW_RETURN_IF_ERROR(flowtables::Validate(out.device));
  return out;
}

size_t PlacementReport::EntriesOnDevice() const {
  size_t n = 0;
  for (const auto& t : tables) n += t.on_device;
  return n;
}

size_t PlacementReport::EntriesInSoftware() const {
  size_t n = 0;
  for (const auto& t : tables) n += t.punt_entries + t.in_software;
  return n;
}

std::string PlacementReport::ToText() const {
  std::string out = absl::StrFormat("placement on %s: %d entries on the device, %d in software\n",
                                    device, EntriesOnDevice(), EntriesInSoftware());
  if (!flow_api) absl::StrAppend(&out, "device has no flow API: everything runs in software");
  if (!note.empty()) absl::StrAppend(&out, flow_api ? "note: " : " (", note, flow_api ? "" : ")");
  if (!flow_api || !note.empty()) absl::StrAppend(&out, "\n");
  absl::StrAppendFormat(&out, "%-14s %-8s %8s %8s %6s %8s  %s\n", "TABLE", "WHERE", "ENTRIES",
                        "DEVICE", "PUNT", "SOFTWARE", "REASONS");
  for (const auto& t : tables) {
    absl::StrAppendFormat(&out, "%-14s %-8s %8d %8d %6d %8d  %s%s\n", t.name, WhereName(t.where),
                          t.entries, t.on_device, t.punt_entries, t.in_software,
                          t.catch_all_punt ? "[catch-all punt] " : "",
                          absl::StrJoin(t.reasons, "; "));
  }
  for (const auto& g : groups) {
    if (g.where != Where::kDevice) {
      absl::StrAppendFormat(&out, "group %s: software (%s)\n", g.name, g.reason);
    }
  }
  return out;
}

nlohmann::json PlacementReport::ToJson() const {
  nlohmann::json j{{"device", device},
                   {"flow_api", flow_api},
                   {"note", note},
                   {"entries_on_device", EntriesOnDevice()},
                   {"entries_in_software", EntriesInSoftware()},
                   {"tables", nlohmann::json::array()},
                   {"groups", nlohmann::json::array()}};
  for (const auto& t : tables) {
    j["tables"].push_back({{"table", t.name},
                           {"where", WhereName(t.where)},
                           {"entries", t.entries},
                           {"on_device", t.on_device},
                           {"punt_entries", t.punt_entries},
                           {"in_software", t.in_software},
                           {"catch_all_punt", t.catch_all_punt},
                           {"reasons", t.reasons}});
  }
  for (const auto& g : groups) {
    j["groups"].push_back({{"group", g.name}, {"where", WhereName(g.where)}, {"reason", g.reason}});
  }
  return j;
}

}  // namespace nicflow::host
