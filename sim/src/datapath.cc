// SimNic fast path: one frame through the installed program (semantics: flowtables/ir.h).
//
// The frame is left untouched while the tables run: actions change the field vector only, and
// the NAT a forwarded packet accumulated is written into the frame once, when it leaves, with
// incremental checksum updates. That keeps a REJECT reply faithful to what the sender sent and
// costs one rewrite however many NAT actions ran. Nothing here throws; allocation is amortised
// (conntrack's index at a new high-water mark, the flow cache at its first insert and when it
// interns a path it has not seen since the last program change).
//
// The interpreter records the path it took (tables, winning rules, the conntrack hit) and whether
// the outcome may be cached; cacheable outcomes go into the flow cache (flow_cache.h), whose hits
// replay them. With the cache on, a frame is first parsed for its headers only (packet_parse.h)
// to probe the cache; the full field vector the tables need is built only when the cache does not
// answer. ProcessBatch() probes the cache for a group of frames before running any of them, so
// the cache sets and conntrack entries of the hits are loaded in parallel rather than one miss
// after another; frames still run one by one, in order.
#include <algorithm>
#include <cstring>
#include <optional>

#include "device_state.h"
#include "nicflow/sim/checksum.h"
#include "packet_parse.h"

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
constexpr size_t kMaxPathSteps = 32;

// What the interpreter did, for the flow cache.
struct Record {
  bool cacheable = true;
  bool has_ct = false;
  CtDir ct_dir = CtDir::kOriginal;
  uint32_t ct_slot = 0;
  uint64_t ct_id = 0;
  size_t n = 0;
  PathStep steps[kMaxPathSteps];
};

// The lookups the prefetch pass made for a frame (see PrefetchPipeline): the results of the first
// `n` tables of its path. They hold while the frame's fields are those the pass assumed: it ran
// the same actions on the same fields, except that it took every conntrack lookup to find
// nothing, giving the state `ct_state`. The interpreter uses them in order and drops them at the
// first table or conntrack state that differs.
struct LookupMemo {
  static constexpr size_t kMax = 8;
  uint8_t n = 0;
  TableId table[kMax];
  LookupResult result[kMax];
  uint64_t ct_state = 0;

  void Add(TableId t, LookupResult r) noexcept {
    if (n < kMax) table[n] = t, result[n++] = r;
  }
};

struct Exec {
  ParsedPacket pkt;
  PacketFields& f = pkt.fields;
  L34Values orig_l34;
  CtTuple orig;  // the tuple at the first CtLookup: what CtCommit records as the original
  bool have_orig = false;
  uint32_t len = 0;
  Record rec;
  const LookupMemo* memo = nullptr;
  uint8_t memo_at = 0;  // the next memo entry
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
  if (!g.affinity) return g.maglev.Pick(FlowHash(g, f));
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
    x.memo = nullptr;  // conntrack state of its own, and maybe NAT: not the memo's fields
    if (s.ct->Track(*hit, L4Flags(x.pkt), x.len, now)) {
      state |= flowtables::kCtEst | (hit->dir == CtDir::kReply ? flowtables::kCtRpl : 0);
      const CtEntry& e = s.ct->entry(hit->slot);
      ApplyCtNat(e, hit->dir, x.f, x.pkt);
      if (x.rec.has_ct) x.rec.cacheable = false;  // one remembered connection per path
      x.rec.has_ct = true;
      x.rec.ct_dir = hit->dir;
      x.rec.ct_slot = hit->slot;
      x.rec.ct_id = e.id;
    } else {
      state |= flowtables::kCtInv;
      x.rec.cacheable = false;
    }
    x.f.set(Field::kCtState, U128::Of(state));
    return;
  }
  x.rec.cacheable = false;  // the outcome depends on the connection not existing yet
  if (x.pkt.l4_proto == kProtoTcp && !TcpCanStart(L4Flags(x.pkt))) {
    state |= flowtables::kCtInv;
  } else {
    state |= flowtables::kCtNew;
  }
  if (x.memo != nullptr && x.memo->ct_state != state) x.memo = nullptr;
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

