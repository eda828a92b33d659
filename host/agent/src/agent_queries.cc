// The agent's read-only queries: the JSON behind the control API and the metrics text.
#include <algorithm>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nicflow/agent/agent.h"
#include "nicflow/flowtables/program_json.h"
#include "nicflow/flowtables/status.h"
#include "nicflow/sim/profile.h"

namespace nicflow::agent {

using nlohmann::json;

namespace {

json ProgramSummary(const flowtables::Program& p) {
  size_t vfs = std::count_if(p.ports.begin(), p.ports.end(), [](const flowtables::PortDecl& d) {
    return d.ref.kind == flowtables::PortRef::Kind::kPod;
  });
  return json{{"tables", p.tables.size()},
              {"entries", p.EntryCount()},
              {"groups", p.groups.size()},
              {"pod_ports", vfs}};
}

// "IP", "IP:PORT", "[v6]", "[v6]:PORT"; port required when `need_port`.
absl::Status ParseEndpoint(std::string_view text, bool need_port, std::string_view what,
                           flowtables::IpAddr& ip, uint16_t& port) {
  std::string addr(text), port_text;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat(Sv(what), " \"", Sv(text), "\": missing ]"));
    }
    addr = std::string(text.substr(1, close - 1));
    if (close + 1 < text.size()) {
      if (text[close + 1] != ':') {
        return absl::InvalidArgumentError(
            absl::StrCat(Sv(what), " \"", Sv(text), "\": expected :PORT after ]"));
      }
      port_text = std::string(text.substr(close + 2));
    }
  } else if (std::count(text.begin(), text.end(), ':') == 1) {
    size_t colon = text.find(':');
    addr = std::string(text.substr(0, colon));
    port_text = std::string(text.substr(colon + 1));
  }
  auto parsed = flowtables::IpAddr::Parse(addr);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(Sv(what), " \"", Sv(text), "\": ", parsed.status().message()));
  }
  ip = *parsed;
  port = 0;
  uint32_t p = 0;
  if (!port_text.empty() && (!absl::SimpleAtoi(port_text, &p) || p == 0 || p > 65535)) {
    return absl::InvalidArgumentError(
        absl::StrCat(Sv(what), " \"", Sv(text), "\": port must be 1-65535"));
  }
  port = static_cast<uint16_t>(p);
  if (need_port && port == 0) {
    return absl::InvalidArgumentError(absl::StrCat(Sv(what), " \"", Sv(text), "\": needs :PORT"));
  }
  return absl::OkStatus();
}

json TracePathToJson(const sim::TracePath& p) {
  json steps = json::array();
  for (const sim::TraceStep& s : p.steps) {
    steps.push_back({{"table", s.table},
                     {"miss", s.miss},
                     {"priority", s.priority},
                     {"match", s.match},
                     {"actions", s.actions},
                     {"origin", s.origin},
                     {"notes", s.notes}});
  }
  return json{{"verdict", sim::VerdictName(p.verdict)},
              {"reason", p.reason == sim::DropReason::kNone ? "" : sim::DropReasonName(p.reason)},
              {"out_port", p.out_port_name},
              {"source", absl::StrCat(p.src.ToString(), ":", p.src_port)},
              {"destination", absl::StrCat(p.dst.ToString(), ":", p.dst_port)},
              {"translated", p.translated},
              {"masquerade", p.masquerade},
              {"buckets", p.buckets},
              {"steps", std::move(steps)}};
}

}  // namespace

std::vector<host::EntryCounter> Agent::CountersFor(const flowtables::Program& p) const {
  std::vector<std::string> keys;
  keys.reserve(p.EntryCount());
  for (const auto& table : p.entries) {
    for (const auto& e : table) keys.push_back(flowtables::EntryKey(e));
  }
  if (backend_.entry_counters) {
    auto batch = backend_.entry_counters(keys);
    if (batch.ok() && batch->size() == keys.size()) return *std::move(batch);
  }
  std::vector<host::EntryCounter> out;
  out.reserve(keys.size());
  for (const std::string& k : keys) {
    auto c = backend_.device->GetEntryCounter(k);
    out.push_back(c.ok() ? *c : host::EntryCounter{});
  }
  return out;
}

