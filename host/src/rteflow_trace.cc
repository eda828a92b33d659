// `nicflow trace --target rteflow`: one packet through the rte_flow lowering in RteFlowSim,
// punted paths finished by the software path (the simulator), results shaped like sim traces.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "nicflow/flowtables/status.h"
#include "nicflow/host/rteflow.h"
#include "nicflow/host/software_path.h"
#include "rteflow_lower.h"
#include "rteflow_sim.h"

namespace nicflow::host {

namespace {

namespace ft = ::nicflow::flowtables;
using ft::Field;

void AddUnique(std::vector<std::string>& v, const std::string& s) {
  if (!s.empty() && std::find(v.begin(), v.end(), s) == v.end()) v.push_back(s);
}

std::string Endpoint(const sim::PacketFields& f) {
  const bool v6 = f.get(Field::kEthType).lo == sim::kEthTypeIpv6;
  const ft::IpAddr dst = sim::AddrFromU128(f.get(v6 ? Field::kIpv6Dst : Field::kIpv4Dst), v6);
  return ft::FormatEndpoint(dst, static_cast<uint16_t>(f.get(Field::kL4Dst).lo));
}

std::string OutputName(const rteflow::LowerOptions& lo, const rteflow::SimResult& r) {
  for (const auto& [name, target] : lo.outputs) {
    if (target.ethdev_port_id == r.port_id && target.representor == r.representor) return name;
  }
  return absl::StrCat("ethdev", r.port_id);
}

RteFlowRuleHit Hit(const rteflow::RuleSet& rs, size_t i) {
  const rteflow::Rule& r = rs.rules[i];
  RteFlowRuleHit h;
  h.group = r.attr.group;
  h.priority = r.attr.priority;
  if (auto it = rs.group_names.find(r.attr.group); it != rs.group_names.end()) {
    h.group_name = it->second;
  }
  h.pattern = rteflow::PatternToString(r);
  h.actions = rteflow::ActionsToString(r);
  h.origin = r.origin;
  h.note = r.note;
  return h;
}

sim::TraceRequest RequestFromFields(const sim::TraceRequest& orig, const sim::PacketFields& f) {
  sim::TraceRequest r = orig;
  const bool v6 = f.get(Field::kEthType).lo == sim::kEthTypeIpv6;
  r.src = sim::AddrFromU128(f.get(v6 ? Field::kIpv6Src : Field::kIpv4Src), v6);
  r.dst = sim::AddrFromU128(f.get(v6 ? Field::kIpv6Dst : Field::kIpv4Dst), v6);
  if (f.has(Field::kL4Src)) r.src_port = static_cast<uint16_t>(f.get(Field::kL4Src).lo);
  if (f.has(Field::kL4Dst)) r.dst_port = static_cast<uint16_t>(f.get(Field::kL4Dst).lo);
  return r;
}

PuntRegisters Registers(const rteflow::SimPacket& p) {
  return PuntRegisters{p.meta, p.tags[rteflow::kTagSrcSet], p.tags[rteflow::kTagDstSet],
                       p.tags[rteflow::kTagPeerBits],
                       static_cast<uint8_t>(p.tags[rteflow::kTagCtState])};
}

// Turns the software's result for a punted path into paths of ours.
void AddSoftwarePaths(const RteFlowPath& hw, bool hw_translated, const sim::TraceResult& sw,
                      const std::string& hw_destination, RteFlowTraceResult& out) {
  for (const sim::TracePath& sp : sw.paths) {
    RteFlowPath p = hw;
    p.verdict = std::string(sim::VerdictName(sp.verdict));
    p.translated = hw_translated || sp.translated;
    p.masquerade = sp.masquerade;
    p.out_port = sp.out_port_name;
    p.destination = sp.translated ? ft::FormatEndpoint(sp.dst, sp.dst_port) : hw_destination;
    for (const sim::TraceStep& st : sp.steps) {
      p.software_steps.push_back(absl::StrCat(st.table, ": ", st.miss ? "miss" : st.match, " -> ",
                                              st.actions, st.origin.empty() ? "" : " (", st.origin,
                                              st.origin.empty() ? "" : ")"));
    }
    out.paths.push_back(std::move(p));
  }
}

absl::StatusOr<rteflow::SimPacket> BuildPacket(const sim::TraceRequest& req) {
  sim::PacketSpec spec;
  spec.proto = req.proto;
  spec.src = req.src;
  spec.dst = req.dst;
  spec.src_port = req.src_port == 0 ? 40000 : req.src_port;
  spec.dst_port = req.dst_port;
  spec.tcp_flags = req.tcp_flags;
  NICFLOW_ASSIGN_OR_RETURN(std::vector<uint8_t> frame, sim::BuildPacket(spec));
  sim::ParsedPacket parsed;
  if (sim::ParseError e = sim::ParsePacket(frame, parsed); e != sim::ParseError::kNone) {
    return absl::InvalidArgumentError(
        absl::StrCat("trace: packet does not parse: ", Sv(sim::ParseErrorName(e))));
  }
  return rteflow::PacketFromParsed(parsed);
}

void Summarize(RteFlowTraceResult& out) {
  bool fwd = false, rej = false, punt = false;
  for (const RteFlowPath& p : out.paths) {
    fwd |= p.verdict == "forward";
    rej |= p.verdict == "reject";
    punt |= p.verdict == "punt";
    if (p.verdict != "forward") continue;
    AddUnique(out.destinations, p.destination);
    AddUnique(out.out_ports, p.out_port);
    out.translated |= p.translated;
    out.masquerade |= p.masquerade;
  }
  out.verdict = fwd ? "forward" : rej ? "reject" : punt ? "punt" : "drop";
  if (!fwd && !out.paths.empty() && out.paths.front().verdict != "drop" && !rej && !punt) {
    out.verdict = out.paths.front().verdict;  // "miss" / "loop": a lowering bug, say so
  }
}

}  // namespace

absl::StatusOr<RteFlowTraceResult> TraceRteFlow(const ft::Program& p,
                                                const sim::TraceRequest& request) {
  SoftwarePath software(p);
  NICFLOW_ASSIGN_OR_RETURN(sim::SimNic * plain, software.Plain());
  const auto& ports = plain->ports();
  auto in = std::find_if(ports.begin(), ports.end(),
                         [&](const sim::PortInfo& pi) { return pi.id == request.in_port; });
  if (in == ports.end()) {
    return absl::NotFoundError(absl::StrCat("trace: no port ", request.in_port));
  }
  rteflow::LowerOptions lo;
  lo.port_class = in->port_class;
  lo.in_port = in->id;
  lo.outputs = rteflow::DefaultOutputs(p);
  RteFlowTraceResult out;
  NICFLOW_ASSIGN_OR_RETURN(PlacedProgram placed, Place(RteFlowCapabilities(), p, "rteflow"));
  out.placement = placed.report;
  NICFLOW_ASSIGN_OR_RETURN(rteflow::RuleSet rs, rteflow::Lower(placed.device, lo));
  out.rules = rs.rules.size();
  NICFLOW_ASSIGN_OR_RETURN(rteflow::RteFlowSim model, rteflow::RteFlowSim::Create(rs));
  NICFLOW_ASSIGN_OR_RETURN(rteflow::SimPacket pkt, BuildPacket(request));
  const std::string orig_dst = Endpoint(pkt.fields);
  for (const rteflow::SimResult& r : model.Trace(pkt)) {
    RteFlowPath path;
    for (size_t i : r.hits) path.rules.push_back(Hit(rs, i));
    path.destination = Endpoint(r.packet.fields);
    path.translated = path.destination != orig_dst;
    if (r.fate == rteflow::Fate::kQueue && r.marked && r.mark >= 1 && r.mark <= p.tables.size()) {
      const auto table = static_cast<ft::TableId>(r.mark - 1);
      path.punted = true;
      path.punt_table = p.tables[table].name;
      NICFLOW_ASSIGN_OR_RETURN(
          sim::TraceResult sw,
          software.Resume(table, Registers(r.packet), RequestFromFields(request, r.packet.fields)));
      AddSoftwarePaths(path, path.translated, sw, path.destination, out);
      continue;
    }
    path.verdict = r.fate == rteflow::Fate::kForward ? "forward" : rteflow::FateName(r.fate);
    if (r.fate == rteflow::Fate::kForward) path.out_port = OutputName(lo, r);
    out.paths.push_back(std::move(path));
  }
  Summarize(out);
  return out;
}

nlohmann::json RteFlowTraceResult::ToJson() const {
  nlohmann::json j{{"verdict", verdict},
                   {"destinations", destinations},
                   {"translated", translated},
                   {"masquerade", masquerade},
                   {"out_ports", out_ports},
                   {"rules", rules},
                   {"paths", nlohmann::json::array()}};
  for (const RteFlowPath& p : paths) {
    nlohmann::json jp{{"verdict", p.verdict},
                      {"out_port", p.out_port},
                      {"destination", p.destination},
                      {"translated", p.translated},
                      {"masquerade", p.masquerade},
                      {"punted", p.punted},
                      {"punt_table", p.punt_table},
                      {"software_steps", p.software_steps},
                      {"rte_flow", nlohmann::json::array()}};
    for (const RteFlowRuleHit& h : p.rules) {
      jp["rte_flow"].push_back({{"group", h.group},
                                {"priority", h.priority},
                                {"group_name", h.group_name},
                                {"pattern", h.pattern},
                                {"actions", h.actions},
                                {"origin", h.origin},
                                {"note", h.note}});
    }
    j["paths"].push_back(std::move(jp));
  }
  j["placement"] = placement.ToJson();
  return j;
}

std::string RteFlowTraceResult::ToText() const {
  std::string out = absl::StrFormat("verdict: %s", verdict);
  if (!destinations.empty()) absl::StrAppend(&out, " -> ", absl::StrJoin(destinations, ", "));
  if (masquerade) absl::StrAppend(&out, " (masqueraded)");
  absl::StrAppend(&out, "\n");
  for (size_t i = 0; i < paths.size(); ++i) {
    const RteFlowPath& p = paths[i];
    absl::StrAppendFormat(&out, "path %d: %s%s%s\n", i + 1, p.verdict,
                          p.out_port.empty() ? "" : " via ", p.out_port);
    for (const RteFlowRuleHit& h : p.rules) {
      absl::StrAppendFormat(&out, "  group %d (%s) priority %d: pattern %s actions %s%s%s\n",
                            h.group, h.group_name, h.priority, h.pattern, h.actions,
                            h.origin.empty() ? "" : "  # ", h.origin.empty() ? h.note : h.origin);
    }
    if (p.punted) {
      absl::StrAppendFormat(&out, "  punted to software at table %s:\n", p.punt_table);
      for (const auto& s : p.software_steps) absl::StrAppend(&out, "    ", s, "\n");
    }
  }
  return out;
}

}  // namespace nicflow::host