// Runs `list`. kDone and kGoto leave the verdict or the next table in `out`, which the caller
// owns: a Step returned by value was assembled in memory by byte stores and read back as words,
// a stalled store forward at every table of every packet.
Flow RunActions(SimNic::State& s, Exec& x, const std::vector<CAction>& list, uint64_t now,
                Step& out) noexcept {
  const auto done = [&out](Verdict v, DropReason r = DropReason::kNone,
                           PortId port = kInvalidPort) {
    out = Done(v, r, port);
    return Flow::kDone;
  };
  for (const CAction& a : list) {
    switch (a.kind) {
      case ActionKind::kDrop:
        return done(Verdict::kDrop, DropReason::kDropAction);
      case ActionKind::kReject:
        return done(Verdict::kReject);
      case ActionKind::kOutput:
        return done(Verdict::kForward, DropReason::kNone, a.port);
      case ActionKind::kPunt:
        return done(Verdict::kPunt);
      case ActionKind::kGoto:
        out.table = a.table;
        return Flow::kGoto;
      case ActionKind::kSetField:
        ApplySetField(x.f, a);
        break;
      case ActionKind::kDnat:
        if (!ApplyDnat(x.f, x.pkt, a)) return done(Verdict::kDrop, DropReason::kBadRewrite);
        break;
      case ActionKind::kSnat: {
        x.rec.cacheable = false;  // the port chosen depends on conntrack's contents
        bool exhausted = false;
        if (!ApplySnat(*s.ct, x.f, x.pkt, a, &exhausted)) {
          return done(Verdict::kDrop,
                      exhausted ? DropReason::kSnatExhausted : DropReason::kBadRewrite);
        }
        break;
      }
      case ActionKind::kGroup: {
        const CGroup& g = s.groups[a.group];
        if (g.affinity) x.rec.cacheable = false;
        const uint32_t b = PickBucket(s, g, a.group, x.f, now);
        if (b == MaglevTable::kNone) return done(Verdict::kDrop, DropReason::kNoBucket);
        if (const Flow f = RunActions(s, x, g.buckets[b], now, out); f != Flow::kNext) return f;
        break;
      }
      case ActionKind::kCtLookup:
        CtLookup(s, x, a.zone, now);
        break;
      case ActionKind::kCtCommit:
        x.rec.cacheable = false;
        if (DropReason r = CtCommit(s, x, a.zone, now); r != DropReason::kNone) {
          return done(Verdict::kDrop, r);
        }
        break;
      case ActionKind::kCount:
        break;
    }
  }
  return Flow::kNext;
}

// Runs the tables from `start`; the verdict goes to `st` (out-parameters, as RunActions says why).
void RunPipeline(SimNic::State& s, Exec& x, uint64_t now, Step& st, TableId start = 0) noexcept {
  TableId t = start;
  while (t < s.tables.size()) {
    CTable& tab = s.tables[t];
    ++tab.counters.packets;
    tab.counters.bytes += x.len;
    LookupResult r;
    if (x.memo != nullptr && x.memo_at < x.memo->n && x.memo->table[x.memo_at] == t) {
      r = x.memo->result[x.memo_at++];
    } else {
      x.memo = nullptr;
      r = tab.cls->Lookup(x.f);
    }
    tab.counters.ties += r.tie;
    if (x.rec.n < kMaxPathSteps && t <= 0xff) {
      x.rec.steps[x.rec.n++] = {r.rule, static_cast<uint8_t>(t), static_cast<uint8_t>(r.tie), 0};
    } else {
      x.rec.cacheable = false;
    }
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
    const Flow flow = RunActions(s, x, *list, now, st);
    if (flow == Flow::kDone) {
      if (st.verdict == Verdict::kPunt) st.table = t;  // where the software path resumes
      return;
    }
    if (flow == Flow::kNext || st.table <= t) break;  // fell off (or a bucket's goto back)
    t = st.table;
  }
  st = Done(Verdict::kDrop, DropReason::kFellOff);
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
  const std::span<const Field> fields = g.n_hash <= kInlineHashFields
                                            ? std::span<const Field>(g.hash.data(), g.n_hash)
                                            : std::span<const Field>(g.group.hash_fields);
  for (Field fld : fields) {
    const U128 v = f.get(fld);
    h = Mix(h ^ v.hi) + v.lo;
  }
  return Mix(h);
}