json Agent::StatusJson() const {
  std::lock_guard lock(mu_);
  json j{{"node", desired_ ? desired_->node.name : config_.node},
         {"backend", BackendKindName(config_.backend.kind)},
         {"device", backend_.device->name()},
         {"started_unix_ms", started_unix_ms_},
         {"syncs", syncs_},
         {"sync_failures", sync_failures_},
         {"device_ops", device_ops_},
         {"compile",
          {{"incremental", incremental_compiles_},
           {"full", full_compiles_},
           {"last_full_reason", last_full_compile_reason_}}},
         {"last_sync_unix_ms", last_sync_unix_ms_},
         {"last_error", last_error_},
         {"healthy", last_error_.empty() && reconciler_->installed().has_value()},
         {"inputs",
          {{"manifests", config_.inputs.manifests_dir}, {"kube_api", config_.inputs.kube_api}}},
         {"control_socket", config_.control_socket},
         {"metrics_address", config_.metrics_address}};
  j["installed"] =
      reconciler_->installed() ? ProgramSummary(*reconciler_->installed()) : json(nullptr);
  j["last_report"] = last_report_ ? last_report_->ToJson() : json(nullptr);
  if (placement_) {
    j["placement"] = {{"on_device", placement_->EntriesOnDevice()},
                      {"in_software", placement_->EntriesInSoftware()}};
  }
  j["pod_resources"] = pod_binder_.ToJson();
  return j;
}

absl::StatusOr<json> Agent::DumpFlowsJson(std::string_view table) const {
  std::lock_guard lock(mu_);
  if (!reconciler_->installed()) {
    return absl::FailedPreconditionError("nothing installed yet (see nicflow status)");
  }
  const flowtables::Program& p = *reconciler_->installed();
  if (!table.empty() && p.FindTable(table) == nullptr) {
    std::vector<std::string> names;
    for (const auto& t : p.tables) names.push_back(t.name);
    return absl::NotFoundError(
        absl::StrCat("no table \"", Sv(table), "\"; tables: ", absl::StrJoin(names, ", ")));
  }
  // ProgramToJson's form (so `dump-flows -o json` parses back as a program, e.g. for
  // `-o testpmd`), with counters added to entries and tables.
  std::vector<host::EntryCounter> counters = CountersFor(p);
  json j = flowtables::ProgramToJson(p);
  json tables = json::array();
  size_t k = 0;
  for (const auto& t : p.tables) {
    json& tj = j["tables"][t.id];
    for (json& ej : tj["entries"]) {
      ej["packets"] = counters[k].packets;
      ej["bytes"] = counters[k].bytes;
      ++k;
    }
    if (!table.empty() && t.name != table) continue;
    if (auto c = backend_.device->GetTableCounter(t.id); c.ok()) {
      tj["lookups"] = c->packets;
      tj["hits"] = c->hits;
      tj["misses"] = c->misses;
    }
    tables.push_back(std::move(tj));
  }
  j["tables"] = std::move(tables);
  if (!table.empty()) j["groups"] = json::array();
  j["device"] = backend_.device->name();
  return j;
}

