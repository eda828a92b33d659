// Every conformance scenario (examples/*/scenarios.yaml and tests/conformance/scenarios/*.yaml),
// compiled, placed for rte_flow, lowered to rte_flow rule arrays and executed in RteFlowSim (punts
// finished by the simulator), gives every packet and probe the same fate as the program run
// directly in the simulator.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nicflow/flowtables/compiler.h"
#include "nicflow/flowtables/scenario.h"
#include "nicflow/host/rteflow.h"
#include "nicflow/host/software_path.h"

namespace nicflow::host {
namespace {

namespace ft = ::nicflow::flowtables;
namespace fs = std::filesystem;

std::vector<std::string> ScenarioFiles() {
  const std::string root = NICFLOW_SOURCE_DIR;
  std::vector<std::string> files = {root + "/examples/shop/scenarios.yaml",
                                    root + "/examples/netpol/scenarios.yaml"};
  std::vector<std::string> more;
  if (fs::is_directory(root + "/tests/conformance/scenarios")) {
    for (const auto& e : fs::directory_iterator(root + "/tests/conformance/scenarios")) {
      if (e.path().extension() == ".yaml") more.push_back(e.path().string());
    }
  }
  std::sort(more.begin(), more.end());
  files.insert(files.end(), more.begin(), more.end());
  return files;
}

bool IsNetpolFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  static const std::regex kProbes(R"((^|\n)\s*(- )?probes:)");
  return std::regex_search(ss.str(), kProbes);
}

std::vector<std::string> Sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

// The runner's entry-port rule: a node IP is the host, a local pod's IP its VF, else the uplink.
sim::PortId EntryPort(const sim::SimNic& nic, const ft::IpAddr& src,
                      const std::optional<std::string>& in_port) {
  if (in_port == "host") return sim::kHostPort;
  if (in_port == "uplink") return sim::kUplinkPort;
  for (const sim::PortInfo& p : nic.ports()) {
    if (std::find(p.ips.begin(), p.ips.end(), src) != p.ips.end()) return p.id;
  }
  return sim::kUplinkPort;
}

struct Counts {
  size_t packets = 0;
  size_t punted = 0;
};

void ExpectSameFate(const ft::Program& p, sim::SimNic& nic, sim::TraceRequest req,
                    const std::string& what, Counts& counts) {
  auto direct = nic.Trace(req);
  ASSERT_TRUE(direct.ok()) << what << ": " << direct.status();
  auto lowered = TraceRteFlow(p, req);
  ASSERT_TRUE(lowered.ok()) << what << ": " << lowered.status();
  ++counts.packets;
  for (const auto& path : lowered->paths) counts.punted += path.punted;
  EXPECT_EQ(lowered->verdict, std::string(sim::VerdictName(direct->verdict))) << what;
  EXPECT_EQ(Sorted(lowered->destinations), Sorted(direct->destinations)) << what;
  EXPECT_EQ(Sorted(lowered->out_ports), Sorted(direct->out_ports)) << what;
  EXPECT_EQ(lowered->masquerade, direct->masquerade) << what;
  if (::testing::Test::HasFailure()) std::cerr << lowered->ToText();
}

uint8_t ProtoOf(ft::Protocol p) { return static_cast<uint8_t>(p); }

void RunServiceFile(const std::string& file, Counts& counts) {
  auto scenarios = ft::LoadServiceScenarios(file);
  ASSERT_TRUE(scenarios.ok()) << scenarios.status();
  for (const auto& sc : *scenarios) {
    ft::CompileOptions opts;
    opts.node_name = sc.node_name;
    auto compiled = ft::Compile(sc.state, opts);
    ASSERT_TRUE(compiled.ok()) << file << ": " << sc.name << ": " << compiled.status();
    SoftwarePath sw(compiled->program);
    auto nic = sw.Plain();
    ASSERT_TRUE(nic.ok()) << nic.status();
    for (const auto& pkt : sc.packets) {
      sim::TraceRequest req;
      req.proto = ProtoOf(pkt.proto);
      req.src = pkt.src;
      req.src_port = 40000;
      req.dst = pkt.dst;
      req.dst_port = pkt.dst_port;
      req.in_port = pkt.in_port == "host"     ? sim::kHostPort
                    : pkt.in_port == "uplink" ? sim::kUplinkPort
                                              : EntryPort(**nic, pkt.src, std::nullopt);
      if (pkt.in_port == "pod" && req.in_port < 2) continue;  // a pod that is not local
      ExpectSameFate(compiled->program, **nic, req,
                     absl::StrCat(file, ": ", sc.name, ": ", pkt.name), counts);
    }
  }
}

void RunNetpolFile(const std::string& file, Counts& counts) {
  auto scenarios = ft::LoadNetpolScenarios(file);
  ASSERT_TRUE(scenarios.ok()) << scenarios.status();
  for (const auto& sc : *scenarios) {
    ft::CompileOptions opts;
    opts.node_name = std::string(ft::kNetpolNodeName);
    auto compiled = ft::Compile(ft::NetpolScenarioToClusterState(sc), opts);
    ASSERT_TRUE(compiled.ok()) << file << ": " << sc.name << ": " << compiled.status();
    SoftwarePath sw(compiled->program);
    auto nic = sw.Plain();
    ASSERT_TRUE(nic.ok()) << nic.status();
    std::map<std::string, ft::IpAddr> ip_of;
    for (const auto& pod : sc.pods) ip_of[pod.ns + "/" + pod.name] = pod.ip;
    for (const auto& probe : sc.probes) {
      std::vector<std::pair<std::string, std::string>> pairs = probe.allowed;
      pairs.insert(pairs.end(), probe.denied.begin(), probe.denied.end());
      for (const auto& [from, to] : pairs) {
        sim::TraceRequest req;
        req.proto = ProtoOf(probe.proto);
        req.src = ip_of.at(from);
        req.src_port = 40000;
        req.dst = ip_of.at(to);
        req.dst_port = probe.port;
        req.in_port = EntryPort(**nic, req.src, std::nullopt);
        ExpectSameFate(compiled->program, **nic, req,
                       absl::StrCat(file, ": ", sc.name, ": ", from, " -> ", to, "/", probe.port),
                       counts);
      }
    }
  }
}

TEST(RteFlowConformance, EveryScenarioHasTheSameFatesThroughRteFlowAsInTheSimulator) {
  Counts counts;
  size_t files = 0;
  for (const std::string& file : ScenarioFiles()) {
    if (!fs::exists(file)) continue;
    SCOPED_TRACE(file);
    ++files;
    if (IsNetpolFile(file)) {
      RunNetpolFile(file, counts);
    } else {
      RunServiceFile(file, counts);
    }
  }
  EXPECT_GE(files, 2u);
  EXPECT_GT(counts.packets, 50u);
  std::cout << "[ rteflow ] " << files << " scenario files, " << counts.packets
            << " packets/probes, " << counts.punted << " paths finished in software\n";
}

}  // namespace
}  // namespace nicflow::host
