// Simulator benchmark: packets per second per core through the full pipeline of a compiled
// cluster (bench/clustergen -> flowtables::Compile -> SimNic), for new connections (every table,
// a Maglev pick, a conntrack commit) and established ones (conntrack hit, NAT, forward), as the
// number of Services grows; and the policy tables alone in the tuple space classifier against
// DPDK rte_acl classifying the same rules and keys in the same run.
//
// Usage: sim_bench [--services=1000,10000,30000] [google benchmark flags]
// Figures and ratios are printed after the Google Benchmark table; docs/performance.md records
// them.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "acl_ref.h"
#include "cluster_gen.h"
#include "nicflow/flowtables/compiler.h"
#include "nicflow/flowtables/pipeline.h"
#include "nicflow/sim/classifier.h"
#include "nicflow/sim/device.h"

namespace nicflow::bench {
namespace {

namespace ft = flowtables;
using sim::PacketBatch;
using sim::PortId;
constexpr size_t kBurst = 64;

struct Frontend {
  uint32_t ip;
  uint8_t proto;
  uint16_t port;
};

struct Workload {
  int services = 0;
  std::unique_ptr<sim::ManualClock> clock;
  std::unique_ptr<sim::SimNic> nic;
  ft::Program program;
  std::vector<std::vector<uint8_t>> new_frames, est_frames;
  std::vector<PortId> new_ports, est_ports;
  double new_forwarded = 0;  // fraction of new-connection SYNs forwarded (sanity)
  std::string error;         // why this size could not be built (the run goes on without it)
  std::vector<std::pair<PortId, uint32_t>> clients;
  std::vector<Frontend> fronts;
};

// ClusterIP-like frontends: a group action on an exact IPv4 destination, protocol and port.
std::vector<Frontend> Frontends(const ft::Program& p) {
  std::vector<Frontend> out;
  for (const ft::Entry& e : p.entries[ft::kTableService]) {
    const bool group = std::any_of(e.actions.begin(), e.actions.end(), [](const ft::Action& a) {
      return std::holds_alternative<ft::GroupAction>(a);
    });
    Frontend f{0, 0, 0};
    bool other = false;
    for (const ft::FieldMatch& m : e.match) {
      if (m.field == ft::Field::kIpv4Dst) {
        const auto* l = std::get_if<ft::LpmMatch>(&m.value);
        if (l && l->prefix_len_bits == 32) f.ip = static_cast<uint32_t>(l->value.lo);
      } else if (m.field == ft::Field::kIpProto) {
        f.proto = static_cast<uint8_t>(std::get<ft::TernaryMatch>(m.value).value.lo);
      } else if (m.field == ft::Field::kL4Dst) {
        f.port = static_cast<uint16_t>(std::get<ft::TernaryMatch>(m.value).value.lo);
      } else if (m.field != ft::Field::kMetaFlags) {
        other = true;
      }
    }
    if (group && !other && f.ip && f.proto == sim::kProtoTcp && f.port) out.push_back(f);
  }
  return out;
}

std::vector<uint8_t> Frame(uint32_t src, uint16_t sp, const Frontend& f, uint8_t flags) {
  sim::PacketSpec s;
  s.src = ft::IpAddr::V4(src);
  s.dst = ft::IpAddr::V4(f.ip);
  s.src_port = sp;
  s.dst_port = f.port;
  s.tcp_flags = flags;
  return *sim::BuildPacket(s);
}

// Opens 16384 connections (SYNs through the pipeline) and keeps their ACKs as the established
// traffic; run again before measuring, since the new-connection benchmark clears conntrack.
void EstablishFlows(Workload& w) {
  w.nic->ClearConntrack();
  w.est_frames.clear();
  w.est_ports.clear();
  std::mt19937_64 rng(7);
  std::vector<uint8_t> buf(2048);
  size_t forwarded = 0;
  for (size_t i = 0; i < 16384; ++i) {
    const auto& c = w.clients[rng() % w.clients.size()];
    const Frontend& f = w.fronts[rng() % w.fronts.size()];
    const auto sp = static_cast<uint16_t>(1024 + i % 60000);
    std::vector<uint8_t> syn = Frame(c.second, sp, f, sim::kTcpSyn);
    std::copy(syn.begin(), syn.end(), buf.begin());
    size_t len = syn.size();
    if (w.nic->ProcessFrame(buf, len, c.first).verdict != sim::Verdict::kForward) continue;
    ++forwarded;
    w.est_frames.push_back(Frame(c.second, sp, f, sim::kTcpAck));
    w.est_ports.push_back(c.first);
  }
  w.new_forwarded = forwarded / 16384.0;
}

Workload& GetWorkload(int services) {
  static std::map<int, std::unique_ptr<Workload>> cache;
  auto& w = cache[services];
  if (w) return *w;
  w = std::make_unique<Workload>();
  w->services = services;
  ClusterShape shape;
  shape.services = services;
  GeneratedCluster g = GenerateCluster(shape);
  ft::CompileOptions opts;
  opts.node_name = g.node_name;
  auto compiled = ft::Compile(g.state, opts);
  if (!compiled.ok()) {
    w->error = "compile failed: " + std::string(compiled.status().message());
    return *w;
  }
  w->program = std::move(compiled->program);
  w->clock = std::make_unique<sim::ManualClock>();
  w->nic = sim::SimNic::Create(*sim::BuiltinProfile("unlimited"), {w->clock.get(), {}, 1u << 20});
  if (absl::Status st = w->nic->Install(w->program); !st.ok()) {
    w->error = "install failed: " + std::string(st.message());
    return *w;
  }
  std::vector<std::pair<PortId, uint32_t>> clients;
  for (const ft::PortDecl& d : w->program.ports) {
    if (d.ref.kind != ft::PortRef::Kind::kPod) continue;
    for (const ft::IpAddr& ip : d.ips) {
      if (ip.is_v4()) clients.emplace_back(*w->nic->FindPort(d.ref), ip.v4());
    }
  }
  const std::vector<Frontend> fronts = Frontends(w->program);
  if (clients.empty() || fronts.empty()) {
    w->error = "no local pods or no frontends in the compiled program";
    return *w;
  }
  std::mt19937_64 rng(services);
  for (size_t i = 0; i < 65536; ++i) {
    const auto& c = clients[i % clients.size()];
    const auto sp = static_cast<uint16_t>(1024 + (i / clients.size()) % 64000);
    w->new_frames.push_back(Frame(c.second, sp, fronts[rng() % fronts.size()], sim::kTcpSyn));
    w->new_ports.push_back(c.first);
  }
  w->clients = std::move(clients);
  w->fronts = fronts;
  EstablishFlows(*w);
  std::string sizes;
  for (const ft::TableSchema& t : w->program.tables) {
    sizes += " " + t.name + "=" + std::to_string(w->program.entries[t.id].size());
  }
  std::printf("workload %d services, tables:%s\n", services, sizes.c_str());
  std::printf(
      "workload %d services: %zu entries, %zu groups, %zu local pods, %zu frontends, "
      "%.0f%% of new connections forwarded\n",
      services, w->program.EntryCount(), w->program.groups.size(), w->clients.size(), fronts.size(),
      100 * w->new_forwarded);
  return *w;
}

void RunFrames(benchmark::State& state, Workload& w,
               const std::vector<std::vector<uint8_t>>& frames, const std::vector<PortId>& ports,
               bool clear_ct) {
  PacketBatch batch(kBurst);
  size_t cursor = 0;
  for (auto _ : state) {
    batch.Clear();
    for (size_t k = 0; k < kBurst; ++k) {
      batch.Add(frames[cursor], ports[cursor]);
      if (++cursor == frames.size()) cursor = 0;
    }
    w.nic->ProcessBatch(batch);
    benchmark::DoNotOptimize(batch.result(0));
    if (clear_ct && cursor < kBurst) {  // wrapped: forget the connections so SYNs stay new
      state.PauseTiming();
      w.nic->ClearConntrack();
      state.ResumeTiming();
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kBurst));
}

void BM_NewConnections(benchmark::State& state) {
  Workload& w = GetWorkload(static_cast<int>(state.range(0)));
  if (!w.error.empty()) return state.SkipWithError(w.error.c_str());
  w.nic->ClearConntrack();
  RunFrames(state, w, w.new_frames, w.new_ports, true);
}

void BM_Established(benchmark::State& state) {
  Workload& w = GetWorkload(static_cast<int>(state.range(0)));
  if (!w.error.empty()) return state.SkipWithError(w.error.c_str());
  EstablishFlows(w);
  const sim::FlowCacheStats before = w.nic->flow_cache_stats();
  RunFrames(state, w, w.est_frames, w.est_ports, false);
  const sim::FlowCacheStats& after = w.nic->flow_cache_stats();
  const double lookups =
      static_cast<double>(after.hits + after.misses - before.hits - before.misses);
  state.counters["cache_hit_pct"] = lookups ? 100.0 * (after.hits - before.hits) / lookups : 0;
}

// ---- Policy tables alone: tuple space search vs rte_acl ----

int g_policy_services = 10000;  // the program whose policy tables are measured

struct PolicyWorkload {
  std::string table;
  std::vector<ft::KeyField> keys;  // the table's keys narrower than 33 bits (IPv4 entries)
  std::vector<ft::Entry> entries;
  std::unique_ptr<sim::Classifier> tss;
  std::unique_ptr<AclClassifier> acl;
  std::vector<sim::PacketFields> packets;
  size_t disagreements = 0;
  std::string acl_error;
};

// Keys drawn from the rules (so lookups hit, as policy traffic does), a fifth random.
std::vector<sim::PacketFields> PolicyPackets(const PolicyWorkload& p, size_t n) {
  std::mt19937_64 rng(3);
  std::vector<sim::PacketFields> out;
  for (size_t i = 0; i < n; ++i) {
    sim::PacketFields f;
    for (const ft::KeyField& k : p.keys) {
      const int w = ft::GetFieldInfo(k.field).width_bits;
      f.set(k.field, ft::U128::Of(rng() & sim::LowOnes(w).lo));
    }
    f.set(ft::Field::kIpProto, ft::U128::Of(rng() % 2 ? sim::kProtoTcp : sim::kProtoUdp));
    if (i % 5 != 0 && !p.entries.empty()) {
      const ft::Entry& e = p.entries[rng() % p.entries.size()];
      for (const ft::FieldMatch& m : e.match) {
        const int w = ft::GetFieldInfo(m.field).width_bits;
        uint64_t v = rng() & sim::LowOnes(w).lo;
        if (const auto* x = std::get_if<ft::ExactMatch>(&m.value)) v = x->value.lo;
        if (const auto* t = std::get_if<ft::TernaryMatch>(&m.value)) {
          v = (v & ~t->mask.lo) | t->value.lo;
        }
        if (const auto* l = std::get_if<ft::LpmMatch>(&m.value)) {
          const uint64_t mask = sim::PrefixMaskBits(w, l->prefix_len_bits).lo;
          v = (v & ~mask) | (l->value.lo & mask);
        }
        if (const auto* r = std::get_if<ft::RangeMatch>(&m.value)) {
          v = r->lo.lo + rng() % (r->hi.lo - r->lo.lo + 1);
        }
        f.set(m.field, ft::U128::Of(v));
      }
    }
    out.push_back(f);
  }
  return out;
}

// The compiled program's policy tables can be empty (no policy selects a pod on the node); then
// the benchmark builds a table of the same shape directly in the IR: 2,000 policy sets, each with
// 3 rules (peer bit x protocol x port or port range), or 2 peers per rule for the peer table.
// GCC 12 reports a false -Wmaybe-uninitialized for moving an Action variant (whose other
// alternatives hold strings) into a vector; silenced for this function only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
std::vector<ft::Entry> SyntheticPolicyEntries(const ft::TableSchema& schema) {
  std::vector<ft::Entry> out;
  std::mt19937_64 rng(11);
  const bool peer_table = std::any_of(schema.keys.begin(), schema.keys.end(), [](auto& k) {
    return k.field == ft::Field::kIpv4Src || k.field == ft::Field::kIpv4Dst;
  });
  const ft::Field set_field = schema.keys[0].field;  // meta.src_set / meta.dst_set
  for (uint32_t set = 1; set <= 2000; ++set) {
    for (uint32_t rule = 0; rule < 3; ++rule) {
      ft::Entry e;
      e.table = schema.id;
      e.priority = static_cast<int32_t>(100 - rule);
      e.match.push_back({set_field, ft::ExactMatch{ft::U128::Of(set)}});
      if (peer_table) {
        const ft::Field ip = schema.keys[1].field;
        const int len = 16 + static_cast<int>(rng() % 17);
        const uint64_t v = (0x0a000000 | (rng() & 0xffffff)) & sim::PrefixMaskBits(32, len).lo;
        e.match.push_back({ip, ft::LpmMatch{ft::U128::Of(v), len}});
        e.actions.push_back(ft::SetFieldAction{ft::Field::kMetaPeerBits, ft::U128::Of(1u << rule),
                                               ft::U128::Of(1u << rule)});
      } else {
        const bool udp = rng() % 4 == 0;
        e.match.push_back({ft::Field::kIpProto,
                           ft::TernaryMatch{ft::U128::Of(udp ? 17 : 6), ft::U128::Of(0xff)}});
        const uint64_t lo = rng() % 3 == 0 ? 8000 + rng() % 100 : 80 + rng() % 10;
        const uint64_t hi = lo >= 8000 ? lo + rng() % 50 : lo;
        e.match.push_back({ft::Field::kL4Dst, ft::RangeMatch{ft::U128::Of(lo), ft::U128::Of(hi)}});
        e.match.push_back({ft::Field::kMetaPeerBits,
                           ft::TernaryMatch{ft::U128::Of(1u << rule), ft::U128::Of(1u << rule)}});
        e.actions.push_back(ft::GotoAction{static_cast<ft::TableId>(schema.id + 1)});
      }
      ft::CanonicalizeMatch(e);
      out.push_back(std::move(e));
    }
  }
  return out;
}
#pragma GCC diagnostic pop

PolicyWorkload& GetPolicy(ft::TableId table) {
  static std::map<ft::TableId, std::unique_ptr<PolicyWorkload>> cache;
  auto& p = cache[table];
  if (p) return *p;
  p = std::make_unique<PolicyWorkload>();
  const ft::Program& prog = GetWorkload(g_policy_services).program;  // empty if it failed
  const std::vector<ft::TableSchema> standard = ft::StandardTableSchemas();
  const ft::TableSchema& schema = prog.tables.empty() ? standard[table] : prog.tables[table];
  p->table = schema.name;
  for (const ft::KeyField& k : schema.keys) {
    if (ft::GetFieldInfo(k.field).width_bits <= 32) p->keys.push_back(k);
  }
  for (const ft::Entry& e : prog.entries.empty() ? std::vector<ft::Entry>{} : prog.entries[table]) {
    const bool v4 = std::all_of(e.match.begin(), e.match.end(), [](const ft::FieldMatch& m) {
      return ft::GetFieldInfo(m.field).width_bits <= 32;
    });
    if (v4) p->entries.push_back(e);
  }
  if (p->entries.size() < 100) {
    p->entries = SyntheticPolicyEntries(schema);
    p->table += " (synthetic)";
  }
  p->tss = sim::MakeTupleSpaceClassifier(p->keys);
  for (size_t i = 0; i < p->entries.size(); ++i) {
    (void)p->tss->Insert(static_cast<uint32_t>(i), p->entries[i].priority, p->entries[i].match);
  }
  p->packets = PolicyPackets(*p, 4096);
  if (absl::Status st = InitDpdk(); !st.ok()) {
    p->acl_error = std::string(st.message());
    return *p;
  }
  auto acl = AclClassifier::Build(p->keys, p->entries);
  if (!acl.ok()) {
    p->acl_error = std::string(acl.status().message());
    return *p;
  }
  p->acl = std::move(*acl);
  p->acl->Prepare(p->packets);
  std::vector<uint32_t> got(p->packets.size());
  p->acl->Classify(got);
  for (size_t i = 0; i < got.size(); ++i) {
    p->disagreements += got[i] != p->tss->Lookup(p->packets[i]).rule;
  }
  return *p;
}

void BM_PolicyTupleSpace(benchmark::State& state) {
  PolicyWorkload& p = GetPolicy(static_cast<ft::TableId>(state.range(0)));
  size_t i = 0;
  for (auto _ : state) {
    for (size_t k = 0; k < kBurst; ++k) {
      benchmark::DoNotOptimize(p.tss->Lookup(p.packets[i]));
      if (++i == p.packets.size()) i = 0;
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kBurst));
  state.SetLabel(p.table);
}

void BM_PolicyRteAcl(benchmark::State& state) {
  PolicyWorkload& p = GetPolicy(static_cast<ft::TableId>(state.range(0)));
  if (!p.acl) {
    state.SkipWithError(("rte_acl unavailable: " + p.acl_error).c_str());
    return;
  }
  std::vector<uint32_t> out(p.packets.size());
  for (auto _ : state) {
    p.acl->Classify(out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * p.packets.size()));
  state.SetLabel(p.table);
}

// Collects items/s per benchmark name for the summary printed after the table.
class SummaryReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& r : runs) {
      auto it = r.counters.find("items_per_second");
      if (it != r.counters.end() && !r.error_occurred) rate[r.benchmark_name()] = it->second;
    }
  }
  std::map<std::string, double> rate;
};

}  // namespace
}  // namespace nicflow::bench

