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
#include "nicflow/flowtables/incremental.h"
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

double Percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
}

using nicflow::flowtables::ClusterObject;
using nicflow::flowtables::IncrementalCompiler;
using nicflow::flowtables::ObjectChange;

// Applies `changes` one by one; prints p50/p99 time and the largest op count.
template <typename MakeChange>
double MeasureIncremental(IncrementalCompiler& inc, const char* what, int changes,
                          MakeChange make) {
  std::vector<double> ms;
  size_t max_ops = 0, total_ops = 0;
  const auto fulls_before = inc.stats().full_recompiles;
  for (int i = 0; i < changes; ++i) {
    ObjectChange c = make(inc.state(), i);
    auto t0 = Clock::now();
    auto d = inc.Apply(c);
    ms.push_back(Ms(Clock::now() - t0));
    if (!d.ok()) {
      std::fprintf(stderr, "%s: %s\n", what, std::string(d.status().message()).c_str());
      std::exit(1);
    }
    max_ops = std::max(max_ops, d->ops.size());
    total_ops += d->ops.size();
  }
  std::printf(
      "incremental %-22s p50 %.3f ms, p99 %.3f ms over %d changes; ops max %zu, mean %.1f; "
      "full recompiles %llu\n",
      what, Percentile(ms, 0.5), Percentile(ms, 0.99), changes, max_ops,
      static_cast<double>(total_ops) / changes,
      static_cast<unsigned long long>(inc.stats().full_recompiles - fulls_before));
  return Percentile(ms, 0.5);
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

  // The incremental compiler, on the same cluster in the same run.
  auto t0 = Clock::now();
  auto inc = IncrementalCompiler::Create(g.state, opts);
  if (!inc.ok()) {
    std::fprintf(stderr, "incremental: %s\n", std::string(inc.status().message()).c_str());
    return 1;
  }
  std::printf(
      "incremental compiler: created in %.1f ms (full compile + unit index), peak RSS %ld MiB\n",
      Ms(Clock::now() - t0), PeakRssMiB());
  const double full_path = Median(recompile_ms) + Median(diff_ms);
  const double ep = MeasureIncremental(
      **inc, "one-endpoint change", 1000, [](const nicflow::flowtables::ClusterState& st, int i) {
        nicflow::flowtables::EndpointSlice s =
            st.endpoint_slices[static_cast<size_t>(i) * 7 % st.endpoint_slices.size()];
        const auto& pod = st.pods[(static_cast<size_t>(i) * 7919 + 13) % st.pods.size()];
        s.endpoints.at(0).addresses = pod.ips;
        s.endpoints.at(0).node_name = pod.node_name;
        s.endpoints.at(0).target_pod = pod.ns + "/" + pod.name;
        return ObjectChange{ObjectChange::Kind::kUpdated, ClusterObject{s}};
      });
  const double pod = MeasureIncremental(
      **inc, "pod label change", 200, [&](const nicflow::flowtables::ClusterState& st, int i) {
        // Every other change relabels a pod on the compiled node (policy sets move).
        size_t idx = static_cast<size_t>(i) * 101 % st.pods.size();
        if (i % 2 == 0) {
          for (size_t k = 0; k < st.pods.size(); ++k) {
            const size_t j = (idx + k) % st.pods.size();
            if (st.pods[j].node_name == g.node_name) {
              idx = j;
              break;
            }
          }
        }
        nicflow::flowtables::Pod moved = st.pods[idx];
        moved.labels["app"] = "app-" + std::to_string((i * 37) % 500);
        return ObjectChange{ObjectChange::Kind::kUpdated, ClusterObject{moved}};
      });
  const double pol = MeasureIncremental(
      **inc, "policy change", 100, [](const nicflow::flowtables::ClusterState& st, int i) {
        nicflow::flowtables::NetworkPolicy changed =
            st.network_policies[static_cast<size_t>(i) * 13 % st.network_policies.size()];
        changed.pod_selector.match_labels["app"] = "app-" + std::to_string((i * 53) % 500);
        return ObjectChange{ObjectChange::Kind::kUpdated, ClusterObject{changed}};
      });
  std::printf(
      "full recompile + diff %.1f ms vs incremental p50: endpoint %.3f ms (%.0fx), pod label "
      "%.3f ms (%.0fx), policy %.3f ms (%.0fx)\n",
      full_path, ep, full_path / ep, pod, full_path / pod, pol, full_path / pol);
  std::printf("peak RSS at the end %ld MiB\n", PeakRssMiB());
  return 0;
}
