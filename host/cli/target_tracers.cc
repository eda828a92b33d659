// `nicflow trace --target rteflow|fpga`: the same reports as the simulator's trace, from the
// rte_flow lowering (run in RteFlowSim, punts finished in software) and from the FPGA kernel.
//
// The simulator's trace explores: at a select group every bucket of positive weight starts its
// own path. A device picks one bucket per packet, so the FPGA tracer makes the device take each
// branch for real: after a first run with the program as compiled, round k installs the program
// with every multi-bucket group cut down to its k-th live bucket (one delta of group
// modifications) and runs the packets that met such a group again. Each reported path is
// therefore one the kernel executed. (Two multi-bucket groups on one path are explored
// diagonally -- bucket k of both -- not as the cross product; compiled programs select once per
// path.)
//
// Batching: PoCL runs a kernel launch in milliseconds, so the FPGA tracer runs every packet of
// a round in one batch. Packets in one batch must not meet each other's connections: conntrack
// is cleared before each batch, and packets with an ephemeral source port (0) get distinct ones
// (40000, 40001, ... per batch); packets with the same explicit source address and port go to
// different batches.
#include <algorithm>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "nicflow/flowtables/status.h"
#include "nicflow/host/fpga_device.h"
#include "nicflow/host/rteflow.h"
#include "nicflow/sim/packet.h"
#include "packet_trace.h"
#ifdef NICFLOW_HOST_HAVE_FPGA
#include "nicflow/hw/fpga_trace.h"
#endif

namespace nicflow::cli {

namespace {

namespace ft = flowtables;

void AddUnique(std::vector<std::string>& v, const std::string& s) {
  if (!s.empty() && std::find(v.begin(), v.end(), s) == v.end()) v.push_back(s);
}

// A simulator that only declares the program's ports: the port numbering and classes every
// target shares (host 0, uplink 1, VFs from 2 in declaration order).
absl::StatusOr<std::unique_ptr<sim::SimNic>> PortsOnly(const ft::Program& p) {
  NICFLOW_ASSIGN_OR_RETURN(sim::DeviceProfile profile, sim::BuiltinProfile("unlimited"));
  sim::SimNic::Options o;
  o.conntrack_capacity = 16;  // never used: only ports are declared
  auto nic = sim::SimNic::Create(profile, o);
  NICFLOW_RETURN_IF_ERROR(nic->DeclarePorts(p.ports));
  return nic;
}

// The summary of a packet's paths, as sim::TraceResult computes it: forward if any path
// forwards, else reject, else punt, else drop; forwarded paths first.
void Summarize(TraceReport& r, const TraceRequest& req) {
  bool fwd = false, rej = false, punt = false;
  for (const TracePathReport& p : r.paths) {
    fwd |= p.verdict == "forward";
    rej |= p.verdict == "reject";
    punt |= p.verdict == "punt";
    if (p.verdict != "forward") continue;
    AddUnique(r.destinations, p.destination);
    AddUnique(r.out_ports, p.out_port);
    r.translated |= p.translated;
    r.masquerade |= p.masquerade;
  }
  r.verdict = fwd ? "forward" : rej ? "reject" : punt ? "punt" : "drop";
  std::stable_partition(r.paths.begin(), r.paths.end(),
                        [](const TracePathReport& p) { return p.verdict == "forward"; });
  if (r.destinations.empty() && fwd) {
    r.destinations.push_back(ft::FormatEndpoint(req.dst, req.dst_port));
  }
}

sim::TraceRequest ToSimRequest(const TraceRequest& req, sim::PortId in_port) {
  sim::TraceRequest s;
  s.in_port = in_port;
  s.proto = static_cast<uint8_t>(req.proto);
  s.src = req.src;
  s.src_port = req.src_port;
  s.dst = req.dst;
  s.dst_port = req.dst_port;
  return s;
}

// ---------------------------------------------------------------------------------------------
// rte_flow

TracePathReport RteFlowPathReport(const host::RteFlowPath& p) {
  TracePathReport r;
  r.verdict = p.verdict;
  if (p.verdict == "forward") {
    r.destination = p.destination;
    r.out_port = p.out_port;
  }
  r.translated = p.translated;
  r.masquerade = p.masquerade;
  for (const host::RteFlowRuleHit& h : p.rules) {
    TraceHop hop;
    hop.table = h.group_name.empty() ? absl::StrCat("group ", h.group)
                                     : absl::StrCat("group ", h.group, " (", h.group_name, ")");
    hop.priority = static_cast<int32_t>(h.priority);
    hop.match = h.pattern;
    hop.actions = h.actions;
    hop.origin = h.origin;
    if (!h.note.empty()) hop.notes.push_back(h.note);
    r.hops.push_back(std::move(hop));
  }
  if (p.punted) {
    TraceHop hop;
    hop.table = "software";
    hop.match = "resumed at table " + p.punt_table;
    hop.actions = "simulator";
    hop.notes = p.software_steps;
    r.hops.push_back(std::move(hop));
  }
  return r;
}

class RteFlowTracer final : public PacketTracer {
 public:
  RteFlowTracer(const ft::CompileResult& compiled, std::unique_ptr<sim::SimNic> ports)
      : compiled_(compiled), ports_(std::move(ports)) {}
  Target target() const override { return Target::kRteFlow; }

