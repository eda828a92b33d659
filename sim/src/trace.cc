// SimNic::Trace: one packet through the program without side effects, forking at select groups.
//
// The tracer mirrors the fast path's semantics (it shares its action helpers) but keeps, per
// path, the steps taken and why. At a Group action every bucket of positive weight starts its own
// path with a copy of the packet state, so `nicflow trace` can list every destination a Service
// may send to and show which ones a later policy stage drops. Conntrack is only peeked at
// (Peek/WouldAccept); CtCommit records nothing; counters and affinity are untouched.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "device_state.h"
#include "sv.h"

namespace nicflow::sim {
namespace {

constexpr size_t kMaxPaths = 4096;  // nested groups multiply paths; a bound keeps traces sane

struct TState {
  ParsedPacket pkt;
  PacketFields f;
  CtTuple orig;
  bool have_orig = false;
  bool snat_ran = false;  // an SNAT action ran (masquerade, even when the source stayed the same)
  uint32_t len = 0;
  TracePath path;
};

struct Frame {
  const std::vector<CAction>* list;
  const std::vector<flowtables::Action>* src;
  size_t i;
};

class Tracer {
 public:
  Tracer(const SimNic::State& s, uint64_t now) : s_(s), now_(now) {}
  void RunTable(TState st, TableId t);
  std::vector<TracePath> TakePaths() { return std::move(paths_); }

 private:
  void Run(TState& st, std::vector<Frame> stack, TableId t);
  void Finish(TState& st, Verdict v, DropReason r, PortId port);
  void Note(TState& st, std::string note) {
    if (!st.path.steps.empty()) st.path.steps.back().notes.push_back(std::move(note));
  }
  void CtLookup(TState& st, uint16_t zone);

