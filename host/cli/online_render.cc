// Human renderings of the agent's JSON replies (see online.h).
#include <algorithm>
#include <ctime>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nicflow/flowtables/program_json.h"
#include "nicflow/host/rteflow.h"
#include "online.h"
#include "table_printer.h"

namespace nicflow::cli {

using nlohmann::json;

namespace {

std::string Str(const json& j) {
  if (j.is_string()) return j.get<std::string>();
  if (j.is_null()) return "-";
  return j.dump();
}

std::string TimeText(int64_t unix_ms) {
  if (unix_ms <= 0) return "never";
  std::time_t t = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string MatchText(const json& match) {
  std::vector<std::string> parts;
  for (const json& m : match) {
    std::string field = Str(m.value("field", json()));
    if (m.contains("exact")) {
      parts.push_back(field + "=" + Str(m["exact"]));
    } else if (m.contains("lpm")) {
      parts.push_back(
          absl::StrCat(field, "=", Str(m["lpm"]["value"]), "/", m["lpm"]["prefix_len"].get<int>()));
    } else if (m.contains("ternary")) {
      parts.push_back(field + "=" + Str(m["ternary"]["value"]) + "/" + Str(m["ternary"]["mask"]));
    } else if (m.contains("range")) {
      parts.push_back(field + "=" + Str(m["range"]["lo"]) + "-" + Str(m["range"]["hi"]));
    }
  }
  return parts.empty() ? "*" : absl::StrJoin(parts, ",");
}

std::string ActionText(const json& actions) {
  std::vector<std::string> parts;
  for (const json& a : actions) {
    std::string type = Str(a["type"]);
    if (type == "output") {
      parts.push_back("output:" + Str(a["port"]));
    } else if (type == "goto") {
      parts.push_back("goto:" + Str(a["table"]));
    } else if (type == "set_field") {
      parts.push_back("set:" + Str(a["field"]) + "=" + Str(a["value"]) + "/" + Str(a["mask"]));
    } else if (type == "dnat") {
      parts.push_back(absl::StrCat("dnat:", Str(a["addr"]), ":", a["port"].dump()));
    } else if (type == "snat") {
      parts.push_back("snat:" + Str(a["addr"]));
    } else if (type == "group") {
      parts.push_back("group:" + Str(a["group"]));
    } else {
      parts.push_back(type);
    }
  }
  return parts.empty() ? "drop" : absl::StrJoin(parts, ",");
}

std::string OriginText(const json& o) {
  if (!o.is_object() || o.value("kind", "").empty()) return "";
  std::string name = o.value("namespace", "").empty()
                         ? o.value("name", "")
                         : o.value("namespace", "") + "/" + o.value("name", "");
  std::string s = o.value("kind", "") + (name.empty() ? "" : " " + name);
  if (!o.value("detail", "").empty()) s += " " + o.value("detail", "");
  return s;
}

// `pod VFs:` line, then one line per bound pod and per problem.
void RenderPodResources(const json& p, std::ostream& out) {
  const std::string state = Str(p["state"]);
  out << "pod VFs:     ";
  if (state == "off") {
    out << "off (" << Str(p["message"]) << ")\n";
    return;
  }
  out << p["bindings"].size() << " pods bound from " << Str(p["socket"]) << " (" << state;
  if (p["list_errors"].get<uint64_t>() > 0) out << ", " << p["list_errors"] << " failed lists";
  out << ")\n";
  if (!Str(p["message"]).empty()) out << "             " << Str(p["message"]) << "\n";
  for (const json& b : p["bindings"]) {
    out << "             " << Str(b["port"]) << " on VF " << Str(b["vf"]);
    if (!Str(b["pf"]).empty()) out << " (PF " << Str(b["pf"]) << " VF " << b["vf_index"] << ")";
    out << "\n";
  }
  for (const json& problem : p["problems"]) out << "             ! " << Str(problem) << "\n";
}

}  // namespace

void RenderStatus(const json& j, std::ostream& out) {
  out << "node:        " << Str(j["node"]) << "\n"
      << "device:      " << Str(j["device"]) << " (backend " << Str(j["backend"]) << ")\n"
      << "health:      " << (j["healthy"].get<bool>() ? "ok" : "DEGRADED") << "\n";
  if (!j["last_error"].get<std::string>().empty()) {
    out << "last error:  " << Str(j["last_error"]) << "\n";
  }
  if (j["installed"].is_object()) {
    const json& i = j["installed"];
    out << "installed:   " << i["entries"] << " entries in " << i["tables"] << " tables, "
        << i["groups"] << " groups, " << i["pod_ports"] << " pod ports\n";
  } else {
    out << "installed:   nothing yet\n";
  }
  if (j.contains("placement")) {
    out << "placement:   " << j["placement"]["on_device"] << " on the device, "
        << j["placement"]["in_software"] << " in software\n";
  }
  out << "syncs:       " << j["syncs"] << " (" << j["sync_failures"] << " failed), "
      << j["device_ops"] << " device ops, last " << TimeText(j["last_sync_unix_ms"].get<int64_t>())
      << "\n";
  if (j["last_report"].is_object()) {
    const json& r = j["last_report"];
    out << "last apply:  +" << r["entries"]["added"] << " ~" << r["entries"]["modified"] << " -"
        << r["entries"]["deleted"] << " entries, +" << r["groups"]["added"] << " ~"
        << r["groups"]["modified"] << " -" << r["groups"]["deleted"] << " groups in "
        << r["time_ns"]["total"].get<int64_t>() / 1000 << " us"
        << (r["read_back"].get<bool>() ? " (read back from the device)" : "") << "\n";
  }
  out << "inputs:      "
      << (Str(j["inputs"]["manifests"]).empty() ? std::string()
                                                : "manifests " + Str(j["inputs"]["manifests"]))
      << (j["inputs"]["kube_api"].get<bool>() ? " kube-api" : "") << "\n";
  if (j.contains("pod_resources")) RenderPodResources(j["pod_resources"], out);
}

void RenderDumpFlows(const json& j, std::ostream& out) {
  out << "device " << Str(j["device"]) << "\n";
  for (const json& t : j["tables"]) {
    out << "\ntable " << Str(t["name"]) << " (" << t["entries"].size() << " entries";
    if (t.contains("lookups")) {
      out << "; lookups " << t["lookups"] << ", hits " << t["hits"] << ", misses " << t["misses"];
    }
    out << ")\n";
    TablePrinter p({"PRIO", "MATCH", "ACTIONS", "PACKETS", "BYTES", "ORIGIN"});
    for (const json& e : t["entries"]) {
      p.AddRow({e["priority"].dump(), MatchText(e["match"]), ActionText(e["actions"]),
                e["packets"].dump(), e["bytes"].dump(), OriginText(e["origin"])});
    }
    p.AddRow({"miss", "*", ActionText(t["default_actions"]), "", "", ""});
    p.Print(out, "  ");
  }
  if (!j["groups"].empty()) {
    out << "\ngroups (" << j["groups"].size() << ")\n";
    TablePrinter p({"NAME", "BUCKETS", "ORIGIN"});
    for (const json& g : j["groups"]) {
      std::vector<std::string> labels;
      for (const json& b : g["buckets"]) {
        labels.push_back(absl::StrCat(Str(b["label"]), "*", b["weight"].dump()));
      }
      p.AddRow({Str(g["name"]), labels.empty() ? "(none)" : absl::StrJoin(labels, " "),
                OriginText(g["origin"])});
    }
    p.Print(out, "  ");
  }
}

void RenderStats(const json& j, std::ostream& out) {
  out << "device " << Str(j["device"]) << "\n\n";
  TablePrinter p({"TABLE", "ENTRIES", "LOOKUPS", "HITS", "MISSES"});
  for (const json& t : j["tables"]) {
    p.AddRow({Str(t["table"]), t["entries"].dump(), Str(t.value("lookups", json())),
              Str(t.value("hits", json())), Str(t.value("misses", json()))});
  }
  p.Print(out);
  if (j.contains("datapath")) {
    const json& d = j["datapath"];
    out << "\ndatapath: rx " << d["rx_packets"] << ", forwarded " << d["forwarded"] << ", dropped "
        << d["dropped"] << ", rejected " << d["rejected"] << ", punted " << d["punted"]
        << "; conntrack " << d["conntrack_entries"] << "/" << d["conntrack_capacity"] << "\n";
  }
  if (j.contains("software_path")) {
    const json& w = j["software_path"];
    out << "software path: " << w["packets"] << " packets (" << w["resumed"] << " punts resumed, "
        << w["steered"] << " of its own connections), forwarded " << w["forwarded"] << ", dropped "
        << w["dropped"] << "; conntrack " << w["conntrack_entries"] << "; program of sync "
        << w["program_version"] << "\n";
  }
  const json& s = j["sync"];
  out << "sync: " << s["syncs"] << " passes, " << s["failures"] << " failed "
      << s["errors_by_stage"].dump() << ", " << s["device_ops"] << " device ops\n";
}

void RenderDiff(const json& j, std::ostream& out) {
  out << "device " << Str(j["device"]) << ": desired " << j["desired"]["entries"]
      << " entries, installed " << j["installed"]["entries"] << " entries\n";
  if (j.value("schema_differs", false)) {
    out << "tables differ: the next sync reinstalls (" << Str(j["note"]) << ")\n";
    return;
  }
  if (j["in_sync"].get<bool>()) {
    out << "in sync: the device holds exactly the desired program\n";
    return;
  }
  TablePrinter p({"OP", "TABLE/GROUP", "PRIO", "MATCH", "ACTIONS", "ORIGIN"});
  for (const json& op : j["ops"]) {
    if (op.contains("group")) {
      p.AddRow(
          {Str(op["op"]), Str(op["group"]["name"]), "", "", "", OriginText(op["group"]["origin"])});
    } else {
      const json& e = op["entry"];
      p.AddRow({Str(op["op"]), Str(op["table"]), e["priority"].dump(), MatchText(e["match"]),
                ActionText(e["actions"]), OriginText(e["origin"])});
    }
  }
  p.Print(out);
}

void RenderCapacity(const json& j, std::ostream& out) {
  out << "device " << Str(j["device"]) << (j["flow_api"].get<bool>() ? "" : " (no flow API)")
      << ": " << j["entries"] << " entries";
  uint64_t total_cap = j["total_entry_capacity"].get<uint64_t>();
  if (total_cap) out << " of " << total_cap;
  out << ", " << j["groups"] << " groups";
  if (j["max_groups"].get<uint64_t>()) out << " of " << j["max_groups"];
  if (j.contains("on_device")) {
    out << "; " << j["on_device"] << " offloaded, " << j["in_software"] << " in software";
  }
  out << "\n\n";
  TablePrinter p({"TABLE", "ENTRIES", "CAPACITY", "USE", "WHERE", "SOFTWARE", "WHY"});
  for (const json& t : j["tables"]) {
    uint64_t cap = t["capacity"].get<uint64_t>();
    uint64_t n = t["entries"].get<uint64_t>();
    std::string use = cap ? absl::StrCat(n * 100 / cap, "%") : "-";
    std::string capacity = !t["held"].get<bool>() ? "none"
                           : cap                  ? std::to_string(cap)
                                                  : "unlimited";
    uint64_t sw = t.value("in_software", 0ull) + t.value("punt_entries", 0ull);
    std::vector<std::string> why;
    for (const json& r : t.value("reasons", json::array())) why.push_back(Str(r));
    p.AddRow({Str(t["table"]), std::to_string(n), capacity, use, Str(t.value("where", json())),
              std::to_string(sw), absl::StrJoin(why, "; ")});
  }
  p.Print(out);
}

void RenderOnlineTrace(const json& j, std::ostream& out) {
  out << "verdict: " << Str(j["verdict"]) << " (entered on " << Str(j["in_port"]) << ")\n";
  if (!j["destinations"].empty()) {
    out << "destinations: "
        << absl::StrJoin(j["destinations"].get<std::vector<std::string>>(), ", ")
        << (j["translated"].get<bool>() ? " (DNAT)" : "")
        << (j["masquerade"].get<bool>() ? " (masquerade)" : "") << "\n";
  }
  size_t n = 0;
  for (const json& path : j["paths"]) {
    out << "\npath " << ++n << ": " << Str(path["verdict"]);
    if (!path["out_port"].get<std::string>().empty()) out << " -> " << Str(path["out_port"]);
    if (!path["reason"].get<std::string>().empty()) out << " (" << Str(path["reason"]) << ")";
    out << "\n";
    TablePrinter p({"TABLE", "PRIO", "MATCH", "ACTIONS", "ORIGIN"});
    for (const json& s : path["steps"]) {
      p.AddRow({Str(s["table"]), s["miss"].get<bool>() ? "miss" : s["priority"].dump(),
                Str(s["match"]), Str(s["actions"]), Str(s["origin"])});
    }
    p.Print(out, "  ");
  }
}

void RenderPipelineTable(const json& j, std::ostream& out) {
  TablePrinter p({"ID", "TABLE", "ENTRIES", "WHERE", "NEXT"});
  for (const json& t : j["tables"]) {
    p.AddRow({t["id"].dump(), Str(t["name"]), t["entries"].dump(), Str(t.value("where", json())),
              absl::StrJoin(t["next"].get<std::vector<std::string>>(), ",")});
  }
  p.Print(out);
}

void RenderPipelineDot(const json& j, std::ostream& out) {
  out << "digraph nicflow {\n  rankdir=LR;\n  node [shape=box, style=\"rounded,filled\", "
         "fontname=\"Helvetica\"];\n";
  out << "  label=\"" << Str(j.value("device", json("device"))) << ": " << j.value("groups", 0)
      << " select groups\";\n";
  for (const json& t : j["tables"]) {
    std::string where = t.value("where", "device");
    std::string color = where == "device" ? "palegreen" : where == "split" ? "khaki" : "lightpink";
    out << "  \"" << Str(t["name"]) << "\" [label=\"" << Str(t["name"]) << "\\n"
        << t["entries"] << " entries";
    if (t.contains("on_device")) {
      out << "\\n" << t["on_device"] << " offloaded, " << t["in_software"] << " software";
    }
    out << "\", fillcolor=" << color << "];\n";
  }
  for (const json& t : j["tables"]) {
    for (const json& next : t["next"]) {
      out << "  \"" << Str(t["name"]) << "\" -> \"" << Str(next) << "\";\n";
    }
  }
  out << "}\n";
}

absl::StatusOr<std::string> RenderDumpTestpmd(const json& j) {
  auto program = flowtables::ProgramFromJson(j);
  if (!program.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the agent's dump is not a whole program: ", program.status().message()));
  }
  auto lines = host::ExportTestpmd(*program, host::RteFlowLowerOptions{});
  if (!lines.ok()) return lines.status();
  return absl::StrJoin(*lines, "\n") + "\n";
}

}  // namespace nicflow::cli