json Agent::StatsJson() const {
  std::lock_guard lock(mu_);
  json tables = json::array();
  if (reconciler_->installed()) {
    const flowtables::Program& p = *reconciler_->installed();
    for (const auto& t : p.tables) {
      json tj{{"table", t.name}, {"entries", p.entries[t.id].size()}};
      if (auto c = backend_.device->GetTableCounter(t.id); c.ok()) {
        tj.update({{"lookups", c->packets},
                   {"bytes", c->bytes},
                   {"hits", c->hits},
                   {"misses", c->misses}});
      }
      tables.push_back(std::move(tj));
    }
  }
  json j{{"device", backend_.device->name()}, {"tables", std::move(tables)}};
  if (backend_.stats) {
    if (auto s = backend_.stats(); s.ok()) {
      j["datapath"] = {{"rx_packets", s->rx_packets},
                       {"forwarded", s->forwarded},
                       {"dropped", s->dropped},
                       {"rejected", s->rejected},
                       {"punted", s->punted},
                       {"conntrack_entries", s->conntrack_entries},
                       {"conntrack_capacity", s->conntrack_capacity}};
      if (s->software_path) {
        j["software_path"] = {{"packets", s->software_packets},
                              {"resumed", s->software_resumed},
                              {"steered", s->software_steered},
                              {"forwarded", s->software_forwarded},
                              {"dropped", s->software_dropped},
                              {"conntrack_entries", s->software_conntrack_entries},
                              {"program_version", s->software_program_version}};
      }
    } else {
      j["datapath_error"] = std::string(Sv(s.status().message()));
    }
  }
  j["sync"] = {{"syncs", syncs_},
               {"failures", sync_failures_},
               {"errors_by_stage", errors_by_stage_},
               {"device_ops", device_ops_},
               {"apply_latency_count", apply_latency_s_.count()},
               {"apply_latency_sum_s", apply_latency_s_.sum()}};
  return j;
}

absl::StatusOr<json> Agent::DiffJson() const {
  std::lock_guard lock(mu_);
  if (!desired_device_) {
    return absl::FailedPreconditionError("no successful sync yet: nothing desired to compare");
  }
  NICFLOW_ASSIGN_OR_RETURN(flowtables::Program installed, backend_.device->ReadBack());
  json j{{"device", backend_.device->name()},
         {"desired", ProgramSummary(*desired_device_)},
         {"installed", ProgramSummary(installed)}};
  auto delta = flowtables::Diff(installed, *desired_device_);
  if (!delta.ok()) {
    j["in_sync"] = false;
    j["schema_differs"] = true;
    j["note"] = std::string(Sv(delta.status().message()));
    return j;
  }
  j["in_sync"] = delta->empty();
  j["schema_differs"] = false;
  j["ops"] = flowtables::DeltaToJson(*delta, *desired_device_)["ops"];
  if (!last_error_.empty()) j["last_error"] = last_error_;
  return j;
}

json Agent::CapacityJson() const {
  std::lock_guard lock(mu_);
  const host::Capabilities& caps = backend_.device->capabilities();
  json tables = json::array();
  size_t total = 0;
  if (reconciler_->installed()) {
    const flowtables::Program& p = *reconciler_->installed();
    for (const auto& t : p.tables) {
      json tj{{"table", t.name},
              {"entries", p.entries[t.id].size()},
              {"capacity", caps.TableHeld(t) ? caps.CapacityOf(t) : 0},
              {"held", caps.TableHeld(t)}};
      total += p.entries[t.id].size();
      if (placement_ && t.id < placement_->tables.size()) {
        const host::TablePlacement& tp = placement_->tables[t.id];
        tj.update({{"where", host::WhereName(tp.where)},
                   {"on_device", tp.on_device},
                   {"punt_entries", tp.punt_entries},
                   {"in_software", tp.in_software},
                   {"reasons", tp.reasons}});
      }
      tables.push_back(std::move(tj));
    }
  }
  json j{{"device", backend_.device->name()},
         {"flow_api", caps.flow_api},
         {"note", caps.note},
         {"entries", total},
         {"total_entry_capacity", caps.total_entry_capacity},
         {"groups", reconciler_->installed() ? reconciler_->installed()->groups.size() : 0},
         {"max_groups", caps.max_groups},
         {"tables", std::move(tables)}};
  if (placement_) {
    j["on_device"] = placement_->EntriesOnDevice();
    j["in_software"] = placement_->EntriesInSoftware();
  }
  return j;
}

