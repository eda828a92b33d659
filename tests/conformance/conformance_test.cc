// Conformance runner: reads every scenario file — examples/shop/scenarios.yaml,
// examples/netpol/scenarios.yaml and tests/conformance/scenarios/*.yaml — in the formats of
// examples/README.md, compiles each scenario's cluster for its node, and traces every packet and
// probe through the software simulator with the same code `nicflow trace` runs. One test per
// scenario; a failure names the file, scenario and packet and shows the trace.
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

void RunServiceScenario(const flowtables::ServiceScenario& sc) {
  flowtables::CompileOptions opts;
  opts.node_name = sc.node_name;
  auto compiled = flowtables::Compile(sc.state, opts);
  ASSERT_TRUE(compiled.ok()) << sc.source.file << ": scenario \"" << sc.name
                             << "\" does not compile: " << compiled.status();
  auto tracer = cli::SimTracer::Create(*compiled);
  ASSERT_TRUE(tracer.ok()) << tracer.status();
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
    auto report = (*tracer)->Trace(req);
    ASSERT_TRUE(report.ok()) << "packet \"" << p.name << "\": " << report.status();
    std::string problem = CheckPacket(p, *report);
    EXPECT_EQ(problem, "") << sc.source.file << ": scenario \"" << sc.name << "\", packet \""
                           << p.name << "\" (expect \"" << p.expect << "\", masq "
                           << (p.masq ? "true" : "false") << ")\n"
                           << Describe(*report);
  }
}

void RunNetpolScenario(const flowtables::NetpolScenario& sc) {
  flowtables::ClusterState state = flowtables::NetpolScenarioToClusterState(sc);
  flowtables::CompileOptions opts;
  opts.node_name = std::string(flowtables::kNetpolNodeName);
  auto compiled = flowtables::Compile(state, opts);
  ASSERT_TRUE(compiled.ok()) << sc.source.file << ": scenario \"" << sc.name
                             << "\" does not compile: " << compiled.status();
  auto tracer = cli::SimTracer::Create(*compiled);
  ASSERT_TRUE(tracer.ok()) << tracer.status();
  std::map<std::string, flowtables::IpAddr> ip_of;
  for (const auto& pod : sc.pods) ip_of[pod.ns + "/" + pod.name] = pod.ip;
  for (const auto& probe : sc.probes) {
    auto run = [&](const std::pair<std::string, std::string>& pair, bool want_allowed) {
      cli::TraceRequest req;
      req.proto = probe.proto;
      req.src = ip_of.at(pair.first);
      req.dst = ip_of.at(pair.second);
      req.dst_port = probe.port;
      auto report = (*tracer)->Trace(req);
      ASSERT_TRUE(report.ok()) << report.status();
      bool allowed = report->verdict == "forward";
      EXPECT_EQ(allowed, want_allowed)
          << sc.source.file << ": scenario \"" << sc.name << "\": " << pair.first << " -> "
          << pair.second << " " << flowtables::ProtocolName(probe.proto) << "/" << probe.port
          << " must be " << (want_allowed ? "allowed" : "denied") << "\n"
          << Describe(*report);
    };
    for (const auto& pair : probe.allowed) run(pair, true);
    for (const auto& pair : probe.denied) run(pair, false);
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

void RegisterScenarios() {
  for (const std::string& file : ScenarioFiles()) {
    std::set<std::string> used;
    size_t index = 0;
    std::string suite = TestName(fs::path(file).parent_path().filename().string() + "_" +
                                 fs::path(file).stem().string());
    if (IsNetpolFile(file)) {
      auto scenarios = flowtables::LoadNetpolScenarios(file);
      if (!scenarios.ok()) {
        RegisterLoadFailure(suite, file, scenarios.status());
        continue;
      }
      for (const auto& sc : *scenarios) {
        testing::RegisterTest(suite.c_str(), UniqueName(used, sc.name, index++).c_str(), nullptr,
                              nullptr, file.c_str(), 0, [sc]() -> testing::Test* {
                                return new ScenarioTest([sc] { RunNetpolScenario(sc); });
                              });
      }
    } else {
      auto scenarios = flowtables::LoadServiceScenarios(file);
      if (!scenarios.ok()) {
        RegisterLoadFailure(suite, file, scenarios.status());
        continue;
      }
      for (const auto& sc : *scenarios) {
        testing::RegisterTest(suite.c_str(), UniqueName(used, sc.name, index++).c_str(), nullptr,
                              nullptr, file.c_str(), 0, [sc]() -> testing::Test* {
                                return new ScenarioTest([sc] { RunServiceScenario(sc); });
                              });
      }
    }
  }
}

}  // namespace
}  // namespace nicflow

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  nicflow::RegisterScenarios();
  return RUN_ALL_TESTS();
}
