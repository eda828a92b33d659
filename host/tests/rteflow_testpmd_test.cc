// The testpmd export parses in Debian's dpdk-testpmd: every `flow create` line is accepted by the
// command parser (the vdev port answers "not implemented", which is fine; "Bad arguments" is not).
// Runs dpdk-testpmd without hugepages on a net_null vdev, commands on stdin.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "nicflow/flowtables/status.h"
#include "nicflow/host/rteflow.h"
#include "test_programs.h"

namespace nicflow::host {
namespace {

constexpr const char* kTestpmd = "/usr/bin/dpdk-testpmd";

struct TestpmdRun {
  int status = -1;
  std::string output;
};

TestpmdRun RunTestpmd(const std::vector<std::string>& commands) {
  const auto dir = std::filesystem::temp_directory_path() /
                   absl::StrCat("nicflow-testpmd-", getpid(), "-",
                                ::testing::UnitTest::GetInstance()->current_test_info()->name());
  std::filesystem::create_directories(dir);
  {
    std::ofstream in(dir / "commands");
    for (const auto& c : commands) in << c << "\n";
    in << "quit\n";
  }
  const std::string cmd = absl::StrCat(
      kTestpmd, " --no-huge --no-pci -m 256 --no-shconf -l 0-1 --file-prefix=nicflow", getpid(),
      " --vdev=net_null0 --log-level=lib.eal:error -- -i --total-num-mbufs=2048 < ",
      (dir / "commands").string(), " 2>&1");
  TestpmdRun run;
  if (FILE* f = popen(cmd.c_str(), "r")) {
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) run.output.append(buf, n);
    run.status = pclose(f);
  }
  std::filesystem::remove_all(dir);
  return run;
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

void ExpectEveryLineParses(const std::vector<std::string>& lines) {
  if (access(kTestpmd, X_OK) != 0) GTEST_SKIP() << kTestpmd << " not installed (dpdk-dev)";
  const TestpmdRun run = RunTestpmd(lines);
  ASSERT_EQ(run.status, 0) << run.output;
  size_t answered = 0;
  for (const auto& [command, answer] : Answers(run.output)) {
    if (!command.starts_with("flow create") && !command.starts_with("set sample_actions")) {
      continue;
    }
    ++answered;
    EXPECT_THAT(answer, ::testing::Not(::testing::HasSubstr("Bad arguments"))) << command;
    EXPECT_THAT(answer, ::testing::Not(::testing::HasSubstr("nrecognized"))) << command;
    if (command.starts_with("flow create")) {
      // Parsed and handed to the PMD: created, or the port says it cannot.
      EXPECT_THAT(answer, ::testing::AnyOf(::testing::HasSubstr("Flow rule #"),
                                           ::testing::HasSubstr("Caught PMD error")))
          << command << "\n"
          << answer;
    }
  }
  EXPECT_EQ(answered, lines.size()) << run.output.substr(0, 4000);
}

TEST(TestpmdExport, EveryExportedLineParsesInDpdkTestpmd) {
  RteFlowLowerOptions o;
  auto lines = ExportTestpmd(testing::ClusterProgram(2), o);
  ASSERT_TRUE(lines.ok()) << lines.status();
  ExpectEveryLineParses(*lines);
}

TEST(TestpmdExport, ABadLineIsCaughtByTheCheck) {
  if (access(kTestpmd, X_OK) != 0) GTEST_SKIP() << kTestpmd << " not installed (dpdk-dev)";
  const TestpmdRun run =
      RunTestpmd({"flow create 0 group 0 priority 0 ingress pattern eth / ipv4 bogus 1 / end "
                  "actions drop / end"});
  bool bad = false;
  for (const auto& [command, answer] : Answers(run.output)) {
    bad |= command.starts_with("flow create") && answer.find("Bad arguments") != std::string::npos;
  }
  EXPECT_TRUE(bad) << run.output;
}

}  // namespace
}  // namespace nicflow::host
