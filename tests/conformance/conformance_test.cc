// Conformance runner: reads every scenario file — examples/shop/scenarios.yaml,
// examples/netpol/scenarios.yaml and tests/conformance/scenarios/*.yaml — in the formats of
// examples/README.md, compiles each scenario's cluster for its node, and traces every packet and
// probe with the same code `nicflow trace --target T` runs, on every target: the simulator, the
// rte_flow lowering (RteFlowSim, punts finished in software) and the FPGA kernel (PoCL). One
// test per scenario and target (`<file>.<scenario>` on the simulator, `<file>_on_rteflow` and
// `<file>_on_fpga` suites for the others); a failure names the target, file, scenario and packet
// and shows the trace. A scenario's packets are traced in one TraceAll call, which the FPGA runs
// as a few kernel launches.
//
// NICFLOW_SCENARIOS (colon-separated paths) replaces the default file list.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "nicflow/flowtables/compiler.h"
#include "nicflow/flowtables/scenario.h"
#include "packet_trace.h"

namespace nicflow {
namespace {

namespace fs = std::filesystem;
using flowtables::ExpectedVerdict;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool IsNetpolFile(const std::string& path) {
  static const std::regex kProbes(R"((^|\n)\s*(- )?probes:)");
  return std::regex_search(ReadFile(path), kProbes);
}

std::vector<std::string> ScenarioFiles() {
  std::vector<std::string> files;
  if (const char* env = std::getenv("NICFLOW_SCENARIOS"); env != nullptr && *env != '\0') {
    std::stringstream ss(env);
    for (std::string f; std::getline(ss, f, ':');) files.push_back(f);
    return files;
  }
  std::string root = NICFLOW_SOURCE_DIR;
  files.push_back(root + "/examples/shop/scenarios.yaml");
  files.push_back(root + "/examples/netpol/scenarios.yaml");
  std::vector<std::string> own;
  fs::path dir = root + "/tests/conformance/scenarios";
  if (fs::is_directory(dir)) {
    for (const auto& e : fs::directory_iterator(dir)) {
      if (e.path().extension() == ".yaml" || e.path().extension() == ".yml") {
        own.push_back(e.path().string());
      }
    }
  }
  std::sort(own.begin(), own.end());
  files.insert(files.end(), own.begin(), own.end());
  return files;
}

std::string TestName(std::string s) {
  for (char& c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return s;
}

std::string Describe(const cli::TraceReport& r) { return cli::TraceReportToJson(r).dump(2); }

// Checks one traced packet against the scenario's expectation; "" when it matches.
std::string CheckPacket(const flowtables::ScenarioPacket& p, const cli::TraceReport& r) {
  std::vector<std::string> problems;
  auto want_verdict = [&](const char* v) {
    if (r.verdict != v) problems.push_back("verdict " + r.verdict + ", want " + v);
  };
  switch (p.verdict) {
    case ExpectedVerdict::kDrop:
      want_verdict("drop");
      break;
    case ExpectedVerdict::kReject:
      want_verdict("reject");
      break;
    case ExpectedVerdict::kForward:
      want_verdict("forward");
      if (r.translated) problems.push_back("translated, want untouched");
      break;
    case ExpectedVerdict::kDnat: {
      want_verdict("forward");
      std::set<std::string> want, got(r.destinations.begin(), r.destinations.end());
      for (const auto& [ip, port] : p.endpoints) want.insert(flowtables::FormatEndpoint(ip, port));
      if (want != got) {
        std::string w, g;
        for (const auto& s : want) w += s + " ";
        for (const auto& s : got) g += s + " ";
        problems.push_back("destinations {" + g + "}, want {" + w + "}");
      }
      break;
    }
  }
  if (r.masquerade != p.masq) {
    problems.push_back(std::string("masquerade ") + (r.masquerade ? "true" : "false") + ", want " +
                       (p.masq ? "true" : "false"));
  }
  std::string out;
  for (const auto& s : problems) out += (out.empty() ? "" : "; ") + s;
  return out;
}

void RunServiceScenario(const flowtables::ServiceScenario& sc, cli::Target target) {
  const std::string on(cli::TargetName(target));
  flowtables::CompileOptions opts;
  opts.node_name = sc.node_name;
  auto compiled = flowtables::Compile(sc.state, opts);
  ASSERT_TRUE(compiled.ok()) << sc.source.file << ": scenario \"" << sc.name
                             << "\" does not compile: " << compiled.status();
  auto tracer = cli::CreateTracer(target, *compiled);
  ASSERT_TRUE(tracer.ok()) << on << ": " << tracer.status();
  std::vector<cli::TraceRequest> reqs;
  for (const auto& p : sc.packets) {
    cli::TraceRequest req;
    req.proto = p.proto;
    req.src = p.src;
    req.dst = p.dst;
    req.dst_port = p.dst_port;
    if (p.in_port) {
      auto port = cli::ParseInPort(*p.in_port);
      ASSERT_TRUE(port.ok()) << port.status();
      req.in_port = *port;
    }
    reqs.push_back(req);
  }
  auto reports = (*tracer)->TraceAll(reqs);
  ASSERT_TRUE(reports.ok()) << on << ": " << reports.status();
  for (size_t i = 0; i < sc.packets.size(); ++i) {
    const auto& p = sc.packets[i];
    std::string problem = CheckPacket(p, (*reports)[i]);
    EXPECT_EQ(problem, "") << on << ": " << sc.source.file << ": scenario \"" << sc.name
                           << "\", packet \"" << p.name << "\" (expect \"" << p.expect
                           << "\", masq " << (p.masq ? "true" : "false") << ")\n"
                           << Describe((*reports)[i]);
  }
}

void RunNetpolScenario(const flowtables::NetpolScenario& sc, cli::Target target) {
  const std::string on(cli::TargetName(target));
  flowtables::ClusterState state = flowtables::NetpolScenarioToClusterState(sc);
  flowtables::CompileOptions opts;
  opts.node_name = std::string(flowtables::kNetpolNodeName);
  auto compiled = flowtables::Compile(state, opts);
  ASSERT_TRUE(compiled.ok()) << sc.source.file << ": scenario \"" << sc.name
                             << "\" does not compile: " << compiled.status();
  auto tracer = cli::CreateTracer(target, *compiled);
  ASSERT_TRUE(tracer.ok()) << on << ": " << tracer.status();
  std::map<std::string, flowtables::IpAddr> ip_of;
  for (const auto& pod : sc.pods) ip_of[pod.ns + "/" + pod.name] = pod.ip;
  struct Probe {
    std::string what;
    bool want_allowed;
  };
  std::vector<cli::TraceRequest> reqs;
  std::vector<Probe> probes;
  for (const auto& probe : sc.probes) {
    auto add = [&](const std::pair<std::string, std::string>& pair, bool want_allowed) {
      cli::TraceRequest req;
      req.proto = probe.proto;
      req.src = ip_of.at(pair.first);
      req.dst = ip_of.at(pair.second);
      req.dst_port = probe.port;
      reqs.push_back(req);
      probes.push_back({pair.first + " -> " + pair.second + " " +
                            std::string(flowtables::ProtocolName(probe.proto)) + "/" +
                            std::to_string(probe.port),
                        want_allowed});
    };
    for (const auto& pair : probe.allowed) add(pair, true);
    for (const auto& pair : probe.denied) add(pair, false);
  }
  auto reports = (*tracer)->TraceAll(reqs);
  ASSERT_TRUE(reports.ok()) << on << ": " << reports.status();
  for (size_t i = 0; i < probes.size(); ++i) {
    const bool allowed = (*reports)[i].verdict == "forward";
    EXPECT_EQ(allowed, probes[i].want_allowed)
        << on << ": " << sc.source.file << ": scenario \"" << sc.name << "\": " << probes[i].what
        << " must be " << (probes[i].want_allowed ? "allowed" : "denied") << "\n"
        << Describe((*reports)[i]);
  }
}

class ScenarioTest : public testing::Test {
 public:
  explicit ScenarioTest(std::function<void()> body) : body_(std::move(body)) {}
  void TestBody() override { body_(); }

 private:
  std::function<void()> body_;
};

// A file that fails to parse still registers a test, so the failure is visible, not skipped.
void RegisterLoadFailure(const std::string& suite, const std::string& file,
                         const absl::Status& st) {
  std::string message = file + ": " + std::string(st.message());
  testing::RegisterTest(
      suite.c_str(), "LoadsFile", nullptr, nullptr, file.c_str(), 0,
      [message]() -> testing::Test* { return new ScenarioTest([message] { FAIL() << message; }); });
}

// Scenario names become test names; a repeated name gets its index appended.
std::string UniqueName(std::set<std::string>& used, const std::string& name, size_t index) {
  std::string n = TestName(name);
  if (!used.insert(n).second) {
    n += "_" + std::to_string(index);
    used.insert(n);
  }
  return n;
}

void RegisterScenarios(cli::Target target) {
  const std::string on =
      target == cli::Target::kSim ? "" : "_on_" + std::string(cli::TargetName(target));
  for (const std::string& file : ScenarioFiles()) {
    std::set<std::string> used;
    size_t index = 0;
    std::string suite = TestName(fs::path(file).parent_path().filename().string() + "_" +
                                 fs::path(file).stem().string()) +
                        on;
    if (IsNetpolFile(file)) {
      auto scenarios = flowtables::LoadNetpolScenarios(file);
      if (!scenarios.ok()) {
        RegisterLoadFailure(suite, file, scenarios.status());
        continue;
      }
      for (const auto& sc : *scenarios) {
        testing::RegisterTest(
            suite.c_str(), UniqueName(used, sc.name, index++).c_str(), nullptr, nullptr,
            file.c_str(), 0, [sc, target]() -> testing::Test* {
              return new ScenarioTest([sc, target] { RunNetpolScenario(sc, target); });
            });
      }
    } else {
      auto scenarios = flowtables::LoadServiceScenarios(file);
      if (!scenarios.ok()) {
        RegisterLoadFailure(suite, file, scenarios.status());
        continue;
      }
      for (const auto& sc : *scenarios) {
        testing::RegisterTest(
            suite.c_str(), UniqueName(used, sc.name, index++).c_str(), nullptr, nullptr,
            file.c_str(), 0, [sc, target]() -> testing::Test* {
              return new ScenarioTest([sc, target] { RunServiceScenario(sc, target); });
            });
      }
    }
  }
}

}  // namespace
}  // namespace nicflow

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  for (auto target :
       {nicflow::cli::Target::kSim, nicflow::cli::Target::kRteFlow, nicflow::cli::Target::kFpga}) {
    nicflow::RegisterScenarios(target);
  }
  return RUN_ALL_TESTS();
}
