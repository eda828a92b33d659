// nicflow compile: manifests -> the pipeline program, as a table, JSON or YAML.
#include <iostream>

#include "absl/strings/str_join.h"
#include "cli.h"
#include "nicflow/flowtables/program_json.h"
#include "nicflow/host/rteflow.h"
#include "table_printer.h"
#include "yaml_out.h"

namespace nicflow::cli {

namespace {

using flowtables::Program;

void PrintSummary(const flowtables::CompileResult& r, std::ostream& out) {
  const Program& p = r.program;
  size_t vfs = std::count_if(p.ports.begin(), p.ports.end(), [](const flowtables::PortDecl& d) {
    return d.ref.kind == flowtables::PortRef::Kind::kPod;
  });
  out << "Program for node " << r.node.name << ": " << p.tables.size() << " tables, "
      << p.EntryCount() << " entries, " << p.groups.size() << " groups, " << vfs
      << " pod ports\n\n";
  TablePrinter t({"TABLE", "ENTRIES", "KEYS", "DEFAULT"});
  for (const auto& s : p.tables) {
    std::vector<std::string> keys;
    for (const auto& k : s.keys) {
      keys.push_back(std::string(flowtables::GetFieldInfo(k.field).name) + ":" +
                     std::string(flowtables::MatchKindName(k.kind)));
    }
    t.AddRow({s.name, std::to_string(p.entries[s.id].size()),
              keys.empty() ? "-" : absl::StrJoin(keys, ","),
              flowtables::ActionsToString(s.default_actions, &p)});
  }
  t.Print(out);
}

void PrintEntries(const Program& p, std::ostream& out) {
  for (const auto& s : p.tables) {
    if (p.entries[s.id].empty()) continue;
    out << "\ntable " << s.name << " (" << p.entries[s.id].size() << " entries) — " << s.doc
        << "\n";
    TablePrinter t({"PRIO", "MATCH", "ACTIONS", "ORIGIN"});
    for (const auto& e : p.entries[s.id]) {
      t.AddRow({std::to_string(e.priority), flowtables::MatchesToString(e.match),
                flowtables::ActionsToString(e.actions, &p), e.origin.ToString()});
    }
    t.Print(out, "  ");
  }
  if (!p.groups.empty()) {
    out << "\ngroups (" << p.groups.size() << ")\n";
    TablePrinter t({"NAME", "BUCKETS", "AFFINITY", "ORIGIN"});
    for (const auto& g : p.groups) {
      std::vector<std::string> labels;
      for (const auto& b : g.buckets) labels.push_back(b.label);
      t.AddRow({g.name, labels.empty() ? "(none)" : absl::StrJoin(labels, ","),
                g.affinity_timeout_s ? std::to_string(*g.affinity_timeout_s) + "s" : "-",
                g.origin.ToString()});
    }
    t.Print(out, "  ");
  }
}

// The rte_flow lowering as dpdk-testpmd commands on stdout; what stays in software on stderr.
int PrintTestpmd(const flowtables::CompileResult& r, uint16_t port_id) {
  host::RteFlowLowerOptions lo;
  lo.ethdev_port_id = port_id;
  host::PlacementReport placement;
  auto lines = host::ExportTestpmd(r.program, lo, &placement);
  if (!lines.ok()) return ReportError(lines.status());
  for (const std::string& line : *lines) std::cout << line << "\n";
  std::cerr << "note: " << lines->size() << " testpmd commands for port " << port_id << " ("
            << placement.EntriesOnDevice() << " entries on the NIC, "
            << placement.EntriesInSoftware() << " in software)\n";
  return 0;
}

int RunCompile(const ManifestOptions& opts, bool summary_only, uint16_t port_id) {
  auto result = LoadAndCompile(opts);
  if (!result.ok()) return ReportError(result.status());
  if (opts.output == "testpmd") return PrintTestpmd(*result, port_id);
  if (opts.output == "json") {
    nlohmann::json j = flowtables::ProgramToJson(result->program);
    j["node"] = result->node.name;
    std::cout << j.dump(2) << "\n";
  } else if (opts.output == "yaml") {
    nlohmann::json j = flowtables::ProgramToJson(result->program);
    j["node"] = result->node.name;
    WriteYaml(j, std::cout);
  } else {
    PrintSummary(*result, std::cout);
    if (!summary_only) PrintEntries(result->program, std::cout);
  }
  return 0;
}

}  // namespace

void RegisterCompile(CLI::App& app) {
  auto* cmd = app.add_subcommand("compile", "compile manifests into the pipeline program");
  auto opts = std::make_shared<ManifestOptions>();
  auto summary = std::make_shared<bool>(false);
  auto port_id = std::make_shared<uint16_t>(0);
  AddManifestOptions(*cmd, *opts);
  cmd->add_option("-o,--output", opts->output,
                  "output format; testpmd: the rte_flow rules as dpdk-testpmd `flow create` lines")
      ->check(CLI::IsMember({"table", "json", "yaml", "testpmd"}));
  cmd->add_flag("--summary", *summary, "print only the per-table counts");
  cmd->add_option("--port-id", *port_id, "-o testpmd: the ethdev port id rules are created on")
      ->check(CLI::Range(0, 65535));
  cmd->callback([opts, summary, port_id] {
    int rc = RunCompile(*opts, *summary, *port_id);
    if (rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace nicflow::cli