  const SimNic::State& s_;
  uint64_t now_;
  std::vector<TracePath> paths_;
};

void Tracer::RunTable(TState st, TableId t) {
  const CTable& tab = s_.tables[t];
  const LookupResult r = tab.cls->Lookup(st.f);
  TraceStep step;
  step.table_id = t;
  step.table = tab.schema.name;
  std::vector<Frame> stack;
  if (r.rule != kNoRule) {
    const CEntry& e = s_.entries[r.rule];
    step.priority = e.entry.priority;
    step.match = flowtables::MatchesToString(e.entry.match);
    step.actions = flowtables::ActionsToString(e.entry.actions);
    step.origin = e.entry.origin.ToString();
    if (r.tie) step.notes.push_back("another entry of the same priority also matches");
    stack.push_back({&e.actions, &e.entry.actions, 0});
  } else {
    step.miss = true;
    step.actions = flowtables::ActionsToString(tab.schema.default_actions);
    stack.push_back({&tab.defaults, &tab.schema.default_actions, 0});
  }
  st.path.steps.push_back(std::move(step));
  Run(st, std::move(stack), t);
}

void Tracer::CtLookup(TState& st, uint16_t zone) {
  const CtTuple t = TupleOf(st.f, st.pkt, zone);
  if (!st.have_orig) st.orig = t, st.have_orig = true;
  uint64_t state = flowtables::kCtTrk;
  if (auto hit = s_.ct->Peek(t, now_)) {
    const CtEntry& e = s_.ct->entry(hit->slot);
    if (s_.ct->WouldAccept(*hit, L4Flags(st.pkt))) {
      state |= flowtables::kCtEst | (hit->dir == CtDir::kReply ? flowtables::kCtRpl : 0);
      ApplyCtNat(e, hit->dir, st.f, st.pkt);
      if (e.dnat || e.snat) Note(st, "conntrack: NAT of the known connection applied");
    } else {
      state |= flowtables::kCtInv;
    }
  } else if (st.pkt.l4_proto == kProtoTcp && !TcpCanStart(L4Flags(st.pkt))) {
    state |= flowtables::kCtInv;
  } else {
    state |= flowtables::kCtNew;
  }
  st.f.set(Field::kCtState, U128::Of(state));
  Note(st,
       absl::StrCat("ct_state=", flowtables::FieldValueToString(Field::kCtState, U128::Of(state))));
}

void Tracer::Run(TState& st, std::vector<Frame> stack, TableId t) {
  while (!stack.empty()) {
    Frame& fr = stack.back();
    if (fr.i == fr.list->size()) {
      stack.pop_back();
      continue;
    }
    const CAction& a = (*fr.list)[fr.i];
    ++fr.i;
    switch (a.kind) {
      case ActionKind::kDrop:
        return Finish(st, Verdict::kDrop, DropReason::kDropAction, 0);
      case ActionKind::kReject:
        return Finish(st, Verdict::kReject, DropReason::kNone, 0);
      case ActionKind::kPunt:
        return Finish(st, Verdict::kPunt, DropReason::kNone, 0);
      case ActionKind::kOutput:
        return Finish(st, Verdict::kForward, DropReason::kNone, a.port);
      case ActionKind::kGoto:
        if (a.table <= t || a.table >= s_.tables.size()) {
          return Finish(st, Verdict::kDrop, DropReason::kFellOff, 0);
        }
        return RunTable(std::move(st), a.table);
      case ActionKind::kSetField:
        ApplySetField(st.f, a);
        break;
      case ActionKind::kDnat:
        if (!ApplyDnat(st.f, st.pkt, a)) {
          return Finish(st, Verdict::kDrop, DropReason::kBadRewrite, 0);
        }
        break;
      case ActionKind::kSnat: {
        bool exhausted = false;
        if (!ApplySnat(*s_.ct, st.f, st.pkt, a, &exhausted)) {
          return Finish(st, Verdict::kDrop,
                        exhausted ? DropReason::kSnatExhausted : DropReason::kBadRewrite, 0);
        }
        st.snat_ran = true;
        break;
      }
      case ActionKind::kGroup: {
        const CGroup& g = s_.groups[a.group];
        bool any = false;
        for (size_t b = 0; b < g.buckets.size() && paths_.size() < kMaxPaths; ++b) {
          const flowtables::Bucket& bucket = g.group.buckets[b];
          if (bucket.weight == 0) continue;
          any = true;
          TState fork = st;
          fork.path.buckets.push_back(absl::StrCat(g.group.name, ": ", bucket.label));
          Note(fork, absl::StrCat("group ", g.group.name, ": bucket ", bucket.label, " (weight ",
                                  bucket.weight, " of ", g.buckets.size(), " buckets)"));
          std::vector<Frame> forked = stack;
          forked.push_back({&g.buckets[b], &bucket.actions, 0});
          Run(fork, std::move(forked), t);
        }
        if (!any) Finish(st, Verdict::kDrop, DropReason::kNoBucket, 0);
        return;
      }
      case ActionKind::kCtLookup:
        CtLookup(st, a.zone);
        break;
      case ActionKind::kCtCommit:
        Note(st, "ct commit (not recorded by a trace)");
        break;
      case ActionKind::kCount:
        break;
    }
  }
  Finish(st, Verdict::kDrop, DropReason::kFellOff, 0);
}

void Tracer::Finish(TState& st, Verdict v, DropReason r, PortId port) {
  TracePath& p = st.path;
  p.verdict = v;
  p.reason = r;
  const bool v6 = st.pkt.is_v6;
  const Field sf = v6 ? Field::kIpv6Src : Field::kIpv4Src;
  const Field df = v6 ? Field::kIpv6Dst : Field::kIpv4Dst;
  p.src = AddrFromU128(st.f.get(sf), v6);
  p.dst = AddrFromU128(st.f.get(df), v6);
  p.src_port = static_cast<uint16_t>(st.f.get(Field::kL4Src).lo);
  p.dst_port = static_cast<uint16_t>(st.f.get(Field::kL4Dst).lo);
  const PacketFields& o = st.pkt.fields;
  p.translated = st.f.get(df) != o.get(df) || st.f.get(Field::kL4Dst) != o.get(Field::kL4Dst);
  // Masquerade means source NAT happened: kube-proxy's MASQUERADE of a host-sourced packet may
  // keep the node address and port, and it is masqueraded all the same.
  p.masquerade =
      st.snat_ran || st.f.get(sf) != o.get(sf) || st.f.get(Field::kL4Src) != o.get(Field::kL4Src);
  p.ct_state = static_cast<uint8_t>(st.f.get(Field::kCtState).lo);
  p.meta_flags = static_cast<uint32_t>(st.f.get(Field::kMetaFlags).lo);
  if (v == Verdict::kForward) {
    p.out_port = port;
    p.out_port_name = port < s_.ports.size() ? s_.ports[port].name : "";
  }
  if (v == Verdict::kDrop) {
    Note(st, absl::StrCat("dropped: ", Sv(DropReasonName(r))));
  }
  paths_.push_back(std::move(p));
}

void Summarize(TraceResult& r, bool has_ports) {
  bool reject = false, punt = false, forward = false;
  for (const TracePath& p : r.paths) {
    reject = reject || p.verdict == Verdict::kReject;
    punt = punt || p.verdict == Verdict::kPunt;
    if (p.verdict != Verdict::kForward) continue;
    forward = true;
    const std::string d =
        has_ports ? flowtables::FormatEndpoint(p.dst, p.dst_port) : p.dst.ToString();
    if (std::find(r.destinations.begin(), r.destinations.end(), d) == r.destinations.end()) {
      r.destinations.push_back(d);
    }
    if (std::find(r.out_ports.begin(), r.out_ports.end(), p.out_port_name) == r.out_ports.end()) {
      r.out_ports.push_back(p.out_port_name);
    }
    r.translated = r.translated || p.translated;
    r.masquerade = r.masquerade || p.masquerade;
  }
  r.verdict = forward  ? Verdict::kForward
              : reject ? Verdict::kReject
              : punt   ? Verdict::kPunt
                       : Verdict::kDrop;
}

}  // namespace

absl::StatusOr<TraceResult> SimNic::TraceFrame(std::span<const uint8_t> frame,
                                               PortId in_port) const {
  const State& s = *s_;
  if (!s.has_program) return absl::FailedPreconditionError("trace: no program installed");
  if (in_port >= s.ports.size()) {
    return absl::NotFoundError(absl::StrCat("trace: port ", in_port, " does not exist"));
  }
  TState st;
  if (ParseError e = ParsePacket(frame, st.pkt); e != ParseError::kNone) {
    return absl::InvalidArgumentError(
        absl::StrCat("trace: frame does not parse: ", Sv(ParseErrorName(e))));
  }
  st.len = static_cast<uint32_t>(frame.size());
  st.f = st.pkt.fields;
  st.f.set(Field::kInPort, U128::Of(in_port));
  st.f.set(Field::kMetaPortClass, U128::Of(static_cast<uint64_t>(s.ports[in_port].port_class)));
  const uint8_t proto = st.pkt.l4_proto;
  Tracer tracer(s, s.clock->NowNs());
  if (!s.tables.empty()) tracer.RunTable(std::move(st), 0);
  TraceResult r;
  r.paths = tracer.TakePaths();
  Summarize(r, proto == kProtoTcp || proto == kProtoUdp || proto == kProtoSctp);
  return r;
}

absl::StatusOr<TraceResult> SimNic::Trace(const TraceRequest& req) const {
  PacketSpec spec;
  spec.proto = req.proto;
  if (req.proto == kProtoIcmp && !req.src.is_v4()) spec.proto = kProtoIcmpv6;
  spec.src = req.src;
  spec.dst = req.dst;
  spec.src_port = req.src_port ? req.src_port : 40000;
  spec.dst_port = req.dst_port;
  spec.tcp_flags = req.tcp_flags;
  absl::StatusOr<std::vector<uint8_t>> frame = BuildPacket(spec);
  if (!frame.ok()) return frame.status();
  return TraceFrame(*frame, req.in_port);
}

}  // namespace nicflow::sim