namespace {

template <class P>
uint8_t L4FlagsOf(const P& p, uint8_t tcp_flags) noexcept {
  if (p.l4_proto == kProtoTcp && p.has_l4) return tcp_flags;
  return p.l4_proto == kProtoSctp ? p.sctp_chunk : 0;
}

// The same for a frame parsed for the flow cache.
uint8_t L4Flags(const ParsedHeaders& p) noexcept { return L4FlagsOf(p, p.fields.tcp_flags); }

}  // namespace

uint8_t L4Flags(const ParsedPacket& p) noexcept {
  return L4FlagsOf(p, static_cast<uint8_t>(p.fields.get(Field::kTcpFlags).lo));
}

// ---- Entry points ----

namespace {

using State = SimNic::State;

PacketResult CountDrop(State& s, PacketResult res, DropReason r) noexcept {
  ++s.counters.dropped;
  ++s.counters.drops[static_cast<size_t>(r)];
  res.verdict = Verdict::kDrop;
  res.reason = r;
  return res;
}

// Counts the frame in. False when it is dropped here (`res` is then final).
bool CountIn(State& s, std::span<const uint8_t> frame, PortId in_port, PacketResult& res) noexcept {
  ++s.counters.rx_packets;
  s.counters.rx_bytes += frame.size();
  if (in_port < s.port_counters.size()) {
    ++s.port_counters[in_port].rx_packets;
    s.port_counters[in_port].rx_bytes += frame.size();
  }
  if (!s.has_program) {
    res = CountDrop(s, res, DropReason::kNoProgram);
    return false;
  }
  return true;
}

// Counts a frame leaving by `port`.
void CountForward(State& s, PortId port, size_t len, PacketResult& res) noexcept {
  ++s.counters.forwarded;
  if (port < s.port_counters.size()) {
    ++s.port_counters[port].tx_packets;
    s.port_counters[port].tx_bytes += len;
  }
  res.out_port = port;
}

// Counts a frame the parser rejected and drops it.
PacketResult ParseDrop(State& s, ParseError e) noexcept {
  PacketResult res;
  res.parse_error = e;
  ++s.counters.parse_errors[static_cast<size_t>(e)];
  return CountDrop(s, res, DropReason::kParseError);
}

// The interpreter's state besides the parsed packet.
void Seed(const State& s, PortId in_port, Exec& x) noexcept {
  x.orig_l34 = CaptureL34(x.pkt);
  x.f.set(Field::kInPort, U128::Of(in_port));
  const auto cls =
      in_port < s.ports.size() ? s.ports[in_port].port_class : flowtables::PortClass::kNone;
  x.f.set(Field::kMetaPortClass, U128::Of(static_cast<uint64_t>(cls)));
}

// Parses the frame into the interpreter's state. False when it is dropped here (`res` is then
// final).
bool Prepare(State& s, std::span<const uint8_t> frame, PortId in_port, Exec& x,
             PacketResult& res) noexcept {
  x.len = static_cast<uint32_t>(frame.size());
  if (const ParseError e = ParsePacket(frame, x.pkt); e != ParseError::kNone) {
    res = ParseDrop(s, e);
    return false;
  }
  Seed(s, in_port, x);
  return true;
}

// Counts the frame in and parses it. False when it is dropped here (`res` is then final).
bool Ingress(State& s, std::span<const uint8_t> frame, PortId in_port, Exec& x,
             PacketResult& res) noexcept {
  return CountIn(s, frame, in_port, res) && Prepare(s, frame, in_port, x, res);
}

// The flow cache key of a parsed packet (flow_cache.h says what belongs in it).
FlowKey KeyOf(const State& s, const ParsedHeaders& p, PortId in_port) noexcept {
  const HeaderFields& f = p.fields;
  FlowKey k;
  if (p.is_v6) {
    k.src = f.src;
    k.dst = f.dst;
  } else {
    // An IPv4 address is U128::Of(v4), and the parser wrote only its low word over the zeroed
    // struct: a load of both words would span two recent stores, which the CPU cannot forward,
    // and wait for them to reach the cache. Read the low word alone.
    k.src = U128::Of(f.src.lo);
    k.dst = U128::Of(f.dst.lo);
  }
  k.in_port = in_port;
  k.present = f.present;
  k.src_port = f.l4_src;
  k.dst_port = f.l4_dst;
  k.icmp_id = p.icmp_id;
  k.eth_type = f.eth_type;
  k.proto = p.l4_proto;
  k.tcp_flags = s.key_tcp_flags ? f.tcp_flags : 0;
  k.icmp_type = f.icmp_type;
  k.pkt_flags = static_cast<uint8_t>(p.is_v6 | p.has_l4 << 1 | p.is_fragment << 2);
  return k;
}

// A frame parsed for the flow cache: its headers, key and the key's hash.
struct Probe {
  ParsedHeaders h;
  FlowKey key;
  uint64_t hash = 0;
  // What the cache answered for the key at FlowCache::version() `version` (0: not asked yet).
  // ProcessBatch asks for the whole group before running it; RunFrame asks again only if the
  // cache changed in between (an earlier frame of the group inserted an entry).
  const FlowCacheEntry* entry = nullptr;
  uint64_t version = 0;
};

// Parses the frame's headers and computes its key. False when the parser drops it (`res` is
// then final).
bool ProbeOf(State& s, std::span<const uint8_t> frame, PortId in_port, Probe& p,
             PacketResult& res) noexcept {
  if (const ParseError e = ParseHeaders(frame, p.h); e != ParseError::kNone) {
    res = ParseDrop(s, e);
    return false;
  }
  const FlowKey::Words w = KeyOf(s, p.h, in_port).ToWords();
  p.hash = FlowKey::HashWords(w);
  p.key = FlowKey::FromWords(w);
  p.entry = nullptr;
  p.version = 0;
  return true;
}

// The interpreter's state of a probed frame of `len` bytes.
void PrepareProbed(const State& s, const Probe& p, size_t len, PortId in_port, Exec& x) noexcept {
  x.len = static_cast<uint32_t>(len);
  ExpandHeaders(p.h, x.pkt);
  Seed(s, in_port, x);
}

// Replays a cached outcome (see flow_cache.h) on the frame, as the interpreter and Egress would
// have left it. False, with nothing changed, when the remembered connection is gone, expired or
// refuses the packet: the interpreter must run.
bool ReplayHit(State& s, std::span<uint8_t> frame, const ParsedHeaders& p, const FlowCacheEntry& e,
               uint64_t now, PacketResult& res) noexcept {
  const auto len = static_cast<uint32_t>(frame.size());
  if (e.has_ct) {
    if (!s.ct->IsLive(e.ct_slot, e.ct_id, now)) return false;
    if (!s.ct->Track({e.ct_slot, static_cast<CtDir>(e.ct_dir)}, L4Flags(p), len, now)) return false;
  }
  const auto [steps, n] = s.flow_cache.Path(e.path);
  for (size_t i = 0; i < n; ++i) {
    CTable& tab = s.tables[steps[i].table];
    ++tab.counters.packets;
    tab.counters.bytes += len;
    tab.counters.ties += steps[i].tie;
    if (steps[i].rule == kNoRule) {
      ++tab.counters.misses;
      continue;
    }
    ++tab.counters.hits;
    EntryCounters& c = s.entries[steps[i].rule].counters;
    ++c.packets;
    c.bytes += len;
  }
  // Only forward and drop outcomes are cached (Interpret).
  if (e.verdict != static_cast<uint8_t>(Verdict::kForward)) {
    res = CountDrop(s, res, static_cast<DropReason>(e.reason));
    return true;
  }
  RewriteL34(frame, p, HeaderL34(p),
             {e.out_src, e.out_dst, U128::Of(e.out_src_port), U128::Of(e.out_dst_port)});
  CountForward(s, e.out_port, len, res);
  res.verdict = Verdict::kForward;
  return true;
}

// Runs the tables and caches the outcome when it may be cached.
void Interpret(State& s, Exec& x, const FlowKey& key, uint64_t hash, uint64_t now,
               Step& st) noexcept {
  RunPipeline(s, x, now, st);
  if (!s.flow_cache.enabled()) return;
  // A punt is not cached: a replay could not hand over the registers the software path needs.
  if (!x.rec.cacheable || st.verdict == Verdict::kReject || st.verdict == Verdict::kPunt) {
    ++s.flow_cache.stats.uncacheable;
    return;
  }
  FlowCacheEntry e;
  e.out_src = x.f.get(SrcField(x.pkt.is_v6));
  e.out_dst = x.f.get(DstField(x.pkt.is_v6));
  e.out_src_port = static_cast<uint16_t>(x.f.get(Field::kL4Src).lo);
  e.out_dst_port = static_cast<uint16_t>(x.f.get(Field::kL4Dst).lo);
  e.out_port = st.port;
  e.verdict = static_cast<uint8_t>(st.verdict);
  e.reason = static_cast<uint8_t>(st.reason);
  e.has_ct = x.rec.has_ct;
  e.ct_dir = static_cast<uint8_t>(x.rec.ct_dir);
  e.ct_slot = x.rec.ct_slot;
  e.ct_id = x.rec.ct_id;
  (void)s.flow_cache.Insert(key, hash, e, x.rec.steps, x.rec.n);
}

// Applies the verdict to the frame and the counters.
PacketResult Egress(State& s, std::span<uint8_t> buf, size_t& len, PortId in_port, Exec& x,
                    const Step& st, PuntState* punt) noexcept {
  PacketResult res;
  switch (st.verdict) {
    case Verdict::kDrop:
      return CountDrop(s, res, st.reason);
    case Verdict::kPunt:
      ++s.counters.punted;
      if (punt != nullptr) {
        punt->table = st.table;
        punt->fields = x.f;
        punt->have_orig = x.have_orig;
        punt->orig = x.orig;
      }
      break;
    case Verdict::kForward:
      RewriteAddressesAndPorts(buf.first(len), x.pkt, x.orig_l34, x.f);
      CountForward(s, st.port, len, res);
      break;
    case Verdict::kReject: {
      const size_t n = BuildRejectReply(buf.first(len), x.pkt, s.scratch);
      if (n == 0 || n > buf.size()) return CountDrop(s, res, DropReason::kRejectFailed);
      std::memcpy(buf.data(), s.scratch.data(), n);
      len = n;
      ++s.counters.rejected;
      res.out_port = in_port;
      break;
    }
  }
  res.verdict = st.verdict;
  return res;
}

// A prepared frame through the tables from `start`, without the flow cache, then out.
PacketResult RunTables(State& s, std::span<uint8_t> buf, size_t& len, PortId in_port, Exec& x,
                       uint64_t now, PuntState* punt, TableId start = 0) noexcept {
  Step st;
  RunPipeline(s, x, now, st, start);
  return Egress(s, buf, len, in_port, x, st, punt);
}

// A probed frame through the cache or, when it does not answer, the tables (`x` holds the
// frame's interpreter state if it was prepared already), then out.
PacketResult RunFrame(State& s, std::span<uint8_t> buf, size_t& len, PortId in_port, const Probe& p,
                      std::optional<Exec>& x, uint64_t now, PuntState* punt) noexcept {
  PacketResult res;
  const FlowCacheEntry* e =
      p.version == s.flow_cache.version() ? p.entry : s.flow_cache.Find(p.key, p.hash);
  if (e != nullptr && ReplayHit(s, buf.first(len), p.h, *e, now, res)) {
    ++s.flow_cache.stats.hits;
    return res;
  }
  ++s.flow_cache.stats.misses;
  if (!x) PrepareProbed(s, p, len, in_port, x.emplace());
  Step st;
  Interpret(s, *x, p.key, p.hash, now, st);
  return Egress(s, buf, len, in_port, *x, st, punt);
}

}  // namespace