absl::StatusOr<json> Agent::TraceJson(const TraceQuery& q) const {
  sim::TraceRequest req;
  std::string proto = absl::AsciiStrToLower(q.proto);
  if (proto == "tcp") {
    req.proto = sim::kProtoTcp;
  } else if (proto == "udp") {
    req.proto = sim::kProtoUdp;
  } else if (proto == "sctp") {
    req.proto = sim::kProtoSctp;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("proto \"", q.proto, "\": expected tcp, udp or sctp"));
  }
  NICFLOW_RETURN_IF_ERROR(ParseEndpoint(q.src, false, "src", req.src, req.src_port));
  NICFLOW_RETURN_IF_ERROR(ParseEndpoint(q.dst, true, "dst", req.dst, req.dst_port));
  std::lock_guard lock(mu_);
  if (!desired_) return absl::FailedPreconditionError("nothing installed yet to trace through");
  if (!trace_nic_ || trace_nic_sync_ != syncs_) {
    // The whole program (device part and software path together): the node's end-to-end answer.
    NICFLOW_ASSIGN_OR_RETURN(sim::DeviceProfile profile, sim::BuiltinProfile("unlimited"));
    trace_nic_ = sim::SimNic::Create(std::move(profile));
    NICFLOW_RETURN_IF_ERROR(trace_nic_->Install(desired_->program));
    trace_nic_sync_ = syncs_;
  }
  if (q.in_port.empty() || q.in_port == "auto") {
    req.in_port = trace_nic_->PortOwning(req.src).value_or(sim::kUplinkPort);
  } else {
    NICFLOW_ASSIGN_OR_RETURN(req.in_port, trace_nic_->FindPortByName(q.in_port));
  }
  NICFLOW_ASSIGN_OR_RETURN(sim::TraceResult r, trace_nic_->Trace(req));
  json paths = json::array();
  for (const sim::TracePath& p : r.paths) paths.push_back(TracePathToJson(p));
  return json{{"in_port", trace_nic_->ports()[req.in_port].name},
              {"verdict", sim::VerdictName(r.verdict)},
              {"destinations", r.destinations},
              {"translated", r.translated},
              {"masquerade", r.masquerade},
              {"out_ports", r.out_ports},
              {"paths", std::move(paths)}};
}

json Agent::PipelineJson() const {
  std::lock_guard lock(mu_);
  json tables = json::array();
  if (!reconciler_->installed()) return json{{"tables", tables}};
  const flowtables::Program& p = *reconciler_->installed();
  const flowtables::Program& full = desired_ ? desired_->program : p;
  for (const auto& t : p.tables) {
    std::set<std::string> next;
    auto collect = [&](const std::vector<flowtables::Action>& as) {
      for (const auto& a : as) {
        if (const auto* g = std::get_if<flowtables::GotoAction>(&a);
            g && g->table < p.tables.size())
          next.insert(p.tables[g->table].name);
      }
    };
    collect(t.default_actions);
    if (t.id < full.entries.size()) {
      for (const auto& e : full.entries[t.id]) collect(e.actions);
    }
    json tj{{"id", t.id},
            {"name", t.name},
            {"doc", t.doc},
            {"entries", t.id < full.entries.size() ? full.entries[t.id].size() : 0},
            {"next", next}};
    if (placement_ && t.id < placement_->tables.size()) {
      const host::TablePlacement& tp = placement_->tables[t.id];
      tj.update({{"where", host::WhereName(tp.where)},
                 {"on_device", tp.on_device},
                 {"in_software", tp.in_software + tp.punt_entries}});
    }
    tables.push_back(std::move(tj));
  }
  return json{{"device", backend_.device->name()},
              {"tables", std::move(tables)},
              {"groups", full.groups.size()}};
}