  absl::StatusOr<TraceReport> Trace(const TraceRequest& req) override {
    NICFLOW_ASSIGN_OR_RETURN(sim::PortId in_port, ResolveInPort(compiled_, *ports_, req));
    NICFLOW_ASSIGN_OR_RETURN(host::RteFlowTraceResult t,
                             host::TraceRteFlow(compiled_.program, ToSimRequest(req, in_port)));
    TraceReport r;
    r.target = "rteflow";
    r.in_port = ports_->ports()[in_port].name;
    for (const host::RteFlowPath& p : t.paths) r.paths.push_back(RteFlowPathReport(p));
    Summarize(r, req);
    // The lowering's own summary must agree with the paths it reported.
    if (r.verdict != t.verdict) {
      return absl::InternalError(absl::StrCat("rteflow trace: verdict ", t.verdict,
                                              " disagrees with its paths (", r.verdict, ")"));
    }
    return r;
  }

 private:
  const ft::CompileResult& compiled_;
  std::unique_ptr<sim::SimNic> ports_;
};

// ---------------------------------------------------------------------------------------------
// FPGA

#ifdef NICFLOW_HOST_HAVE_FPGA

// Opening the device builds the kernel (seconds on PoCL), so a process opens it once and every
// tracer installs its program before running packets.
absl::StatusOr<hw::FpgaPipeline*> SharedPipeline() {
  static absl::StatusOr<std::unique_ptr<hw::FpgaPipeline>> pipeline = [] {
    hw::FpgaOptions o;
    // A trace installs one cluster's program and runs a few packets: an image a quarter of the
    // default's size holds any example or scenario and loads (both copies) far faster, which is
    // most of a trace's time under ASan. A program that does not fit fails naming the table.
    o.geometry.tcam_rows_per_table = 512;
    o.geometry.action_slots = 8192;
    o.geometry.group_capacity = 512;
    o.geometry.maglev_words = 1u << 18;
    o.geometry.ct_buckets = 1u << 12;
    o.geometry.ct_connections = 1u << 13;
    return hw::FpgaPipeline::Create(std::move(o));
  }();
  if (!pipeline.ok()) return pipeline.status();
  return pipeline->get();
}

// Bucket indices of positive weight: the branches the simulator explores.
std::vector<size_t> LiveBuckets(const ft::SelectGroup& g) {
  std::vector<size_t> live;
  for (size_t b = 0; b < g.buckets.size(); ++b) {
    if (g.buckets[b].weight > 0) live.push_back(b);
  }
  return live;
}

// `p` with every group of several live buckets cut down to its k-th (or last) live bucket.
ft::Program ForceBucket(const ft::Program& p, size_t k) {
  ft::Program forced = p;
  for (ft::SelectGroup& g : forced.groups) {
    const std::vector<size_t> live = LiveBuckets(g);
    if (live.size() < 2) continue;
    ft::Bucket keep = g.buckets[live[std::min(k, live.size() - 1)]];
    g.buckets = {std::move(keep)};
  }
  return forced;
}

TracePathReport FpgaPathReport(const hw::FpgaTraceReport& t) {
  TracePathReport r;
  r.verdict = std::string(hw::FpgaVerdictName(t.verdict));
  if (t.verdict == hw::FpgaVerdict::kForward) {
    r.destination = t.dst;
    r.source = t.src;
    r.out_port = t.out_port;
    r.translated = t.translated;
    r.masquerade = t.masquerade;
  }
  for (const hw::FpgaTraceStep& s : t.steps) {
    r.hops.push_back({s.table, s.miss, s.priority, s.match, s.actions, s.origin, {}});
  }
  if (t.group && !r.hops.empty()) {
    // The group runs from the entry that names it.
    auto it = std::find_if(r.hops.begin(), r.hops.end(), [&](const TraceHop& h) {
      return h.actions.find(*t.group) != std::string::npos;
    });
    (it == r.hops.end() ? r.hops.back() : *it)
        .notes.push_back(absl::StrCat("group ", *t.group, ": bucket ", t.bucket));
  }
  if (t.parse_error != 0) {
    TraceHop hop;
    hop.table = "parser";
    hop.miss = true;
    hop.actions = "drop";
    hop.notes.push_back(absl::StrCat("parse error ", static_cast<int>(t.parse_error)));
    r.hops.push_back(std::move(hop));
  }
  return r;
}

class FpgaTracer final : public PacketTracer {
 public:
  FpgaTracer(const ft::CompileResult& compiled, std::unique_ptr<sim::SimNic> ports,
             hw::FpgaPipeline& pipeline)
      : compiled_(compiled), ports_(std::move(ports)), pipeline_(pipeline) {}
  Target target() const override { return Target::kFpga; }