PacketResult SimNic::ResumeFrame(std::span<uint8_t> buf, size_t& len, PortId in_port,
                                 const PuntState& state) noexcept {
  State& s = *s_;
  const uint64_t now = s.clock->NowNs();
  Exec x;
  PacketResult res;
  if (!Ingress(s, buf.first(len), in_port, x, res)) return res;
  if (state.table >= s.tables.size()) return CountDrop(s, res, DropReason::kFellOff);
  // The frame is as the punting device received it (orig_l34 is right); the fields carry what
  // that device's actions did, with this device's id of the input port.
  const U128 in = x.f.get(Field::kInPort);
  x.f = state.fields;
  x.f.set(Field::kInPort, in);
  x.have_orig = state.have_orig;
  x.orig = state.orig;
  return RunTables(s, buf, len, in_port, x, now, nullptr, state.table);
}

bool SimNic::OwnsConnection(std::span<const uint8_t> frame) const noexcept {
  const State& s = *s_;
  if (s.ct->size() == 0) return false;
  ParsedPacket p;
  if (ParsePacket(frame, p) != ParseError::kNone) return false;
  return s.ct->Peek(TupleOf(p.fields, p, 0), s.clock->NowNs()).has_value();
}

PacketResult SimNic::ProcessFrame(std::span<uint8_t> buf, size_t& len, PortId in_port,
                                  PuntState* punt) noexcept {
  State& s = *s_;
  const uint64_t now = s.clock->NowNs();
  PacketResult res;
  if (!CountIn(s, buf.first(len), in_port, res)) return res;
  if (!s.flow_cache.enabled()) {
    Exec x;
    if (!Prepare(s, buf.first(len), in_port, x, res)) return res;
    return RunTables(s, buf, len, in_port, x, now, punt);
  }
  Probe p;
  if (!ProbeOf(s, buf.first(len), in_port, p, res)) return res;
  std::optional<Exec> x;
  return RunFrame(s, buf, len, in_port, p, x, now, punt);
}

