#include "packet_trace.h"

#include <algorithm>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nicflow/flowtables/status.h"
#include "nicflow/sim/device.h"

namespace nicflow::cli {

namespace {

using flowtables::IpAddr;
using flowtables::PortRef;

// The pod VF whose declared IPs include `ip`, if that pod is local.
const flowtables::PortDecl* LocalPodWithIp(const flowtables::Program& p, const IpAddr& ip) {
  for (const auto& d : p.ports) {
    if (d.ref.kind != PortRef::Kind::kPod) continue;
    if (std::find(d.ips.begin(), d.ips.end(), ip) != d.ips.end()) return &d;
  }
  return nullptr;
}

bool InAny(const std::vector<flowtables::IpPrefix>& prefixes, const IpAddr& ip) {
  return std::any_of(prefixes.begin(), prefixes.end(),
                     [&](const flowtables::IpPrefix& p) { return p.Contains(ip); });
}

}  // namespace

absl::StatusOr<sim::PortId> ResolveInPort(const flowtables::CompileResult& c,
                                          const sim::SimNic& nic, const TraceRequest& req) {
  InPort kind = req.in_port;
  if (kind == InPort::kAuto) {
    const auto& ips = c.node.ips;
    if (std::find(ips.begin(), ips.end(), req.src) != ips.end()) {
      kind = InPort::kHost;
    } else if (InAny(c.node.cluster_cidrs, req.src)) {
      kind = InPort::kPod;
    } else {
      kind = InPort::kUplink;
    }
  }
  switch (kind) {
    case InPort::kHost:
      return sim::kHostPort;
    case InPort::kUplink:
      return sim::kUplinkPort;
    default:
      break;
  }
  const flowtables::PortDecl* pod = LocalPodWithIp(c.program, req.src);
  if (pod == nullptr) {
    // A pod on another node reaches this one over the uplink.
    if (req.in_port == InPort::kAuto) return sim::kUplinkPort;
    return absl::InvalidArgumentError(absl::StrCat("--in-port pod: no pod on node ", c.node.name,
                                                   " has IP ", req.src.ToString()));
  }
  auto id = nic.FindPort(pod->ref);
  if (!id) return absl::InternalError("simulator did not declare port " + pod->ref.ToString());
  return *id;
}

namespace {

TracePathReport ToPathReport(const sim::TracePath& path) {
  TracePathReport r;
  r.verdict = std::string(sim::VerdictName(path.verdict));
  if (path.verdict == sim::Verdict::kForward) {
    r.destination = flowtables::FormatEndpoint(path.dst, path.dst_port);
    r.source = flowtables::FormatEndpoint(path.src, path.src_port);
    r.out_port = path.out_port_name;
  }
  r.translated = path.translated;
  r.masquerade = path.masquerade;
  for (const auto& s : path.steps) {
    r.hops.push_back({s.table, s.miss, s.priority, s.match, s.actions, s.origin, s.notes});
  }
  return r;
}

}  // namespace

absl::StatusOr<flowtables::Protocol> ParseProtocol(std::string_view text) {
  std::string p = absl::AsciiStrToLower(Sv(text));
  if (p == "tcp") return flowtables::Protocol::kTcp;
  if (p == "udp") return flowtables::Protocol::kUdp;
  if (p == "sctp") return flowtables::Protocol::kSctp;
  return absl::InvalidArgumentError(
      absl::StrCat("--proto: \"", Sv(text), "\" is not one of tcp, udp, sctp"));
}

absl::StatusOr<InPort> ParseInPort(std::string_view text) {
  if (text == "auto" || text.empty()) return InPort::kAuto;
  if (text == "host") return InPort::kHost;
  if (text == "pod") return InPort::kPod;
  if (text == "uplink") return InPort::kUplink;
  return absl::InvalidArgumentError(
      absl::StrCat("--in-port: \"", Sv(text), "\" is not one of host, pod, uplink"));
}

absl::StatusOr<TraceRequest> MakeTraceRequest(std::string_view proto, std::string_view src,
                                              std::string_view dst, std::string_view in_port) {
  TraceRequest req;
  NICFLOW_ASSIGN_OR_RETURN(req.proto, ParseProtocol(proto));
  auto s = flowtables::ParseEndpoint(src, /*port_required=*/false);
  if (!s.ok()) return absl::InvalidArgumentError(absl::StrCat("--src: ", s.status().message()));
  auto d = flowtables::ParseEndpoint(dst, /*port_required=*/true);
  if (!d.ok()) return absl::InvalidArgumentError(absl::StrCat("--dst: ", d.status().message()));
  if (s->first.family() != d->first.family()) {
    return absl::InvalidArgumentError("--src and --dst must be of the same IP family");
  }
  req.src = s->first;
  req.src_port = s->second;
  req.dst = d->first;
  req.dst_port = d->second;
  NICFLOW_ASSIGN_OR_RETURN(req.in_port, ParseInPort(in_port));
  return req;
}

struct SimTracer::Impl {
  const flowtables::CompileResult* compiled;
  std::unique_ptr<sim::SimNic> nic;
};

SimTracer::SimTracer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SimTracer::~SimTracer() = default;

absl::StatusOr<std::unique_ptr<SimTracer>> SimTracer::Create(
    const flowtables::CompileResult& compiled) {
  NICFLOW_ASSIGN_OR_RETURN(sim::DeviceProfile profile, sim::BuiltinProfile("unlimited"));
  auto impl = std::make_unique<Impl>();
  impl->compiled = &compiled;
  sim::SimNic::Options options;
  options.conntrack_capacity = 1024;  // traces commit nothing; the default table costs ~0.3 s
  impl->nic = sim::SimNic::Create(profile, options);
  NICFLOW_RETURN_IF_ERROR(impl->nic->Install(compiled.program));
  return std::unique_ptr<SimTracer>(new SimTracer(std::move(impl)));
}

absl::StatusOr<TraceReport> TraceOnSimulator(const flowtables::CompileResult& compiled,
                                             const TraceRequest& req) {
  NICFLOW_ASSIGN_OR_RETURN(auto tracer, SimTracer::Create(compiled));
  return tracer->Trace(req);
}

absl::StatusOr<Target> ParseTarget(std::string_view text) {
  if (text == "sim") return Target::kSim;
  if (text == "rteflow") return Target::kRteFlow;
  if (text == "fpga") return Target::kFpga;
  return absl::InvalidArgumentError(
      absl::StrCat("--target: \"", Sv(text), "\" is not one of sim, rteflow, fpga"));
}

std::string_view TargetName(Target t) {
  switch (t) {
    case Target::kSim:
      return "sim";
    case Target::kRteFlow:
      return "rteflow";
    case Target::kFpga:
      return "fpga";
  }
  return "?";
}

absl::StatusOr<std::vector<TraceReport>> PacketTracer::TraceAll(
    std::span<const TraceRequest> reqs) {
  std::vector<TraceReport> out;
  out.reserve(reqs.size());
  for (const TraceRequest& req : reqs) {
    NICFLOW_ASSIGN_OR_RETURN(TraceReport r, Trace(req));
    out.push_back(std::move(r));
  }
  return out;
}

absl::StatusOr<TraceReport> SimTracer::Trace(const TraceRequest& req) {
  const flowtables::CompileResult& compiled = *impl_->compiled;
  const sim::SimNic* nic = impl_->nic.get();
  NICFLOW_ASSIGN_OR_RETURN(sim::PortId in_port, ResolveInPort(compiled, *nic, req));
  sim::TraceRequest sreq;
  sreq.in_port = in_port;
  sreq.proto = static_cast<uint8_t>(req.proto);
  sreq.src = req.src;
  sreq.src_port = req.src_port;
  sreq.dst = req.dst;
  sreq.dst_port = req.dst_port;
  NICFLOW_ASSIGN_OR_RETURN(sim::TraceResult t, nic->Trace(sreq));

  TraceReport r;
  r.verdict = std::string(sim::VerdictName(t.verdict));
  r.destinations = t.destinations;
  r.translated = t.translated;
  r.masquerade = t.masquerade;
  r.out_ports = t.out_ports;
  r.in_port = nic->ports()[in_port].name;
  // Forwarded paths first, so `trace` shows how the first destination was reached.
  for (const auto& path : t.paths) {
    if (path.verdict == sim::Verdict::kForward) r.paths.push_back(ToPathReport(path));
  }
  for (const auto& path : t.paths) {
    if (path.verdict != sim::Verdict::kForward) r.paths.push_back(ToPathReport(path));
  }
  if (r.destinations.empty() && t.verdict == sim::Verdict::kForward) {
    r.destinations.push_back(flowtables::FormatEndpoint(req.dst, req.dst_port));
  }
  return r;
}

namespace {

nlohmann::json HopsToJson(const std::vector<TraceHop>& hops) {
  nlohmann::json arr = nlohmann::json::array();
  for (const auto& h : hops) {
    nlohmann::json j{{"table", h.table},     {"priority", h.priority}, {"match", h.match},
                     {"actions", h.actions}, {"origin", h.origin},     {"miss", h.miss}};
    if (!h.notes.empty()) j["notes"] = h.notes;
    arr.push_back(std::move(j));
  }
  return arr;
}

}  // namespace

nlohmann::json TraceReportToJson(const TraceReport& r) {
  nlohmann::json paths = nlohmann::json::array();
  for (const auto& p : r.paths) {
    paths.push_back({{"verdict", p.verdict},
                     {"destination", p.destination},
                     {"source", p.source},
                     {"out_port", p.out_port},
                     {"translated", p.translated},
                     {"masquerade", p.masquerade},
                     {"trace", HopsToJson(p.hops)}});
  }
  return nlohmann::json{
      {"target", r.target},
      {"verdict", r.verdict},
      {"destinations", r.destinations},
      {"translated", r.translated},
      {"masquerade", r.masquerade},
      {"out_ports", r.out_ports},
      {"in_port", r.in_port},
      {"trace", r.paths.empty() ? nlohmann::json::array() : HopsToJson(r.paths.front().hops)},
      {"paths", std::move(paths)}};
}

namespace {

// The hop that decided the packet's fate: the last hit whose origin names a Kubernetes object.
const TraceHop* DecidingHop(const TracePathReport& p) {
  for (auto it = p.hops.rbegin(); it != p.hops.rend(); ++it) {
    if (!it->miss && !it->origin.empty() && it->origin.rfind("nicflow", 0) != 0) return &*it;
  }
  return p.hops.empty() ? nullptr : &p.hops.back();
}

}  // namespace

std::string TraceReportToText(const TraceReport& r, const TraceRequest& req) {
  std::ostringstream out;
  out << flowtables::ProtocolName(req.proto) << " "
      << flowtables::FormatEndpoint(req.src, req.src_port ? req.src_port : 40000) << " -> "
      << flowtables::FormatEndpoint(req.dst, req.dst_port) << " entering on " << r.in_port << " ("
      << r.target << ")\n";
  out << "verdict: " << absl::AsciiStrToUpper(r.verdict);
  if (r.verdict == "forward") {
    out << " to " << absl::StrJoin(r.destinations, ", ") << " via "
        << absl::StrJoin(r.out_ports, ", ");
    out << (r.translated ? " (DNAT)" : " (not translated)");
    if (r.masquerade) out << ", masqueraded";
  }
  out << "\n";
  for (const auto& p : r.paths) {
    out << "\n"
        << (p.verdict == "forward" ? "path to " + p.destination : "path " + p.verdict)
        << (p.out_port.empty() ? "" : " out " + p.out_port) << ":\n";
    for (const auto& h : p.hops) {
      out << "  " << h.table << ": ";
      if (h.miss) {
        out << "miss -> " << h.actions << "\n";
      } else {
        out << "[" << h.priority << "] " << h.match << " -> " << h.actions;
        if (!h.origin.empty()) out << "  (" << h.origin << ")";
        out << "\n";
      }
      for (const auto& n : h.notes) out << "      " << n << "\n";
    }
    if (const TraceHop* d = DecidingHop(p); d != nullptr && !d->origin.empty()) {
      out << "  decided by " << d->origin << "\n";
    }
  }
  return out.str();
}

}  // namespace nicflow::cli
