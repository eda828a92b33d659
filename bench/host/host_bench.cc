// Host benchmark: delta apply rate into the simulator device, end-to-end time from a changed
// manifest to the new state installed — both the full path (compile + diff + transactional
// apply) and the agent's incremental path (parse the changed EndpointSlice, incremental compile,
// Reconciler::ConvergeDelta) in the same run — and the rte_flow lowering rate, on a generated
// cluster (bench/clustergen). Prints figures; targets are in docs/performance.md ("Host and
// rte_flow"). Usage: host_bench [services] [changes]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cluster_gen.h"
#include "nicflow/flowtables/compiler.h"
#include "nicflow/flowtables/incremental.h"
#include "nicflow/flowtables/loader.h"
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

// The EndpointSlice as the API server would send it (JSON), so the incremental path pays for
// parsing the changed object like the agent does.
std::string SliceJson(const ft::EndpointSlice& s) {
  nlohmann::json j;
  j["apiVersion"] = "discovery.k8s.io/v1";
  j["kind"] = "EndpointSlice";
  j["metadata"] = {{"name", s.name},
                   {"namespace", s.ns},
                   {"labels", {{"kubernetes.io/service-name", s.service_name}}}};
  j["addressType"] = s.family == ft::IpFamily::kV6 ? "IPv6" : "IPv4";
  j["ports"] = nlohmann::json::array();
  for (const ft::EndpointPort& p : s.ports) {
    j["ports"].push_back({{"name", p.name},
                          {"port", p.port},
                          {"protocol", std::string(ft::ProtocolName(p.protocol))}});
  }
  j["endpoints"] = nlohmann::json::array();
  for (const ft::Endpoint& e : s.endpoints) {
    nlohmann::json ep;
    for (const ft::IpAddr& a : e.addresses) ep["addresses"].push_back(a.ToString());
    ep["conditions"] = {{"ready", e.ready}, {"serving", e.serving}, {"terminating", e.terminating}};
    if (!e.node_name.empty()) ep["nodeName"] = e.node_name;
    const size_t slash = e.target_pod.find('/');
    if (slash != std::string::npos) {
      ep["targetRef"] = {{"kind", "Pod"},
                         {"namespace", e.target_pod.substr(0, slash)},
                         {"name", e.target_pod.substr(slash + 1)}};
    }
    j["endpoints"].push_back(ep);
  }
  return j.dump();
}

// The agent's path for the same kind of change: the changed EndpointSlice arrives as JSON, is
// parsed, handed to the incremental compiler, and its delta pushed by Reconciler::ConvergeDelta.
void EndToEndIncremental(const nicflow::bench::GeneratedCluster& g, int changes) {
  ft::CompileOptions opts;
  opts.node_name = g.node_name;
  auto inc = ft::IncrementalCompiler::Create(g.state, opts);
  if (!inc.ok()) Fail("incremental compiler", inc.status());
  auto dev = NewDevice();
  host::Reconciler r(*dev);
  if (auto rep = r.Converge((*inc)->program()); !rep.ok()) Fail("converge", rep.status());
  std::vector<double> total, parse, compile, apply, ops;
  for (int i = 0; i < changes; ++i) {
    const ft::ClusterState& st = (*inc)->state();
    ft::EndpointSlice s =
        st.endpoint_slices[static_cast<size_t>(i) * 7 % st.endpoint_slices.size()];
    const ft::Pod& pod = st.pods[(static_cast<size_t>(i) * 7919 + 13) % st.pods.size()];
    s.endpoints.at(0).addresses = pod.ips;
    s.endpoints.at(0).node_name = pod.node_name;
    s.endpoints.at(0).target_pod = pod.ns + "/" + pod.name;
    const std::string text = SliceJson(s);
    const auto t0 = Clock::now();
    ft::ClusterState one;
    if (auto st2 = ft::LoadText(text, "watch event", {}, one); !st2.ok()) Fail("parse", st2);
    if (one.endpoint_slices.size() != 1) Fail("parse", absl::InternalError("no EndpointSlice"));
    const auto t1 = Clock::now();
    auto delta = (*inc)->Apply({ft::ObjectChange::Kind::kUpdated, one.endpoint_slices[0]});
    if (!delta.ok()) Fail("incremental apply", delta.status());
    const auto t2 = Clock::now();
    auto rep = r.ConvergeDelta(*delta, (*inc)->program().ports);
    if (!rep.ok()) Fail("converge delta", rep.status());
    const auto t3 = Clock::now();
    total.push_back(Ms(t3 - t0));
    parse.push_back(Ms(t1 - t0));
    compile.push_back(Ms(t2 - t1));
    apply.push_back(Ms(t3 - t2));
    ops.push_back(static_cast<double>(delta->ops.size()));
  }
  // The device must hold exactly what the incremental compiler says it should.
  auto back = dev->ReadBack();
  auto check = back.ok() ? ft::Diff(*back, (*inc)->program()) : back.status();
  if (!check.ok() || !check->empty()) {
    Fail("verify", absl::InternalError("device differs from the incremental program"));
  }
  std::printf(
      "incremental path, EndpointSlice change -> installed (%d changes): p50 %.3f ms, p90 %.3f "
      "ms, p99 %.3f ms (target p50 <= 10 ms); of which parse p50 %.3f ms, incremental compile "
      "p50 %.3f ms, ConvergeDelta p50 %.3f ms, ops per change p50 %.0f max %.0f; device "
      "verified equal to the incremental program\n",
      changes, Percentile(total, 0.5), Percentile(total, 0.9), Percentile(total, 0.99),
      Percentile(parse, 0.5), Percentile(compile, 0.5), Percentile(apply, 0.5),
      Percentile(ops, 0.5), *std::max_element(ops.begin(), ops.end()));
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
  EndToEndIncremental(g, std::max(changes, 200));
  return 0;
}
