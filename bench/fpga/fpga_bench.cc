// FPGA backend benchmark (figures in docs/performance.md, "FPGA").
//
// One generated cluster, compiled for one node, installed both in the simulator and in the FPGA
// pipeline (PoCL: the kernel runs on the CPU cores). The same frames go through both:
//   * established: connections committed in a warm-up pass, then measured (conntrack hits);
//   * new: every packet opens a connection (full pipeline, and the host slow path commits it).
// The ratio FPGA/simulator is printed at the end (target >= 0.5). Then the image update time for
// a one-endpoint change (encode + write the changed words + flip), alternating between the two
// programs. Sizes: NICFLOW_FPGA_BENCH_SERVICES (default 500); NICFLOW_FPGA_BENCH_NO_COMMIT_LOG=1
// writes the connection table one transfer per record (no nf_ct_scatter), for a before/after.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>

#include "cluster_gen.h"
#include "nicflow/flowtables/compiler.h"
#include "nicflow/hw/fpga_pipeline.h"
#include "nicflow/sim/device.h"
#include "nicflow/sim/packet.h"

namespace nicflow {
namespace {

namespace ft = flowtables;

constexpr size_t kBatch = 2048;
std::map<std::string, double> g_rate;  // benchmark name -> packets/s (for the ratio)

struct World {
  bench::GeneratedCluster cluster;
  ft::Program program;
  ft::Program moved;  // one endpoint moved
  std::unique_ptr<sim::SimNic> sim;
  std::unique_ptr<hw::FpgaPipeline> fpga;
  std::vector<ft::IpAddr> pods, vips;
  std::vector<uint16_t> vip_ports;
};

World& GetWorld() {
  static World* w = [] {
    auto* x = new World;
    bench::ClusterShape shape;
    const char* env = std::getenv("NICFLOW_FPGA_BENCH_SERVICES");
    shape.services = env ? std::atoi(env) : 500;
    shape.endpoints_per_service = 5;
    shape.pods = shape.services * 2;
    shape.namespaces = 20;
    shape.policies = shape.services / 5;
    shape.nodes = 10;
    x->cluster = bench::GenerateCluster(shape);
    ft::CompileOptions o;
    o.node_name = x->cluster.node_name;
    x->program = ft::Compile(x->cluster.state, o)->program;
    ft::ClusterState moved = x->cluster.state;
    bench::MoveOneEndpoint(moved, 0, 0, 7);
    x->moved = ft::Compile(moved, o)->program;
    x->sim = sim::SimNic::Create(*sim::BuiltinProfile("unlimited"));
    if (!x->sim->Install(x->program).ok()) std::abort();
    hw::FpgaOptions fo;
    fo.geometry.tcam_rows_per_table = 4096;
    fo.geometry.hash_buckets_per_table = 4096;
    fo.geometry.lpm_buckets_per_table = 1024;
    fo.geometry.action_slots = 1u << 16;
    fo.geometry.group_capacity = 8192;
    fo.geometry.maglev_words = 1u << 22;
    // =1: connection-table writes one transfer each (the driver before the commit log).
    const char* no_log = std::getenv("NICFLOW_FPGA_BENCH_NO_COMMIT_LOG");
    fo.selector.ct_scatter_kernel = !(no_log && no_log[0] == '1');
    auto f = hw::FpgaPipeline::Create(fo);
    if (!f.ok()) {
      std::fprintf(stderr, "fpga: %s\n", std::string(f.status().message()).c_str());
      std::abort();
    }
    x->fpga = std::move(*f);
    if (absl::Status st = x->fpga->Install(x->program); !st.ok()) {
      std::fprintf(stderr, "fpga install: %s\n", std::string(st.message()).c_str());
      std::abort();
    }
    for (const auto& port : x->sim->ports()) {
      if (port.ref.kind == ft::PortRef::Kind::kPod) {
        for (const auto& ip : port.ips) {
          if (ip.is_v4()) x->pods.push_back(ip);
        }
      }
    }
    for (const auto& svc : x->cluster.state.services) {
      for (const auto& ip : svc.cluster_ips) {
        if (!ip.is_v4() || svc.ports.empty()) continue;
        x->vips.push_back(ip);
        x->vip_ports.push_back(svc.ports[0].port);
      }
    }
    std::fprintf(stderr, "fpga_bench: %zu entries, %zu groups, %zu local pods, %zu VIPs on %s\n",
                 x->program.EntryCount(), x->program.groups.size(), x->pods.size(), x->vips.size(),
                 x->fpga->device().device.c_str());
    return x;
  }();
  return *w;
}

// Pod -> Service VIP frames; `salt` makes the source ports (so the connections) distinct.
std::vector<sim::PacketSpec> Flows(World& w, size_t n, uint32_t salt) {
  std::mt19937 rng(1234 + salt);
  std::vector<sim::PacketSpec> out;
  for (size_t i = 0; i < n; ++i) {
    sim::PacketSpec s;
    s.proto = sim::kProtoTcp;
    s.src = w.pods[rng() % w.pods.size()];
    const size_t v = rng() % w.vips.size();
    s.dst = w.vips[v];
    s.dst_port = w.vip_ports[v];
    s.src_port = static_cast<uint16_t>(1024 + (salt * kBatch + i) % 64000);
    s.payload_len = 64;
    out.push_back(s);
  }
  return out;
}

struct Frames {
  std::vector<std::vector<uint8_t>> bytes;
  std::vector<sim::PortId> in;
};
Frames Build(World& w, const std::vector<sim::PacketSpec>& specs, uint8_t flags) {
  Frames f;
  for (sim::PacketSpec s : specs) {
    s.tcp_flags = flags;
    f.bytes.push_back(*sim::BuildPacket(s));
    sim::PortId port = sim::kUplinkPort;
    for (const auto& p : w.sim->ports()) {
      for (const auto& ip : p.ips) {
        if (ip == s.src) port = p.id;
      }
    }
    f.in.push_back(port);
  }
  return f;
}

void RunSim(World& w, const Frames& f, sim::PacketBatch& b) {
  b.Clear();
  for (size_t i = 0; i < f.bytes.size(); ++i) b.Add(f.bytes[i], f.in[i]);
  w.sim->ProcessBatch(b);
}

void RunFpga(World& w, const Frames& f, std::vector<hw::FpgaPacket>& pk) {
  pk.resize(f.bytes.size());
  for (size_t i = 0; i < f.bytes.size(); ++i) {
    pk[i].frame = f.bytes[i];
    pk[i].in_port = f.in[i];
    pk[i].port_class = static_cast<uint8_t>(w.sim->ports()[f.in[i]].port_class);
  }
  if (!w.fpga->ProcessBatch(pk).ok()) std::abort();
}

void Report(benchmark::State& st, const char* name) {
  st.SetItemsProcessed(static_cast<int64_t>(st.iterations() * kBatch));
  st.counters["pps"] = benchmark::Counter(static_cast<double>(st.iterations() * kBatch),
                                          benchmark::Counter::kIsRate);
  (void)name;
}

void BM_Established(benchmark::State& st) {
  World& w = GetWorld();
  const bool fpga = st.range(0) == 1;
  const auto specs = Flows(w, kBatch, 1);
  const Frames syn = Build(w, specs, sim::kTcpSyn);
  const Frames ack = Build(w, specs, sim::kTcpAck);
  sim::PacketBatch b(kBatch);
  std::vector<hw::FpgaPacket> pk;
  fpga ? RunFpga(w, syn, pk) : RunSim(w, syn, b);  // commit the connections
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : st) fpga ? RunFpga(w, ack, pk) : RunSim(w, ack, b);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  g_rate[fpga ? "fpga/established" : "sim/established"] = st.iterations() * kBatch / s;
  Report(st, "established");
}

void BM_NewConnections(benchmark::State& st) {
  World& w = GetWorld();
  const bool fpga = st.range(0) == 1;
  std::vector<Frames> batches;
  for (uint32_t i = 0; i < 8; ++i) {
    batches.push_back(Build(w, Flows(w, kBatch, 100 + i + (fpga ? 50 : 0)), sim::kTcpSyn));
  }
  sim::PacketBatch b(kBatch);
  std::vector<hw::FpgaPacket> pk;
  size_t i = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : st) {
    const Frames& f = batches[i++ % batches.size()];
    fpga ? RunFpga(w, f, pk) : RunSim(w, f, b);
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  g_rate[fpga ? "fpga/new" : "sim/new"] = st.iterations() * kBatch / s;
  Report(st, "new");
}

// The kernel alone (launch, transfers, kernel; no host slow path or result decoding) on the
// established frames: what the device itself sustains.
void BM_KernelOnlyEstablished(benchmark::State& st) {
  World& w = GetWorld();
  const auto specs = Flows(w, kBatch, 1);
  const Frames syn = Build(w, specs, sim::kTcpSyn);
  const Frames ack = Build(w, specs, sim::kTcpAck);
  std::vector<hw::FpgaPacket> pk;
  RunFpga(w, syn, pk);
  std::vector<hw::BatchFrame> frames;
  for (size_t i = 0; i < ack.bytes.size(); ++i) {
    frames.push_back(
        {ack.bytes[i], ack.in[i], static_cast<uint8_t>(w.sim->ports()[ack.in[i]].port_class)});
  }
  hw::BatchOutput out;
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : st) {
    if (!w.fpga->runtime().Run(frames, 2'000'000'000ull, out).ok()) std::abort();
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  g_rate["kernel/established"] = st.iterations() * kBatch / s;
  Report(st, "kernel");
}

// Image update for a one-endpoint change: TableImage::Apply + the changed words + the flip.
void BM_FpgaOneEndpointUpdate(benchmark::State& st) {
  World& w = GetWorld();
  const ft::Delta there = *ft::Diff(w.program, w.moved);
  const ft::Delta back = *ft::Diff(w.moved, w.program);
  bool at_moved = false;
  for (auto _ : st) {
    if (!w.fpga->Apply(at_moved ? back : there).ok()) std::abort();
    at_moved = !at_moved;
  }
  if (at_moved && !w.fpga->Apply(back).ok()) std::abort();
  st.counters["delta_ops"] = static_cast<double>(there.ops.size());
}

void BM_SimOneEndpointUpdate(benchmark::State& st) {
  World& w = GetWorld();
  const ft::Delta there = *ft::Diff(w.program, w.moved);
  const ft::Delta back = *ft::Diff(w.moved, w.program);
  bool at_moved = false;
  for (auto _ : st) {
    if (!w.sim->Apply(at_moved ? back : there).ok()) std::abort();
    at_moved = !at_moved;
  }
  if (at_moved && !w.sim->Apply(back).ok()) std::abort();
}

BENCHMARK(BM_Established)->Arg(0)->Arg(1)->ArgName("fpga")->Iterations(20)->UseRealTime();
BENCHMARK(BM_KernelOnlyEstablished)->Iterations(20)->UseRealTime();
BENCHMARK(BM_NewConnections)->Arg(0)->Arg(1)->ArgName("fpga")->Iterations(8)->UseRealTime();
BENCHMARK(BM_FpgaOneEndpointUpdate)->Unit(benchmark::kMicrosecond)->Iterations(50);
BENCHMARK(BM_SimOneEndpointUpdate)->Unit(benchmark::kMicrosecond)->Iterations(50);

}  // namespace
}  // namespace nicflow

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  using nicflow::g_rate;
  for (const char* kind : {"established", "new"}) {
    const std::string s = std::string("sim/") + kind, f = std::string("fpga/") + kind;
    if (g_rate.count(s) && g_rate.count(f)) {
      std::printf(
          "%-12s sim %10.0f pps  fpga(kernel on %s) %10.0f pps  ratio %.2fx (target >= 0.5)\n",
          kind, g_rate[s], "OpenCL", g_rate[f], g_rate[f] / g_rate[s]);
    }
  }
  if (g_rate.count("sim/established") && g_rate.count("kernel/established")) {
    std::printf("kernel only (established) %10.0f pps  ratio %.2fx vs the simulator\n",
                g_rate["kernel/established"],
                g_rate["kernel/established"] / g_rate["sim/established"]);
  }
  return 0;
}
