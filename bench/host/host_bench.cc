// Host benchmark: delta apply rate into the simulator device, end-to-end time from a changed
// manifest to the new state installed (compile + diff + transactional apply), and the rte_flow
// lowering rate, on a generated cluster (bench/clustergen). Prints figures; targets are in
// docs/performance.md ("Host and rte_flow"). Usage: host_bench [services] [changes]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "cluster_gen.h"
#include "nicflow/flowtables/compiler.h"
#include "nicflow/host/reconciler.h"
#include "nicflow/host/rteflow.h"
#include "nicflow/host/sim_device.h"

namespace {

namespace ft = ::nicflow::flowtables;
namespace host = ::nicflow::host;
using Clock = std::chrono::steady_clock;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double Percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
}

std::unique_ptr<host::SimDevice> NewDevice() {
  nicflow::sim::SimNic::Options o;
  o.conntrack_capacity = 1024;
  return std::make_unique<host::SimDevice>(*nicflow::sim::BuiltinProfile("unlimited"), o);
}

void Fail(const char* what, const absl::Status& st) {
  std::fprintf(stderr, "%s: %s\n", what, std::string(st.message()).c_str());
  std::exit(1);
}

// Every group, then every entry of `p`, as two deltas from the empty program (3 runs).
void DeltaApplyRate(const ft::Program& p) {
  ft::Program empty;
  empty.tables = p.tables;
  empty.entries.resize(p.tables.size());
  empty.ports = p.ports;
  auto delta = ft::Diff(empty, p);
  if (!delta.ok()) Fail("diff", delta.status());
  ft::Delta groups, entries;
  for (const auto& op : delta->ops) {
    const bool group = op.kind == ft::DeltaOp::Kind::kAddGroup;
    (group ? groups : entries).ops.push_back(op);
  }
  double best_groups = 0, best_entries = 0;
  for (int run = 0; run < 3; ++run) {
    auto dev = NewDevice();
    if (auto st = dev->Install(empty); !st.ok()) Fail("install", st);
    const auto t0 = Clock::now();
    if (auto st = dev->Apply(groups); !st.ok()) Fail("apply groups", st);
    const auto t1 = Clock::now();
    if (auto st = dev->Apply(entries); !st.ok()) Fail("apply entries", st);
    const auto t2 = Clock::now();
    best_groups =
        std::max(best_groups, static_cast<double>(groups.ops.size()) / (Ms(t1 - t0) / 1e3));
    best_entries =
        std::max(best_entries, static_cast<double>(entries.ops.size()) / (Ms(t2 - t1) / 1e3));
  }
  std::printf(
      "delta apply into sim device (one transaction each, best of 3): %zu entries at %.3f M "
      "entries/s (target >= 1 M/s); %zu groups at %.3f M groups/s\n",
      entries.ops.size(), best_entries / 1e6, groups.ops.size(), best_groups / 1e6);
}

// A changed EndpointSlice -> compile -> Converge, `changes` times.
void EndToEnd(nicflow::bench::GeneratedCluster& g, int changes) {
  ft::CompileOptions opts;
  opts.node_name = g.node_name;
  auto first = ft::Compile(g.state, opts);
  if (!first.ok()) Fail("compile", first.status());
  auto dev = NewDevice();
  host::Reconciler r(*dev);
  if (auto rep = r.Converge(first->program); !rep.ok()) Fail("converge", rep.status());
  std::vector<double> total, compile, converge, ops, diff, apply, installed;
  for (int i = 0; i < changes; ++i) {
    nicflow::bench::MoveOneEndpoint(g.state, static_cast<size_t>(i * 7919) % 1000, i % 3,
                                    static_cast<uint64_t>(i + 1));
    const auto t0 = Clock::now();
    auto next = ft::Compile(g.state, opts);
    if (!next.ok()) Fail("compile", next.status());
    const auto t1 = Clock::now();
    auto rep = r.Converge(std::move(next->program));
    if (!rep.ok()) Fail("converge", rep.status());
    const auto t2 = Clock::now();
    total.push_back(Ms(t2 - t0));
    compile.push_back(Ms(t1 - t0));
    converge.push_back(Ms(t2 - t1));
    ops.push_back(static_cast<double>(rep->ops_total));
    apply.push_back(static_cast<double>(rep->apply_ns) / 1e6);
    diff.push_back(static_cast<double>(rep->diff_ns) / 1e6);
    installed.push_back(Ms(t1 - t0) + static_cast<double>(rep->total_ns) / 1e6);
  }
  std::printf(
      "manifest change -> installed (%d changes): p50 %.2f ms, p90 %.2f ms (target p50 <= "
      "10 ms); of which compile p50 %.2f ms, diff+apply p50 %.3f ms, ops per change p50 "
      "%.0f\n",
      changes, Percentile(total, 0.5), Percentile(total, 0.9), Percentile(compile, 0.5),
      Percentile(converge, 0.5), Percentile(ops, 0.5));
  std::printf(
      "  new state installed (compile + read + diff + apply) p50 %.2f ms; converge p50: "
      "diff %.3f ms, apply %.3f ms; the rest of converge frees the previous program\n",
      Percentile(installed, 0.5), Percentile(diff, 0.5), Percentile(apply, 0.5));
}

void LoweringRate(const ft::Program& p) {
  host::RteFlowLowerOptions o;
  std::vector<double> rates;
  host::RteFlowLoweringStats stats;
  for (int run = 0; run < 3; ++run) {
    const auto t0 = Clock::now();
    auto s = host::LowerForStats(p, o);
    if (!s.ok()) Fail("lower", s.status());
    rates.push_back(static_cast<double>(s->rules) / (Ms(Clock::now() - t0) / 1e3));
    stats = *s;
  }
  std::printf(
      "rte_flow lowering (placement + lowering): %zu rules (%zu entry rules, %zu select "
      "bucket rules) in %zu groups from %zu IR entries: %.2f M rules/s (best of 3), "
      "%.1f MiB of rule structs\n",
      stats.rules, stats.entry_rules, stats.bucket_rules, stats.groups, p.EntryCount(),
      *std::max_element(rates.begin(), rates.end()) / 1e6,
      static_cast<double>(stats.arena_bytes) / (1 << 20));
}

}  // namespace

int main(int argc, char** argv) {
  nicflow::bench::ClusterShape shape;
  if (argc > 1) shape.services = std::atoi(argv[1]);
  const int changes = argc > 2 ? std::atoi(argv[2]) : 20;
  auto g = nicflow::bench::GenerateCluster(shape);
  std::printf("cluster: %d services x %d endpoints, %d pods, %d policies, %d nodes\n",
              shape.services, shape.endpoints_per_service, shape.pods, shape.policies, shape.nodes);
  ft::CompileOptions opts;
  opts.node_name = g.node_name;
  auto compiled = ft::Compile(g.state, opts);
  if (!compiled.ok()) Fail("compile", compiled.status());
  std::printf("program: %zu entries, %zu groups\n", compiled->program.EntryCount(),
              compiled->program.groups.size());
  DeltaApplyRate(compiled->program);
  LoweringRate(compiled->program);
  EndToEnd(g, changes);
  return 0;
}
