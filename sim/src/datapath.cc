// SimNic fast path: one frame through the installed program (semantics: flowtables/ir.h).
//
// The frame is left untouched while the tables run: actions change the field vector only, and
// the NAT a forwarded packet accumulated is written into the frame once, when it leaves, with
// incremental checksum updates. That keeps a REJECT reply faithful to what the sender sent and
// costs one rewrite however many NAT actions ran. Nothing here allocates (conntrack and the
// affinity table are reserved up front) or throws.
#include <cstring>

#include "device_state.h"
#include "nicflow/sim/checksum.h"

namespace nicflow::sim {
namespace {

constexpr uint64_t kNsPerS = 1'000'000'000ull;

inline Field SrcField(bool v6) { return v6 ? Field::kIpv6Src : Field::kIpv4Src; }
inline Field DstField(bool v6) { return v6 ? Field::kIpv6Dst : Field::kIpv4Dst; }

inline bool HasPorts(const ParsedPacket& p) {
  return p.has_l4 &&
         (p.l4_proto == kProtoTcp || p.l4_proto == kProtoUdp || p.l4_proto == kProtoSctp);
}

inline uint64_t Mix(uint64_t h) {
  h ^= h >> 31;
  h *= 0x7fb5d329728ea185ull;
  h ^= h >> 27;
  h *= 0x81dadef4bc2dd44dull;
  h ^= h >> 33;
  return h;
}

// `f` is the parsed packet's own field vector, edited in place; `orig` keeps what the frame
// holds so the rewrite at output knows what changed.
struct Exec {
  ParsedPacket pkt;
  PacketFields& f = pkt.fields;
  L34Values orig_l34;
  CtTuple orig;  // the tuple at the first CtLookup: what CtCommit records as the original
  bool have_orig = false;
  uint32_t len = 0;
};

enum class Flow : uint8_t { kNext, kGoto, kDone };
struct Step {
  Flow flow = Flow::kNext;
  TableId table = 0;
  Verdict verdict = Verdict::kDrop;
  DropReason reason = DropReason::kNone;
  PortId port = kInvalidPort;
};
inline Step Done(Verdict v, DropReason r = DropReason::kNone, PortId port = kInvalidPort) {
  return {Flow::kDone, 0, v, r, port};
}

uint32_t PickBucket(SimNic::State& s, const CGroup& g, uint32_t gi, const PacketFields& f,
                    uint64_t now) noexcept {
  if (!g.group.affinity_timeout_s) return g.maglev.Pick(FlowHash(g, f));
  const bool v6 = f.has(Field::kIpv6Src);
  const AffinityKey key{gi, f.get(SrcField(v6))};
  const uint64_t timeout = uint64_t{*g.group.affinity_timeout_s} * kNsPerS;
  if (auto it = s.affinity.find(key);
      it != s.affinity.end() && it->second.last_ns + timeout > now) {
    for (uint32_t b = 0; b < g.label_hash.size(); ++b) {
      if (g.label_hash[b] == it->second.label_hash && g.group.buckets[b].weight > 0) {
        it->second.last_ns = now;
        return b;
      }
    }
  }
  const uint32_t b = g.maglev.Pick(FlowHash(g, f));
  if (b != MaglevTable::kNone) s.affinity[key] = {g.label_hash[b], now};
  return b;
}

void CtLookup(SimNic::State& s, Exec& x, uint16_t zone, uint64_t now) noexcept {
  const CtTuple t = TupleOf(x.f, x.pkt, zone);
  if (!x.have_orig) x.orig = t, x.have_orig = true;
  uint64_t state = flowtables::kCtTrk;
  if (auto hit = s.ct->Find(t, now)) {
    if (s.ct->Track(*hit, L4Flags(x.pkt), x.len, now)) {
      state |= flowtables::kCtEst | (hit->dir == CtDir::kReply ? flowtables::kCtRpl : 0);
      ApplyCtNat(s.ct->entry(hit->slot), hit->dir, x.f, x.pkt);
    } else {
      state |= flowtables::kCtInv;
    }
  } else if (x.pkt.l4_proto == kProtoTcp && !TcpCanStart(L4Flags(x.pkt))) {
    state |= flowtables::kCtInv;
  } else {
    state |= flowtables::kCtNew;
  }
  x.f.set(Field::kCtState, U128::Of(state));
}

// The tuple of the packet as received (no CtLookup ran before the commit).
CtTuple OriginalTuple(const Exec& x, uint16_t zone) noexcept {
  CtTuple t = TupleOf(x.f, x.pkt, zone);
  t.src = x.orig_l34.src;
  t.dst = x.orig_l34.dst;
  if (t.proto == kProtoTcp || t.proto == kProtoUdp || t.proto == kProtoSctp) {
    if (x.pkt.has_l4) {
      t.src_port = static_cast<uint16_t>(x.orig_l34.src_port.lo);
      t.dst_port = static_cast<uint16_t>(x.orig_l34.dst_port.lo);
    }
  }
  return t;
}

DropReason CtCommit(SimNic::State& s, Exec& x, uint16_t zone, uint64_t now) noexcept {
  CtTuple orig = x.have_orig ? x.orig : OriginalTuple(x, zone);
  orig.zone = zone;
  switch (s.ct->Commit(orig, TupleOf(x.f, x.pkt, zone), L4Flags(x.pkt), x.len, now)) {
    case CtCommitResult::kCommitted:
      ++s.counters.ct_committed;
      return DropReason::kNone;
    case CtCommitResult::kFull:
      return DropReason::kCtFull;
    case CtCommitResult::kClash:
      return DropReason::kCtClash;
    default:
      return DropReason::kNone;
  }
}

Step RunActions(SimNic::State& s, Exec& x, const std::vector<CAction>& list,
                uint64_t now) noexcept {
  for (const CAction& a : list) {
    switch (a.kind) {
      case ActionKind::kDrop:
        return Done(Verdict::kDrop, DropReason::kDropAction);
      case ActionKind::kReject:
        return Done(Verdict::kReject);
      case ActionKind::kOutput:
        return Done(Verdict::kForward, DropReason::kNone, a.port);
      case ActionKind::kPunt:
        return Done(Verdict::kPunt);
      case ActionKind::kGoto:
        return {Flow::kGoto, a.table};
      case ActionKind::kSetField:
        ApplySetField(x.f, a);
        break;
      case ActionKind::kDnat:
        if (!ApplyDnat(x.f, x.pkt, a)) return Done(Verdict::kDrop, DropReason::kBadRewrite);
        break;
      case ActionKind::kSnat: {
        bool exhausted = false;
        if (!ApplySnat(*s.ct, x.f, x.pkt, a, &exhausted)) {
          return Done(Verdict::kDrop,
                      exhausted ? DropReason::kSnatExhausted : DropReason::kBadRewrite);
        }
        break;
      }
      case ActionKind::kGroup: {
        const CGroup& g = s.groups[a.group];
        const uint32_t b = PickBucket(s, g, a.group, x.f, now);
        if (b == MaglevTable::kNone) return Done(Verdict::kDrop, DropReason::kNoBucket);
        const Step st = RunActions(s, x, g.buckets[b], now);
        if (st.flow != Flow::kNext) return st;
        break;
      }
      case ActionKind::kCtLookup:
        CtLookup(s, x, a.zone, now);
        break;
      case ActionKind::kCtCommit:
        if (DropReason r = CtCommit(s, x, a.zone, now); r != DropReason::kNone) {
          return Done(Verdict::kDrop, r);
        }
        break;
      case ActionKind::kCount:
        break;
    }
  }
  return {};
}

Step RunPipeline(SimNic::State& s, Exec& x, uint64_t now) noexcept {
  TableId t = 0;
  while (t < s.tables.size()) {
    CTable& tab = s.tables[t];
    ++tab.counters.packets;
    tab.counters.bytes += x.len;
    const LookupResult r = tab.cls->Lookup(x.f);
    tab.counters.ties += r.tie;
    const std::vector<CAction>* list = &tab.defaults;
    if (r.rule != kNoRule) {
      CEntry& e = s.entries[r.rule];
      ++tab.counters.hits;
      ++e.counters.packets;
      e.counters.bytes += x.len;
      list = &e.actions;
    } else {
      ++tab.counters.misses;
    }
    const Step st = RunActions(s, x, *list, now);
    if (st.flow == Flow::kDone) return st;
    if (st.flow == Flow::kNext || st.table <= t) break;  // fell off (or a bucket's goto back)
    t = st.table;
  }
  return Done(Verdict::kDrop, DropReason::kFellOff);
}

}  // namespace

// ---- Shared helpers ----

void ApplySetField(PacketFields& f, const CAction& a) noexcept {
  if (!f.has(a.field)) return;
  const U128 old = f.get(a.field);
  f.v[static_cast<int>(a.field)] = (old & ~a.mask) | a.value;
}

bool ApplyDnat(PacketFields& f, const ParsedPacket& p, const CAction& a) noexcept {
  if (a.v6 != p.is_v6) return false;
  f.set(DstField(p.is_v6), a.value);
  if (a.l4_port != 0 && HasPorts(p)) f.set(Field::kL4Dst, U128::Of(a.l4_port));
  return true;
}

CtTuple TupleOf(const PacketFields& f, const ParsedPacket& p, uint16_t zone) noexcept {
  CtTuple t;
  t.src = f.get(SrcField(p.is_v6));
  t.dst = f.get(DstField(p.is_v6));
  if (HasPorts(p)) {
    t.src_port = static_cast<uint16_t>(f.get(Field::kL4Src).lo);
    t.dst_port = static_cast<uint16_t>(f.get(Field::kL4Dst).lo);
  } else if (IsIcmpEcho(p)) {
    t.src_port = t.dst_port = p.icmp_id;
  }
  t.proto = p.l4_proto;
  t.v6 = p.is_v6;
  t.zone = zone;
  return t;
}

bool ApplySnat(const Conntrack& ct, PacketFields& f, const ParsedPacket& p, const CAction& a,
               bool* exhausted) noexcept {
  *exhausted = false;
  if (a.v6 != p.is_v6) return false;
  const CtTuple before = TupleOf(f, p, 0);
  f.set(SrcField(p.is_v6), a.value);
  if (!HasPorts(p)) return true;
  const uint16_t lo = a.l4_port;
  const uint16_t hi = a.l4_port_hi < lo ? lo : a.l4_port_hi;
  // The connection's reply tuple would be (dst -> new src:port); it must be unused.
  CtTuple reply = Reverse(TupleOf(f, p, 0));
  const uint16_t keep = before.src_port;
  if (keep >= lo && keep <= hi) {
    reply.dst_port = keep;
    if (!ct.InUse(reply)) return true;
  }
  const uint32_t range = uint32_t{hi} - lo + 1;
  const uint64_t h = Mix(before.src.lo ^ Mix(before.dst.lo ^ before.src.hi) ^
                         (uint64_t{before.src_port} << 16 | before.dst_port));
  for (uint32_t i = 0; i < range; ++i) {
    const auto port = static_cast<uint16_t>(lo + (h + i) % range);
    reply.dst_port = port;
    if (!ct.InUse(reply)) {
      f.set(Field::kL4Src, U128::Of(port));
      return true;
    }
  }
  *exhausted = true;
  return false;
}

void ApplyCtNat(const CtEntry& e, CtDir dir, PacketFields& f, const ParsedPacket& p) noexcept {
  // Original direction leaves as the translated tuple (the reply tuple reversed); a reply leaves
  // as the original tuple reversed.
  const CtTuple& from = dir == CtDir::kOriginal ? e.reply : e.orig;
  f.set(SrcField(p.is_v6), from.dst);
  f.set(DstField(p.is_v6), from.src);
  if (HasPorts(p)) {
    f.set(Field::kL4Src, U128::Of(from.dst_port));
    f.set(Field::kL4Dst, U128::Of(from.src_port));
  }
}

uint64_t FlowHash(const CGroup& g, const PacketFields& f) noexcept {
  uint64_t h = 0x243f6a8885a308d3ull;
  for (Field fld : g.group.hash_fields) {
    const U128 v = f.get(fld);
    h = Mix(h ^ v.hi) + v.lo;
  }
  return Mix(h);
}

uint8_t L4Flags(const ParsedPacket& p) noexcept {
  if (p.l4_proto == kProtoTcp && p.has_l4) {
    return static_cast<uint8_t>(p.fields.get(Field::kTcpFlags).lo);
  }
  return p.l4_proto == kProtoSctp ? p.sctp_chunk : 0;
}

// ---- Entry points ----

PacketResult SimNic::ProcessFrame(std::span<uint8_t> buf, size_t& len, PortId in_port) noexcept {
  State& s = *s_;
  const uint64_t now = s.clock->NowNs();
  ++s.counters.rx_packets;
  s.counters.rx_bytes += len;
  if (in_port < s.port_counters.size()) {
    ++s.port_counters[in_port].rx_packets;
    s.port_counters[in_port].rx_bytes += len;
  }
  PacketResult res;
  auto drop = [&](DropReason r) {
    ++s.counters.dropped;
    ++s.counters.drops[static_cast<size_t>(r)];
    res.verdict = Verdict::kDrop;
    res.reason = r;
    return res;
  };
  if (!s.has_program) return drop(DropReason::kNoProgram);
  Exec x;
  x.len = static_cast<uint32_t>(len);
  res.parse_error = ParsePacket(buf.first(len), x.pkt);
  if (res.parse_error != ParseError::kNone) {
    ++s.counters.parse_errors[static_cast<size_t>(res.parse_error)];
    return drop(DropReason::kParseError);
  }
  x.orig_l34 = CaptureL34(x.pkt);
  x.f.set(Field::kInPort, U128::Of(in_port));
  const auto cls =
      in_port < s.ports.size() ? s.ports[in_port].port_class : flowtables::PortClass::kNone;
  x.f.set(Field::kMetaPortClass, U128::Of(static_cast<uint64_t>(cls)));
  const Step st = RunPipeline(s, x, now);
  switch (st.verdict) {
    case Verdict::kDrop:
      return drop(st.reason);
    case Verdict::kPunt:
      ++s.counters.punted;
      break;
    case Verdict::kForward:
      RewriteAddressesAndPorts(buf.first(len), x.pkt, x.orig_l34, x.f);
      ++s.counters.forwarded;
      if (st.port < s.port_counters.size()) {
        ++s.port_counters[st.port].tx_packets;
        s.port_counters[st.port].tx_bytes += len;
      }
      break;
    case Verdict::kReject: {
      const size_t n = BuildRejectReply(buf.first(len), x.pkt, s.scratch);
      if (n == 0 || n > buf.size()) return drop(DropReason::kRejectFailed);
      std::memcpy(buf.data(), s.scratch.data(), n);
      len = n;
      ++s.counters.rejected;
      res.out_port = in_port;
      break;
    }
  }
  res.verdict = st.verdict;
  if (st.verdict == Verdict::kForward) res.out_port = st.port;
  return res;
}

void SimNic::ProcessBatch(PacketBatch& b) noexcept {
  for (size_t i = 0; i < b.size_; ++i) {
    size_t len = b.len_[i];
    b.results_[i] =
        ProcessFrame({b.data_.data() + i * b.max_frame_, b.max_frame_}, len, b.in_port_[i]);
    b.len_[i] = static_cast<uint32_t>(len);
  }
}

}  // namespace nicflow::sim
