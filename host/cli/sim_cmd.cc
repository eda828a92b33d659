// nicflow sim: every packet of a capture through the simulator running the compiled program; what
// leaves (forwarded packets, REJECT replies) is written to another capture.
#include <iostream>
#include <map>

#include "absl/strings/str_cat.h"
#include "cli.h"
#include "nicflow/flowtables/status.h"
#include "nicflow/sim/packet.h"
#include "nicflow/sim/pcap_io.h"
#include "packet_trace.h"
#include "table_printer.h"

namespace nicflow::cli {

namespace {

struct SimCmdOptions {
  ManifestOptions manifests;
  std::string pcap_in, pcap_out, in_port = "auto";
};

struct SimRunReport {
  uint64_t in = 0, out = 0, forwarded = 0, rejected = 0, dropped = 0, punted = 0;
  uint64_t oversize = 0;  ///< larger than a jumbo frame: not received, counted as dropped
  std::map<std::string, uint64_t> drop_reasons;
  nlohmann::json tables = nlohmann::json::array();
  nlohmann::json entries = nlohmann::json::array();
};

// The port a captured frame enters on: as `nicflow trace` picks it, from the frame's source.
absl::StatusOr<sim::PortId> FramePort(const flowtables::CompileResult& compiled,
                                      const sim::SimNic& nic, std::span<const uint8_t> frame,
                                      InPort kind, size_t index) {
  if (kind == InPort::kHost) return sim::kHostPort;
  if (kind == InPort::kUplink) return sim::kUplinkPort;
  sim::ParsedPacket parsed;
  if (sim::ParsePacket(frame, parsed) != sim::ParseError::kNone) {
    return sim::kUplinkPort;  // the pipeline drops it and counts the parse error
  }
  TraceRequest req;
  req.src = sim::SrcAddr(parsed);
  req.in_port = kind;
  auto port = ResolveInPort(compiled, nic, req);
  if (!port.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("packet ", index + 1, ": ", port.status().message()));
  }
  return *port;
}

void CollectCounters(const flowtables::Program& p, const sim::SimNic& nic, SimRunReport& r) {
  for (const auto& t : p.tables) {
    auto c = nic.GetTableCounters(t.id);
    if (!c.ok()) continue;
    r.tables.push_back({{"table", t.name},
                        {"packets", c->packets},
                        {"bytes", c->bytes},
                        {"hits", c->hits},
                        {"misses", c->misses}});
    for (const auto& e : p.entries[t.id]) {
      const std::string key = flowtables::EntryKey(e);
      auto ec = nic.GetEntryCounters(key);
      if (!ec.ok() || ec->packets == 0) continue;
      r.entries.push_back({{"table", t.name},
                           {"priority", e.priority},
                           {"match", flowtables::MatchesToString(e.match)},
                           {"origin", e.origin.ToString()},
                           {"packets", ec->packets},
                           {"bytes", ec->bytes}});
    }
  }
}

absl::StatusOr<SimRunReport> RunCapture(const flowtables::CompileResult& compiled,
                                        const SimCmdOptions& o) {
  NICFLOW_ASSIGN_OR_RETURN(InPort kind, ParseInPort(o.in_port));
  NICFLOW_ASSIGN_OR_RETURN(sim::DeviceProfile profile, sim::BuiltinProfile("unlimited"));
  auto nic = sim::SimNic::Create(profile);
  NICFLOW_RETURN_IF_ERROR(nic->Install(compiled.program));
  NICFLOW_ASSIGN_OR_RETURN(std::vector<sim::PcapFrame> frames, sim::ReadPcap(o.pcap_in));
  NICFLOW_ASSIGN_OR_RETURN(auto writer, sim::PcapWriter::Open(o.pcap_out));
  SimRunReport r;
  constexpr size_t kBurst = 64;
  sim::PacketBatch batch(kBurst, 9216 + 64);
  std::vector<uint64_t> ts;
  for (size_t i = 0; i < frames.size(); i += kBurst) {
    batch.Clear();
    ts.clear();
    for (size_t k = i; k < std::min(frames.size(), i + kBurst); ++k) {
      ++r.in;
      NICFLOW_ASSIGN_OR_RETURN(sim::PortId port,
                               FramePort(compiled, *nic, frames[k].data, kind, k));
      if (!batch.Add(frames[k].data, port)) {
        ++r.oversize;
        continue;
      }
      ts.push_back(frames[k].ts_ns);
    }
    nic->ProcessBatch(batch);
    for (size_t k = 0; k < batch.size(); ++k) {
      const sim::Verdict v = batch.result(k).verdict;
      if (v == sim::Verdict::kForward || v == sim::Verdict::kReject) {
        writer->Write(batch.frame(k), ts[k]);
        ++r.out;
      }
    }
  }
  NICFLOW_RETURN_IF_ERROR(writer->Close());
  const sim::DeviceCounters& c = nic->counters();
  r.forwarded = c.forwarded;
  r.rejected = c.rejected;
  r.punted = c.punted;
  r.dropped = c.dropped + r.oversize;
  for (size_t i = 1; i < c.drops.size(); ++i) {
    if (c.drops[i] == 0) continue;
    const auto reason = static_cast<sim::DropReason>(i);
    if (reason == sim::DropReason::kParseError) continue;  // by parse error below
    r.drop_reasons[std::string(sim::DropReasonName(reason))] += c.drops[i];
  }
  for (size_t i = 1; i < c.parse_errors.size(); ++i) {
    if (c.parse_errors[i] == 0) continue;
    r.drop_reasons[absl::StrCat("parse_error:",
                                Sv(sim::ParseErrorName(static_cast<sim::ParseError>(i))))] +=
        c.parse_errors[i];
  }
  if (r.oversize > 0) r.drop_reasons["oversize"] = r.oversize;
  CollectCounters(compiled.program, *nic, r);
  return r;
}

void PrintText(const SimRunReport& r, const SimCmdOptions& o, std::ostream& out) {
  out << o.pcap_in << ": " << r.in << " packets in; " << o.pcap_out << ": " << r.out
      << " packets out (" << r.forwarded << " forwarded, " << r.rejected << " REJECT replies); "
      << r.dropped << " dropped, " << r.punted << " punted\n";
  if (!r.drop_reasons.empty()) {
    out << "\n";
    TablePrinter t({"DROPPED BY", "PACKETS"});
    for (const auto& [reason, n] : r.drop_reasons) t.AddRow({reason, std::to_string(n)});
    t.Print(out);
  }
  out << "\n";
  TablePrinter t({"TABLE", "LOOKUPS", "HITS", "MISSES", "BYTES"});
  for (const auto& j : r.tables) {
    t.AddRow({j["table"].get<std::string>(), std::to_string(j["packets"].get<uint64_t>()),
              std::to_string(j["hits"].get<uint64_t>()),
              std::to_string(j["misses"].get<uint64_t>()),
              std::to_string(j["bytes"].get<uint64_t>())});
  }
  t.Print(out);
}

nlohmann::json ToJson(const SimRunReport& r) {
  return {{"packets_in", r.in},
          {"packets_out", r.out},
          {"forwarded", r.forwarded},
          {"rejected", r.rejected},
          {"dropped", r.dropped},
          {"punted", r.punted},
          {"drop_reasons", r.drop_reasons},
          {"tables", r.tables},
          {"entries", r.entries}};
}

int RunSim(const SimCmdOptions& o) {
  auto compiled = LoadAndCompile(o.manifests);
  if (!compiled.ok()) return ReportError(compiled.status());
  auto report = RunCapture(*compiled, o);
  if (!report.ok()) return ReportError(report.status());
  if (o.manifests.output == "json") {
    std::cout << ToJson(*report).dump(2) << "\n";
  } else {
    PrintText(*report, o, std::cout);
  }
  return 0;
}

}  // namespace

void RegisterSim(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "sim", "run a pcap capture through the simulator; write what leaves to another capture");
  auto o = std::make_shared<SimCmdOptions>();
  AddManifestOptions(*cmd, o->manifests);
  cmd->add_option("--pcap-in", o->pcap_in, "capture to read (Ethernet)")->required();
  cmd->add_option("--pcap-out", o->pcap_out,
                  "capture to write: forwarded packets as they leave, and REJECT replies")
      ->required();
  cmd->add_option("--in-port", o->in_port,
                  "entry port of every packet: host, pod or uplink (default: by source address)");
  cmd->add_option("-o,--output", o->manifests.output, "output format")
      ->check(CLI::IsMember({"table", "json"}));
  cmd->callback([o] {
    int rc = RunSim(*o);
    if (rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace nicflow::cli