namespace {

// Prefetching for frames the flow cache does not answer: each pass loads, for every such frame of
// a group, what the next pass reads, so a group's cache misses overlap instead of queueing one
// after another. The passes speculate: the fields the first big table will see are those the
// small tables before it leave (SpeculateFields), then a lookup in each big table with them
// guesses the winning entry, its group and bucket. A wrong guess costs a useless load, never a
// different result, since nothing here writes to the device. The lookups made on the way are
// kept for the interpreter (LookupMemo), which uses them for as long as its frame's fields are
// the ones they were made with: a frame that turns out new pays for each lookup once.
// Frames a batch handles together (see ProcessBatch).
constexpr size_t kBatchGroup = 16;

struct Speculation {
  PacketFields f;  // as the first big table will see them, if `reaches_big`
  LookupMemo memo;
  bool reaches_big = false;
  TableId big = 0;  // the big table reached
  const CEntry* entry = nullptr;
  const CGroup* group = nullptr;
  const std::vector<CAction>* bucket = nullptr;  // the group's bucket picked, if `group`
  uint64_t hash = 0;
};

// Runs the small tables before the first big one on a copy of the fields, as far as that needs
// no state: lookups, SetField and Dnat, and a conntrack lookup taken to find nothing (a frame the
// flow cache did not answer is most often a new connection). Speculating with the parsed fields
// instead missed in the service table, whose tuples match meta.flags that `classify` sets.
// False when the walk leaves the pipeline, or needs state, before reaching a big table.
bool SpeculateFields(const State& s, const Exec& x, PacketFields& f, LookupMemo& memo,
                     TableId& big) noexcept {
  f = x.f;
  TableId t = 0;
  for (size_t hops = 0; hops < s.tables.size() && t < s.tables.size(); ++hops) {
    if (std::find(s.big_tables.begin(), s.big_tables.end(), t) != s.big_tables.end()) {
      big = t;
      return true;
    }
    const CTable& tab = s.tables[t];
    const LookupResult r = tab.cls->Lookup(f);
    memo.Add(t, r);
    const std::vector<CAction>& list = r.rule != kNoRule ? s.entries[r.rule].actions : tab.defaults;
    TableId next = t;
    for (const CAction& a : list) {
      if (a.kind == ActionKind::kSetField) {
        ApplySetField(f, a);
      } else if (a.kind == ActionKind::kDnat) {
        if (!ApplyDnat(f, x.pkt, a)) return false;
      } else if (a.kind == ActionKind::kCtLookup) {
        const bool inv = x.pkt.l4_proto == kProtoTcp && !TcpCanStart(L4Flags(x.pkt));
        memo.ct_state = flowtables::kCtTrk | (inv ? flowtables::kCtInv : flowtables::kCtNew);
        f.set(Field::kCtState, U128::Of(memo.ct_state));
      } else if (a.kind == ActionKind::kGoto) {
        next = a.table;
        break;
      } else if (a.kind != ActionKind::kCount) {
        return false;
      }
    }
    if (next <= t) return false;
    t = next;
  }
  return false;
}

// `xs[i]` is set for the frames to prefetch for.
void PrefetchPipeline(const State& s, std::optional<Exec>* xs, size_t n) noexcept {
  // Reused, and reset only for the frames the interpreter will run: a Speculation holds a whole
  // field vector, and a fresh array zeroed sixteen of them per group, a cost of every
  // established (cache-hit) group, which runs no interpreter at all. `spec[i]` is null for the
  // others.
  thread_local Speculation spec_storage[kBatchGroup];
  std::array<Speculation*, kBatchGroup> spec{};
  bool any = false;
  for (size_t i = 0; i < n; ++i) {
    if (!xs[i]) continue;
    Speculation& sp = spec_storage[i];
    sp.entry = nullptr;
    sp.group = nullptr;
    sp.bucket = nullptr;
    sp.hash = 0;
    sp.memo.n = 0;
    sp.memo.ct_state = 0;
    xs[i]->memo = &sp.memo;
    xs[i]->memo_at = 0;
    spec[i] = &sp;
    s.ct->PrefetchTuple(TupleOf(xs[i]->f, xs[i]->pkt, 0));
    sp.reaches_big = SpeculateFields(s, *xs[i], sp.f, sp.memo, sp.big);
    if (!sp.reaches_big) continue;
    any = true;
    for (TableId t : s.big_tables) s.tables[t].cls->Prefetch(sp.f);
  }
  if (!any) return;
  for (size_t i = 0; i < n; ++i) {
    if (!spec[i] || !spec[i]->reaches_big) continue;
    for (TableId t : s.big_tables) {
      const LookupResult r = s.tables[t].cls->Lookup(spec[i]->f);
      if (t == spec[i]->big) spec[i]->memo.Add(t, r);
      if (r.rule == kNoRule) continue;
      spec[i]->entry = &s.entries[r.rule];
      __builtin_prefetch(spec[i]->entry);
      break;
    }
  }
  for (size_t i = 0; i < n; ++i) {
    if (!spec[i] || spec[i]->entry == nullptr) continue;
    const char* p = reinterpret_cast<const char*>(spec[i]->entry->actions.data());
    for (size_t k = 0; k < spec[i]->entry->actions.size() && k < 4; ++k) {
      __builtin_prefetch(p + k * sizeof(CAction));
    }
  }
  for (size_t i = 0; i < n; ++i) {
    if (!spec[i] || spec[i]->entry == nullptr) continue;
    for (const CAction& a : spec[i]->entry->actions) {
      if (a.kind != ActionKind::kGroup) continue;
      spec[i]->group = &s.groups[a.group];
      __builtin_prefetch(spec[i]->group);
      break;
    }
  }
  for (size_t i = 0; i < n; ++i) {
    if (!spec[i] || spec[i]->group == nullptr) continue;
    spec[i]->hash = FlowHash(*spec[i]->group, spec[i]->f);
    spec[i]->group->maglev.PrefetchSlot(spec[i]->hash);
    __builtin_prefetch(spec[i]->group->buckets.data());
  }
  for (size_t i = 0; i < n; ++i) {
    if (!spec[i] || spec[i]->group == nullptr) continue;
    const uint32_t b = spec[i]->group->maglev.Pick(spec[i]->hash);
    if (b >= spec[i]->group->buckets.size()) {
      spec[i]->group = nullptr;
      continue;
    }
    spec[i]->bucket = &spec[i]->group->buckets[b];
    __builtin_prefetch(spec[i]->bucket->data());
  }
  // The reply tuple a commit of the bucket's DNAT would add to conntrack's index (the zone taken
  // as 0, as for the lookup above): a new connection's insert then finds its index slot loaded.
  // The speculated fields are not needed after this pass, so the DNAT is applied to them.
  for (size_t i = 0; i < n; ++i) {
    if (!spec[i] || spec[i]->group == nullptr) continue;
    for (const CAction& a : *spec[i]->bucket) {
      if (a.kind != ActionKind::kDnat) continue;
      if (ApplyDnat(spec[i]->f, xs[i]->pkt, a)) {
        s.ct->PrefetchTuple(Reverse(TupleOf(spec[i]->f, xs[i]->pkt, 0)));
      }
      break;
    }
  }
}

}  // namespace

