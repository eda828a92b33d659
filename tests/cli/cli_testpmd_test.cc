// `nicflow compile -o testpmd` on the example cluster, fed to Debian's dpdk-testpmd: every line
// the CLI prints is accepted by testpmd's command parser and handed to the port (the net_null
// vdev answers "not implemented", which is fine; "Bad arguments" is not). Runs testpmd without
// hugepages, commands on stdin.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "nicflow/flowtables/status.h"

namespace nicflow {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr const char* kTestpmd = "/usr/bin/dpdk-testpmd";
const std::string kShop = std::string(NICFLOW_SOURCE_DIR) + "/examples/shop/";

struct CmdResult {
  int status = -1;
  std::string out;
};

CmdResult Shell(const std::string& cmd) {
  CmdResult r;
  if (FILE* f = popen(cmd.c_str(), "r")) {
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) r.out.append(buf, n);
    r.status = pclose(f);
  }
  return r;
}

std::vector<std::string> CompileToTestpmd(const std::string& extra) {
  const CmdResult r = Shell(absl::StrCat(NICFLOW_BINARY, " compile -f ", kShop, "cluster.yaml -f ",
                                         kShop, "policies.yaml -f ", kShop,
                                         "kube-proxy.yaml -o testpmd ", extra, " 2>/dev/null"));
  EXPECT_EQ(r.status, 0) << r.out;
  std::vector<std::string> lines;
  for (absl::string_view l : absl::StrSplit(r.out, '\n', absl::SkipEmpty())) {
    lines.emplace_back(Sv(l));
  }
  return lines;
}

// testpmd echoes each command after its prompt; the lines up to the next prompt are its answer.
std::vector<std::pair<std::string, std::string>> Answers(const std::string& output) {
  std::vector<std::pair<std::string, std::string>> out;
  for (absl::string_view piece : absl::StrSplit(output, "testpmd> ")) {
    const std::string_view chunk = Sv(piece);
    const size_t nl = chunk.find('\n');
    if (nl == std::string_view::npos) continue;
    out.emplace_back(std::string(chunk.substr(0, nl)), std::string(chunk.substr(nl + 1)));
  }
  return out;
}

TEST(CompileTestpmd, EveryLineTheCliPrintsParsesInDpdkTestpmd) {
  if (access(kTestpmd, X_OK) != 0) GTEST_SKIP() << kTestpmd << " not installed (dpdk-dev)";
  const std::vector<std::string> lines = CompileToTestpmd("");
  ASSERT_GT(lines.size(), 20u);
  size_t flow_creates = 0;
  for (const auto& l : lines) {
    EXPECT_TRUE(l.starts_with("flow create 0 ") || l.starts_with("set sample_actions")) << l;
    flow_creates += l.starts_with("flow create");
  }
  EXPECT_GT(flow_creates, 20u);

  const fs::path dir = fs::temp_directory_path() / absl::StrCat("nicflow-cli-testpmd-", getpid());
  fs::create_directories(dir);
  {
    std::ofstream in(dir / "commands");
    for (const auto& l : lines) in << l << "\n";
    in << "quit\n";
  }
  const CmdResult run = Shell(absl::StrCat(
      kTestpmd, " --no-huge --no-pci -m 256 --no-shconf -l 0-1 --file-prefix=nicflowcli", getpid(),
      " --vdev=net_null0 --log-level=lib.eal:error -- -i --total-num-mbufs=2048 < ",
      (dir / "commands").string(), " 2>&1"));
  fs::remove_all(dir);
  ASSERT_EQ(run.status, 0) << run.out.substr(0, 4000);
  size_t answered = 0;
  for (const auto& [command, answer] : Answers(run.out)) {
    if (!command.starts_with("flow create") && !command.starts_with("set sample_actions")) {
      continue;
    }
    ++answered;
    EXPECT_THAT(answer, ::testing::Not(HasSubstr("Bad arguments"))) << command;
    EXPECT_THAT(answer, ::testing::Not(HasSubstr("nrecognized"))) << command;
    if (command.starts_with("flow create")) {
      EXPECT_THAT(answer, ::testing::AnyOf(HasSubstr("Flow rule #"), HasSubstr("Caught PMD error")))
          << command << "\n"
          << answer;
    }
  }
  EXPECT_EQ(answered, lines.size()) << run.out.substr(0, 4000);
}

TEST(CompileTestpmd, PortIdOptionNamesThePortInEveryRule) {
  const std::vector<std::string> lines = CompileToTestpmd("--port-id 3");
  ASSERT_FALSE(lines.empty());
  for (const auto& l : lines) {
    if (l.starts_with("flow create")) {
      EXPECT_TRUE(l.starts_with("flow create 3 ")) << l;
    }
  }
}

}  // namespace
}  // namespace nicflow
