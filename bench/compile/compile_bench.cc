// Compile benchmark: full compile time, peak RSS, entries per table, and the delta for one
// EndpointSlice change, on a generated cluster (bench/clustergen). Prints figures; targets are in
// docs/performance.md. Usage: compile_bench [services] [pods] [policies] [nodes]
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "cluster_gen.h"
#include "nicflow/flowtables/compiler.h"
#include "nicflow/flowtables/pipeline.h"

namespace {

using Clock = std::chrono::steady_clock;
using nicflow::flowtables::Compile;
using nicflow::flowtables::CompileOptions;
using nicflow::flowtables::CompileResult;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

long PeakRssMiB() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  nicflow::bench::ClusterShape shape;
  if (argc > 1) shape.services = std::atoi(argv[1]);
  if (argc > 2) shape.pods = std::atoi(argv[2]);
  if (argc > 3) shape.policies = std::atoi(argv[3]);
  if (argc > 4) shape.nodes = std::atoi(argv[4]);
  auto g = nicflow::bench::GenerateCluster(shape);
  std::printf(
      "cluster: %d services x %d endpoints, %d pods, %d namespaces, %d policies, %d nodes\n",
      shape.services, shape.endpoints_per_service, shape.pods, shape.namespaces, shape.policies,
      shape.nodes);
  long rss_before = PeakRssMiB();
  CompileOptions opts;
  opts.node_name = g.node_name;

  std::vector<double> full_ms;
  CompileResult result;
  for (int run = 0; run < 3; ++run) {
    auto t0 = Clock::now();
    auto r = Compile(g.state, opts);
    full_ms.push_back(Ms(Clock::now() - t0));
    if (!r.ok()) {
      std::fprintf(stderr, "compile failed: %s\n", std::string(r.status().message()).c_str());
      return 1;
    }
    result = std::move(*r);
  }
  const auto& p = result.program;
  std::printf("full compile: %.1f ms (median of 3), peak RSS %ld MiB (%ld MiB before compiling)\n",
              Median(full_ms), PeakRssMiB(), rss_before);
  std::printf("entries: %zu total, %zu groups\n", p.EntryCount(), p.groups.size());
  size_t policy_entries = 0;
  for (const auto& t : p.tables) {
    std::printf("  %-13s %8zu\n", t.name.c_str(), p.entries[t.id].size());
    if (t.id >= nicflow::flowtables::kTableEgressPod &&
        t.id <= nicflow::flowtables::kTableIngressRule) {
      policy_entries += p.entries[t.id].size();
    }
  }
  double bound = 1.5 * (g.peers + g.ports + g.rules);
  std::printf("policy entries: %zu; peers+ports+rules = %d+%d+%d; ratio to the 1.5x bound %.2f\n",
              policy_entries, g.peers, g.ports, g.rules, policy_entries / bound);

  // One endpoint moves: recompile and diff (the full path), several times.
  std::vector<double> recompile_ms, diff_ms;
  std::vector<size_t> ops;
  for (int i = 0; i < 5; ++i) {
    auto state = g.state;
    nicflow::bench::MoveOneEndpoint(state,
                                    static_cast<size_t>(i * 37) % state.endpoint_slices.size(), 0,
                                    static_cast<uint64_t>(i + 1));
    auto t0 = Clock::now();
    auto r = Compile(state, opts);
    auto t1 = Clock::now();
    auto d = nicflow::flowtables::Diff(p, r->program);
    auto t2 = Clock::now();
    recompile_ms.push_back(Ms(t1 - t0));
    diff_ms.push_back(Ms(t2 - t1));
    ops.push_back(d->ops.size());
  }
  std::printf("one-endpoint change: recompile %.1f ms + diff %.1f ms (medians), delta ops:",
              Median(recompile_ms), Median(diff_ms));
  for (size_t n : ops) std::printf(" %zu", n);
  std::printf("\n");
  return 0;
}