  absl::StatusOr<TraceReport> Trace(const TraceRequest& req) override {
    NICFLOW_ASSIGN_OR_RETURN(std::vector<TraceReport> r, TraceAll({&req, 1}));
    return std::move(r.front());
  }

  absl::StatusOr<std::vector<TraceReport>> TraceAll(std::span<const TraceRequest> reqs) override;

 private:
  // One run of one request: its entry port, and the packet (frame in, result out).
  struct Job {
    size_t req = 0;
    hw::FpgaPacket packet;
  };
  absl::Status RunJobs(std::span<const TraceRequest> reqs, std::vector<Job>& jobs);
  absl::Status Load(const ft::Program& p);

  const ft::CompileResult& compiled_;
  std::unique_ptr<sim::SimNic> ports_;
  hw::FpgaPipeline& pipeline_;
};

// Loads `p` into the shared pipeline: a delta from what it holds when that is one of this
// tracer's programs (the forced-bucket rounds), a fresh install otherwise.
absl::Status FpgaTracer::Load(const ft::Program& p) {
  if (pipeline_.has_program()) {
    auto delta = ft::Diff(pipeline_.installed(), p);
    if (delta.ok() && pipeline_.Apply(*delta).ok()) return absl::OkStatus();
  }
  return pipeline_.Install(p);
}

// Runs the jobs in as few batches as keep them independent, with conntrack cleared before each.
absl::Status FpgaTracer::RunJobs(std::span<const TraceRequest> reqs, std::vector<Job>& jobs) {
  constexpr size_t kMaxBatch = 256;
  size_t start = 0;
  while (start < jobs.size()) {
    std::set<std::pair<std::string, uint16_t>> used;  // source address and port in this batch
    uint16_t next_ephemeral = 40000;
    std::vector<hw::FpgaPacket> batch;
    for (size_t i = start; i < jobs.size() && batch.size() < kMaxBatch; ++i) {
      const TraceRequest& req = reqs[jobs[i].req];
      sim::PacketSpec spec;
      spec.proto = static_cast<uint8_t>(req.proto);
      spec.src = req.src;
      spec.dst = req.dst;
      spec.dst_port = req.dst_port;
      spec.src_port = req.src_port;
      const std::string src = req.src.ToString();
      if (spec.src_port == 0) {
        while (used.contains({src, next_ephemeral})) ++next_ephemeral;
        spec.src_port = next_ephemeral++;
      } else if (used.contains({src, spec.src_port})) {
        break;  // the same connection twice: the second waits for the next batch
      }
      used.insert({src, spec.src_port});
      hw::FpgaPacket pk = std::move(jobs[i].packet);
      NICFLOW_ASSIGN_OR_RETURN(pk.frame, sim::BuildPacket(spec));
      batch.push_back(std::move(pk));
    }
    NICFLOW_RETURN_IF_ERROR(pipeline_.ClearConntrack());
    NICFLOW_RETURN_IF_ERROR(pipeline_.ProcessBatch(batch));
    for (size_t i = 0; i < batch.size(); ++i) jobs[start + i].packet = std::move(batch[i]);
    start += batch.size();
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<TraceReport>> FpgaTracer::TraceAll(std::span<const TraceRequest> reqs) {
  const ft::Program& program = compiled_.program;
  std::vector<Job> first(reqs.size());
  for (size_t i = 0; i < reqs.size(); ++i) {
    NICFLOW_ASSIGN_OR_RETURN(sim::PortId in_port, ResolveInPort(compiled_, *ports_, reqs[i]));
    first[i].req = i;
    first[i].packet.in_port = in_port;
    first[i].packet.port_class = static_cast<uint8_t>(ports_->ports()[in_port].port_class);
  }
  std::vector<TraceReport> out(reqs.size());
  for (size_t i = 0; i < reqs.size(); ++i) {
    out[i].target = "fpga";
    out[i].in_port = ports_->ports()[first[i].packet.in_port].name;
  }
  NICFLOW_RETURN_IF_ERROR(Load(program));
  NICFLOW_RETURN_IF_ERROR(RunJobs(reqs, first));

  // Which packets met a group with a choice to make, and how many rounds that takes.
  std::map<std::string, size_t, std::less<>> live;
  for (const ft::SelectGroup& g : program.groups) live[g.name] = LiveBuckets(g).size();
  std::vector<std::pair<Job, size_t>> forks;  // the packet and its group's live buckets
  size_t rounds = 0;
  for (const Job& j : first) {
    const auto& group = j.packet.result.group;
    auto it = group ? live.find(*group) : live.end();
    if (it != live.end() && it->second > 1) {
      rounds = std::max(rounds, it->second);
      forks.push_back({{j.req, {{}, j.packet.in_port, j.packet.port_class, {}}}, it->second});
      continue;
    }
    out[j.req].paths.push_back(FpgaPathReport(hw::ExplainPacket(pipeline_, j.packet)));
  }
  // Round k: every packet whose group has a k-th live bucket runs with the group cut down to it.
  for (size_t k = 0; k < rounds; ++k) {
    std::vector<Job> round;
    for (const auto& [j, branches] : forks) {
      if (k < branches) round.push_back({j.req, {{}, j.packet.in_port, j.packet.port_class, {}}});
    }
    NICFLOW_RETURN_IF_ERROR(Load(ForceBucket(program, k)));
    NICFLOW_RETURN_IF_ERROR(RunJobs(reqs, round));
    for (const Job& j : round) {
      out[j.req].paths.push_back(FpgaPathReport(hw::ExplainPacket(pipeline_, j.packet)));
    }
  }
  if (rounds > 0) NICFLOW_RETURN_IF_ERROR(Load(program));
  for (size_t i = 0; i < reqs.size(); ++i) Summarize(out[i], reqs[i]);
  return out;
}

#endif  // NICFLOW_HOST_HAVE_FPGA

}  // namespace

absl::StatusOr<std::unique_ptr<PacketTracer>> CreateTracer(Target target,
                                                           const ft::CompileResult& compiled) {
  switch (target) {
    case Target::kSim: {
      NICFLOW_ASSIGN_OR_RETURN(auto t, SimTracer::Create(compiled));
      return std::unique_ptr<PacketTracer>(std::move(t));
    }
    case Target::kRteFlow: {
      NICFLOW_ASSIGN_OR_RETURN(auto ports, PortsOnly(compiled.program));
      return std::unique_ptr<PacketTracer>(new RteFlowTracer(compiled, std::move(ports)));
    }
    case Target::kFpga: {
#ifdef NICFLOW_HOST_HAVE_FPGA
      NICFLOW_ASSIGN_OR_RETURN(hw::FpgaPipeline * pipeline, SharedPipeline());
      NICFLOW_ASSIGN_OR_RETURN(auto ports, PortsOnly(compiled.program));
      // Install now, so a program the image cannot hold fails here, naming the culprit.
      NICFLOW_RETURN_IF_ERROR(pipeline->Install(compiled.program));
      return std::unique_ptr<PacketTracer>(new FpgaTracer(compiled, std::move(ports), *pipeline));
#else
      return absl::UnimplementedError("--target fpga: this build has no FPGA backend (hw/)");
#endif
    }
  }
  return absl::InvalidArgumentError("unknown trace target");
}

}  // namespace nicflow::cli