std::string Agent::MetricsText() const {
  std::lock_guard lock(mu_);
  MetricsWriter w;
  std::string dev(backend_.device->name());
  if (reconciler_->installed()) {
    const flowtables::Program& p = *reconciler_->installed();
    for (const auto& t : p.tables) {
      Labels l{{"device", dev}, {"table", t.name}};
      w.Gauge("nicflow_entries", "Entries installed per table and device.",
              static_cast<double>(p.entries[t.id].size()), l);
    }
    w.Gauge("nicflow_groups", "Select groups installed.", static_cast<double>(p.groups.size()),
            {{"device", dev}});
    for (const auto& t : p.tables) {
      auto c = backend_.device->GetTableCounter(t.id);
      if (!c.ok()) continue;
      Labels l{{"device", dev}, {"table", t.name}};
      w.Counter("nicflow_table_hits_total", "Lookups that matched an entry.",
                static_cast<double>(c->hits), l);
      w.Counter("nicflow_table_misses_total", "Lookups that ran the table's default actions.",
                static_cast<double>(c->misses), l);
    }
  }
  if (placement_) {
    w.Gauge("nicflow_placement_entries", "Entries of the program by where they run.",
            static_cast<double>(placement_->EntriesOnDevice()),
            {{"device", dev}, {"where", "offloaded"}});
    w.Gauge("nicflow_placement_entries", "", static_cast<double>(placement_->EntriesInSoftware()),
            {{"device", dev}, {"where", "software"}});
  }
  w.Hist("nicflow_apply_latency_seconds", "Time to converge the device after a change.",
         apply_latency_s_, {{"device", dev}});
  w.Counter("nicflow_syncs_total", "Sync passes (load, compile, place, apply).",
            static_cast<double>(syncs_));
  for (const char* stage : {"load", "compile", "place", "apply"}) {
    auto it = errors_by_stage_.find(stage);
    w.Counter("nicflow_sync_errors_total",
              "Failed sync passes by stage; the last good program stayed installed.",
              it == errors_by_stage_.end() ? 0.0 : static_cast<double>(it->second),
              {{"stage", stage}});
  }
  w.Counter("nicflow_device_ops_total", "Delta ops the device accepted.",
            static_cast<double>(device_ops_), {{"device", dev}});
  w.Gauge("nicflow_healthy", "1 when the last sync succeeded.", last_error_.empty() ? 1.0 : 0.0);
  if (pod_binder_.enabled()) {
    w.Gauge("nicflow_pod_vf_bindings", "Local pods bound to a VF by the kubelet's PodResources.",
            static_cast<double>(pod_binder_.bound_pods()));
    w.Counter("nicflow_pod_resources_errors_total",
              "Failed listings of the kubelet's PodResources (the last bindings stayed).",
              static_cast<double>(pod_binder_.list_errors()));
  }
  if (backend_.stats) {
    if (auto s = backend_.stats(); s.ok()) {
      w.Gauge("nicflow_conntrack_entries", "Connections tracked by the device.",
              static_cast<double>(s->conntrack_entries), {{"device", dev}});
      w.Counter("nicflow_datapath_packets_total", "Packets received by the datapath.",
                static_cast<double>(s->rx_packets), {{"device", dev}});
      if (s->software_path) {
        w.Counter("nicflow_software_path_packets_total",
                  "Packets the software path ran (punted by the device, or of a connection the "
                  "software path owns).",
                  static_cast<double>(s->software_packets), {{"device", dev}});
        w.Counter("nicflow_software_path_punts_total",
                  "Punted packets the software path continued where the device stopped.",
                  static_cast<double>(s->software_resumed), {{"device", dev}});
        w.Counter("nicflow_software_path_dropped_total", "Packets the software path dropped.",
                  static_cast<double>(s->software_dropped), {{"device", dev}});
        w.Gauge("nicflow_software_path_conntrack_entries",
                "Connections the software path committed (and owns).",
                static_cast<double>(s->software_conntrack_entries), {{"device", dev}});
      }
    }
  }
  return w.Text();
}

}  // namespace nicflow::agent
