// The control API over a real unix socket, and every online `nicflow` command against a running
// agent (the CLI binary users run, exec'd as a child process).
#include "nicflow/agent/control.h"

#include <sys/stat.h>
#include <sys/wait.h>

#include <cstdio>

#include "agent_test_util.h"

namespace nicflow::agent {
namespace {

using testing::TempDir;

struct Running {
  TempDir dir;
  AgentConfig config;
  std::unique_ptr<Agent> agent;
  std::unique_ptr<ControlServer> server;

  Running() : config(testing::ShopConfig(dir)) {
    BackendConfig b;
    b.profile = "connectx6dx";
    auto backend = OpenBackend(b);
    EXPECT_TRUE(backend.ok());
    agent = std::make_unique<Agent>(config, *std::move(backend));
    EXPECT_TRUE(agent->Start().ok());
    auto s = ControlServer::Start(*agent, config.control_socket);
    EXPECT_TRUE(s.ok()) << s.status();
    server = *std::move(s);
  }
  ~Running() {
    server->Stop();
    agent->Stop();
  }
};

TEST(ControlApi, AnswersEveryCallOverTheUnixSocket) {
  Running r;
  struct stat st {};
  ASSERT_EQ(::stat(r.config.control_socket.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u) << "the control socket is private by default";

  ControlClient c(r.config.control_socket);
  auto status = c.Status();
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ((*status)["node"], "node-a");
  EXPECT_EQ((*status)["device"], "sim:connectx6dx");
  EXPECT_TRUE((*status)["healthy"].get<bool>());

  auto dump = c.DumpFlows("service");
  ASSERT_TRUE(dump.ok());
  ASSERT_EQ((*dump)["tables"].size(), 1u);
  EXPECT_EQ((*dump)["tables"][0]["name"], "service");
  EXPECT_TRUE((*dump)["tables"][0]["entries"][0].contains("packets"));
  auto missing = c.DumpFlows("nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("no table \"nope\""), absl::string_view::npos);

  auto stats = c.Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ((*stats)["tables"].size(), 13u);
  auto diff = c.Diff();
  ASSERT_TRUE(diff.ok());
  EXPECT_TRUE((*diff)["in_sync"].get<bool>());
  auto capacity = c.Capacity();
  ASSERT_TRUE(capacity.ok());
  EXPECT_GT((*capacity)["entries"].get<size_t>(), 0u);

  TraceQuery q{"tcp", "10.244.1.10", "10.96.0.90:80", "auto"};
  auto trace = c.Trace(q);
  ASSERT_TRUE(trace.ok()) << trace.status();
  EXPECT_EQ((*trace)["verdict"], "forward");
  EXPECT_EQ((*trace)["in_port"], "vf:shop/web-1");
  auto bad = c.Trace({"icmp", "10.244.1.20", "10.96.0.80:80", "auto"});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);

  auto pipeline = c.Pipeline();
  ASSERT_TRUE(pipeline.ok());
  EXPECT_EQ((*pipeline)["tables"][0]["name"], "classify");

  std::vector<std::string> kinds;
  ASSERT_TRUE(c.Events(0, false, [&](const Event& e) {
                 kinds.push_back(e.kind);
                 return true;
               }).ok());
  EXPECT_EQ(kinds, (std::vector<std::string>{"started", "applied"}));
}

TEST(ControlApi, StreamsEventsAsTheyHappen) {
  Running r;
  ControlClient c(r.config.control_socket);
  uint64_t after = r.agent->events().last_seq();
  std::thread writer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    testing::WriteFile(r.config.inputs.manifests_dir + "/extra.yaml", testing::kExtraService);
  });
  Event got;
  absl::Status st = c.Events(after, true, [&](const Event& e) {
    got = e;
    return e.kind != "applied";
  });
  writer.join();
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_EQ(got.kind, "applied");
  EXPECT_GT(got.detail["entries"]["added"].get<size_t>(), 0u);
}

TEST(ControlApi, SaysWhoIsMissingWhenNoAgentListens) {
  TempDir dir;
  ControlClient c(dir.Sub("nobody.sock"), 500);
  auto st = c.Status();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(st.status().message().find("is it running?"), absl::string_view::npos);
}

struct Cmd {
  int rc;
  std::string out;
};

Cmd RunNicflow(const std::string& args) {
  std::string cmd = std::string(NICFLOW_BINARY_DIR) + "/host/nicflow " + args + " 2>&1";
  FILE* f = ::popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), f)) > 0) out.append(buf, n);
  int status = ::pclose(f);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

TEST(OnlineCli, EveryCommandWorksAgainstARunningAgent) {
  Running r;
  std::string sock = " --socket " + r.config.control_socket;
  struct Case {
    std::string args, want;
  };
  for (const Case& c : std::vector<Case>{
           {"status", "health:      ok"},
           {"status -o json", "\"node\": \"node-a\""},
           {"dump-flows --table service", "table service ("},
           {"dump-flows", "Service shop/web port http"},
           {"dump-flows -o json", "\"packets\": 0"},
           {"dump-flows -o testpmd", "flow create 0"},
           {"stats", "TABLE"},
           {"stats -o json", "\"datapath\""},
           {"diff", "in sync"},
           {"capacity", "connectx6dx"},
           {"pipeline", "classify"},
           {"pipeline -o dot", "\"classify\" -> \"conntrack\""},
           {"events", "applied"},
       }) {
    Cmd got = RunNicflow(c.args + sock);
    EXPECT_EQ(got.rc, 0) << c.args << ":\n" << got.out;
    EXPECT_NE(got.out.find(c.want), std::string::npos) << c.args << ":\n" << got.out;
  }
  Cmd trace = RunNicflow("trace --proto tcp --src 10.244.1.10 --dst 10.96.0.90:80" + sock);
  EXPECT_EQ(trace.rc, 0) << trace.out;
  EXPECT_NE(trace.out.find("verdict: forward"), std::string::npos) << trace.out;
  Cmd bad = RunNicflow("dump-flows --table nope" + sock);
  EXPECT_EQ(bad.rc, 2) << bad.out;
  EXPECT_NE(bad.out.find("no table \"nope\""), std::string::npos) << bad.out;
  Cmd down = RunNicflow("status --socket " + r.dir.Sub("none.sock"));
  EXPECT_NE(down.rc, 0);
  EXPECT_NE(down.out.find("cannot reach nicflowd"), std::string::npos) << down.out;
}

}  // namespace
}  // namespace nicflow::agent