void SimNic::ProcessBatch(PacketBatch& b) noexcept {
  State& s = *s_;
  // Frames go in groups: parse and probe the cache for the whole group first, prefetching the
  // cache sets and then the connections the hits will track, so their misses overlap; prepare
  // the frames the cache does not answer for the interpreter and prefetch what their lookups
  // will read; then run the group's frames in order. RunFrame() looks the cache up again only
  // if an earlier frame of the group changed the cache (and may have replaced the entry).
  const bool cached = s.flow_cache.enabled();
  // Both arrays are reused from group to group: fresh ones cost a memset of ~13 KB per group
  // (GCC zeroes each std::optional<Exec> whole), 3% of an established packet's time. ProbeOf()
  // sets every member of a probe the later passes read; a frame's `xs` slot is reset below.
  thread_local std::optional<Exec> xs[kBatchGroup];  // interpreter state, for frames that need it
  thread_local Probe probes[kBatchGroup];
  for (size_t base = 0; base < b.size_; base += kBatchGroup) {
    const size_t n = std::min(kBatchGroup, b.size_ - base);
    const uint64_t now = s.clock->NowNs();
    for (size_t i = 0; i < n; ++i) xs[i].reset();
    bool in[kBatchGroup];  // counted in and parsed
    for (size_t i = 0; i < n; ++i) {
      const size_t k = base + i;
      const std::span<const uint8_t> frame(b.data_.data() + k * b.max_frame_, b.len_[k]);
      PacketResult& res = b.results_[k];
      res = {};
      in[i] = CountIn(s, frame, b.in_port_[k], res) &&
              (cached ? ProbeOf(s, frame, b.in_port_[k], probes[i], res)
                      : Prepare(s, frame, b.in_port_[k], xs[i].emplace(), res));
      if (in[i] && cached) s.flow_cache.Prefetch(probes[i].hash);
    }
    if (cached) {
      uint32_t ways[kBatchGroup];  // FlowCache::Ways(); nothing changes the cache in this pass
      for (size_t i = 0; i < n; ++i) {
        if (!in[i]) continue;
        ways[i] = s.flow_cache.Ways(probes[i].hash);
        if (ways[i] != 0) FlowCache::PrefetchEntry(s.flow_cache.Candidate(probes[i].hash, ways[i]));
      }
      for (size_t i = 0; i < n; ++i) {
        if (!in[i]) continue;
        const size_t k = base + i;
        const FlowCacheEntry* e = s.flow_cache.FindIn(probes[i].key, probes[i].hash, ways[i]);
        probes[i].entry = e;
        probes[i].version = s.flow_cache.version();
        if (e != nullptr && e->has_ct) s.ct->Prefetch(e->ct_slot);
        if (e == nullptr) PrepareProbed(s, probes[i], b.len_[k], b.in_port_[k], xs[i].emplace());
      }
    }
    PrefetchPipeline(s, xs, n);
    for (size_t i = 0; i < n; ++i) {
      if (!in[i]) continue;
      const size_t k = base + i;
      size_t len = b.len_[k];
      const std::span<uint8_t> buf(b.data_.data() + k * b.max_frame_, b.max_frame_);
      if (cached) {
        b.results_[k] = RunFrame(s, buf, len, b.in_port_[k], probes[i], xs[i], now, &b.punts_[k]);
      } else {
        b.results_[k] = RunTables(s, buf, len, b.in_port_[k], *xs[i], now, &b.punts_[k]);
      }
      b.len_[k] = static_cast<uint32_t>(len);
    }
  }
}

}  // namespace nicflow::sim