int main(int argc, char** argv) {
  using namespace nicflow::bench;
  std::vector<int> services = {1000, 10000, 30000};
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    if (std::strncmp(argv[i], "--services=", 11) == 0) {
      services.clear();
      for (const char* p = argv[i] + 11; *p;) {
        services.push_back(std::atoi(p));
        while (*p && *p != ',') ++p;
        if (*p == ',') ++p;
      }
    } else {
      args.push_back(argv[i]);
    }
  }
  // The policy tables of the 10,000-Service program when it is measured, else the first size.
  g_policy_services = std::find(services.begin(), services.end(), 10000) != services.end()
                          ? 10000
                          : services.front();
  int n = static_cast<int>(args.size());
  benchmark::Initialize(&n, args.data());
  for (int s : services) {
    benchmark::RegisterBenchmark("new_connections", BM_NewConnections)->Arg(s);
    benchmark::RegisterBenchmark("established", BM_Established)->Arg(s);
  }
  for (nicflow::flowtables::TableId t :
       {nicflow::flowtables::kTableIngressRule, nicflow::flowtables::kTableIngressPeer}) {
    benchmark::RegisterBenchmark("policy_tss", BM_PolicyTupleSpace)->Arg(t);
    benchmark::RegisterBenchmark("policy_rte_acl", BM_PolicyRteAcl)->Arg(t);
  }
  SummaryReporter rep;
  benchmark::RunSpecifiedBenchmarks(&rep);

  std::printf("\nsummary (one core):\n");
  for (int s : services) {
    const std::string a = "/" + std::to_string(s);
    const double nw = rep.rate["new_connections" + a], est = rep.rate["established" + a];
    if (const std::string& err = GetWorkload(s).error; !err.empty()) {
      std::printf("  %6d services: not measured: %s\n", s, err.c_str());
      continue;
    }
    std::printf(
        "  %6d services: new connections %6.2f Mpps (%5.0f ns/pkt), established %6.2f Mpps "
        "(%5.0f ns/pkt)\n",
        s, nw / 1e6, nw ? 1e9 / nw : 0, est / 1e6, est ? 1e9 / est : 0);
  }
  for (nicflow::flowtables::TableId t :
       {nicflow::flowtables::kTableIngressRule, nicflow::flowtables::kTableIngressPeer}) {
    const std::string a = "/" + std::to_string(t);
    PolicyWorkload& p = GetPolicy(t);
    const double tss = rep.rate["policy_tss" + a], acl = rep.rate["policy_rte_acl" + a];
    std::printf(
        "  policy table %s of the %d-service program (%zu IPv4 rules, %zu tuples): tuple space "
        "%.2f M lookups/s, "
        "rte_acl %.2f M lookups/s, ratio %.2f; %zu of %zu lookups disagree%s%s\n",
        p.table.c_str(), g_policy_services, p.entries.size(),
        nicflow::sim::GetTupleSpaceStats(*p.tss).tuples, tss / 1e6, acl / 1e6,
        acl ? tss / acl : 0.0, p.disagreements, p.packets.size(),
        p.acl_error.empty() ? "" : "; rte_acl: ", p.acl_error.c_str());
  }
  return 0;
}
