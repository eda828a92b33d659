// End-to-end tests of the `nicflow` CLI on the example cluster (examples/shop): every trace
// target gives the same fates, the binary's JSON contract holds on every target, and `nicflow
// sim` runs a capture and writes one that libpcap and tcpdump read back with the DNATed
// addresses.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <set>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "cli.h"
#include "nicflow/sim/packet.h"
#include "nicflow/sim/pcap_io.h"
#include "packet_trace.h"

namespace nicflow {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

const std::string kShop = std::string(NICFLOW_SOURCE_DIR) + "/examples/shop/";

cli::ManifestOptions ShopManifests() {
  cli::ManifestOptions o;
  o.files = {kShop + "cluster.yaml", kShop + "policies.yaml", kShop + "kube-proxy.yaml"};
  return o;
}

std::string ShopArgs() {
  return absl::StrCat("-f ", kShop, "cluster.yaml -f ", kShop, "policies.yaml -f ", kShop,
                      "kube-proxy.yaml");
}

struct CmdResult {
  int status = -1;
  std::string out;
};

// Runs the nicflow binary with `args`; stdout only (notes go to stderr, kept out of JSON).
CmdResult Nicflow(const std::string& args) {
  CmdResult r;
  const std::string cmd = absl::StrCat(NICFLOW_BINARY, " ", args, " 2>/dev/null");
  if (FILE* f = popen(cmd.c_str(), "r")) {
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) r.out.append(buf, n);
    r.status = pclose(f);
  }
  return r;
}

cli::TraceRequest Req(const char* proto, const char* src, const char* dst,
                      const char* in_port = "auto") {
  auto r = cli::MakeTraceRequest(proto, src, dst, in_port);
  EXPECT_TRUE(r.ok()) << r.status();
  return *r;
}

// Packets over the example cluster: services (ClusterIP, NodePort, several endpoints, none),
// policy allows and denies, host and uplink sources, UDP, an unknown address.
std::vector<cli::TraceRequest> ShopPackets() {
  return {
      Req("tcp", "10.244.1.10", "10.96.0.90:80"),
      Req("tcp", "10.244.1.40", "10.96.0.90:80"),
      Req("tcp", "10.244.1.40", "10.244.1.20:9101"),
      Req("tcp", "203.0.113.7", "192.168.10.11:30080"),
      Req("tcp", "203.0.113.7", "10.96.0.80:80"),
      Req("tcp", "10.244.1.20", "10.96.0.54:5432"),
      Req("tcp", "10.244.1.20", "93.184.216.34:80"),
      Req("tcp", "10.244.1.10", "10.96.0.99:80"),
      Req("tcp", "10.244.1.10", "10.96.7.7:80"),
      Req("tcp", "192.168.10.11", "10.96.0.80:80"),
      Req("tcp", "10.244.1.10:41000", "10.96.0.80:80"),
      Req("udp", "10.244.1.10", "10.96.0.80:80"),
      Req("tcp", "10.244.2.10", "10.244.1.20:9000"),
      Req("tcp", "203.0.113.7", "10.244.1.10:8080", "uplink"),
  };
}

TEST(TraceTargets, EveryTargetGivesTheSimulatorsFatesOnTheExampleCluster) {
  auto compiled = cli::LoadAndCompile(ShopManifests());
  ASSERT_TRUE(compiled.ok()) << compiled.status();
  const auto packets = ShopPackets();
  auto sim = cli::CreateTracer(cli::Target::kSim, *compiled);
  ASSERT_TRUE(sim.ok()) << sim.status();
  auto want = (*sim)->TraceAll(packets);
  ASSERT_TRUE(want.ok()) << want.status();
  std::set<std::string> verdicts;
  for (const auto& r : *want) verdicts.insert(r.verdict);
  EXPECT_EQ(verdicts, (std::set<std::string>{"forward", "drop", "reject"}))
      << "the packets must cover every fate";
  auto sorted = [](std::vector<std::string> v) {
    std::sort(v.begin(), v.end());
    return v;
  };
  for (cli::Target target : {cli::Target::kRteFlow, cli::Target::kFpga}) {
    SCOPED_TRACE(std::string(cli::TargetName(target)));
    auto tracer = cli::CreateTracer(target, *compiled);
    ASSERT_TRUE(tracer.ok()) << tracer.status();
    auto got = (*tracer)->TraceAll(packets);
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_EQ(got->size(), want->size());
    for (size_t i = 0; i < packets.size(); ++i) {
      const cli::TraceReport& g = (*got)[i];
      const cli::TraceReport& w = (*want)[i];
      const std::string what = cli::TraceReportToText(g, packets[i]);
      EXPECT_EQ(g.target, cli::TargetName(target));
      EXPECT_EQ(g.verdict, w.verdict) << what;
      EXPECT_EQ(sorted(g.destinations), sorted(w.destinations)) << what;
      EXPECT_EQ(g.translated, w.translated) << what;
      EXPECT_EQ(g.masquerade, w.masquerade) << what;
      EXPECT_EQ(sorted(g.out_ports), sorted(w.out_ports)) << what;
      EXPECT_EQ(g.in_port, w.in_port) << what;
    }
  }
}

TEST(TraceTargets, OnePacketTracedAloneOrInABatchGivesTheSameReport) {
  auto compiled = cli::LoadAndCompile(ShopManifests());
  ASSERT_TRUE(compiled.ok()) << compiled.status();
  auto fpga = cli::CreateTracer(cli::Target::kFpga, *compiled);
  ASSERT_TRUE(fpga.ok()) << fpga.status();
  const auto packets = ShopPackets();
  auto batch = (*fpga)->TraceAll(packets);
  ASSERT_TRUE(batch.ok()) << batch.status();
  for (size_t i = 0; i < packets.size(); ++i) {
    auto alone = (*fpga)->Trace(packets[i]);
    ASSERT_TRUE(alone.ok()) << alone.status();
    EXPECT_EQ(alone->verdict, (*batch)[i].verdict) << i;
    EXPECT_EQ(alone->destinations, (*batch)[i].destinations) << i;
    EXPECT_EQ(alone->paths.size(), (*batch)[i].paths.size()) << i;
  }
}

TEST(TraceCommand, JsonContractIsTheSameOnEveryTarget) {
  for (const char* target : {"sim", "rteflow", "fpga"}) {
    SCOPED_TRACE(target);
    const CmdResult r = Nicflow(absl::StrCat("trace ", ShopArgs(),
                                             " --proto tcp --src 203.0.113.7 --dst 10.96.0.80:80"
                                             " --target ",
                                             target, " -o json"));
    ASSERT_EQ(r.status, 0) << r.out;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["target"], target);
    EXPECT_EQ(j["verdict"], "forward");
    EXPECT_THAT(j["destinations"].get<std::vector<std::string>>(),
                ::testing::UnorderedElementsAre("10.244.1.10:8080", "10.244.2.10:8080"));
    EXPECT_EQ(j["translated"], true);
    EXPECT_EQ(j["masquerade"], true);
    EXPECT_FALSE(j["out_ports"].empty());
    EXPECT_EQ(j["in_port"], "uplink");
    ASSERT_FALSE(j["trace"].empty());
    for (const char* key : {"table", "priority", "match", "actions", "origin"}) {
      EXPECT_TRUE(j["trace"][0].contains(key)) << key;
    }
    EXPECT_EQ(j["paths"].size(), 2u) << "one path per endpoint";
  }
}

TEST(TraceCommand, TextNamesTheVerdictAndTheDecidingObjectOnEveryTarget) {
  for (const char* target : {"sim", "rteflow", "fpga"}) {
    SCOPED_TRACE(target);
    const CmdResult r = Nicflow(absl::StrCat("trace ", ShopArgs(),
                                             " --proto tcp --src 10.244.1.40 --dst 10.96.0.90:80"
                                             " --target ",
                                             target));
    ASSERT_EQ(r.status, 0) << r.out;
    EXPECT_THAT(r.out, HasSubstr(absl::StrCat("(", target, ")")));
    EXPECT_THAT(r.out, HasSubstr("verdict: DROP"));
    EXPECT_THAT(r.out, HasSubstr("decided by NetworkPolicy"));
  }
}

TEST(TraceCommand, UnknownTargetIsRefusedByName) {
  const CmdResult r = Nicflow(absl::StrCat("trace ", ShopArgs(),
                                           " --proto tcp --src 10.244.1.10 --dst 10.96.0.80:80"
                                           " --target asic"));
  EXPECT_NE(r.status, 0);
}

// A capture of packets to the example cluster, written with libpcap.
std::vector<sim::PcapFrame> ShopCapture() {
  struct P {
    const char* src;
    const char* dst;
    uint16_t sport, dport;
  };
  const std::vector<P> packets = {
      {"203.0.113.7", "10.96.0.80", 41000, 80},        // DNAT to a web pod, masqueraded
      {"203.0.113.8", "192.168.10.11", 41001, 30080},  // NodePort
      {"10.244.1.10", "10.96.0.90", 41002, 80},        // web -> cart: DNAT to 10.244.1.20:9000
      {"10.244.1.40", "10.96.0.90", 41003, 80},        // denied by policy: dropped
      {"10.244.1.10", "10.96.0.99", 41004, 80},        // no endpoints: REJECT (a TCP RST back)
  };
  std::vector<sim::PcapFrame> frames;
  uint64_t ts = 1'700'000'000'000'000'000ull;
  for (const P& p : packets) {
    sim::PacketSpec s;
    s.src = *flowtables::IpAddr::Parse(p.src);
    s.dst = *flowtables::IpAddr::Parse(p.dst);
    s.src_port = p.sport;
    s.dst_port = p.dport;
    auto bytes = sim::BuildPacket(s);
    EXPECT_TRUE(bytes.ok()) << bytes.status();
    frames.push_back({*bytes, ts});
    ts += 1000;
  }
  return frames;
}

class SimCommand : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           absl::StrCat("nicflow-cli-", getpid(), "-",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(SimCommand, RunsACaptureAndWritesWhatLeavesReadableByTcpdump) {
  const std::string in = (dir_ / "a.pcap").string(), out = (dir_ / "b.pcap").string();
  ASSERT_TRUE(sim::WritePcap(in, ShopCapture()).ok());
  const CmdResult r =
      Nicflow(absl::StrCat("sim ", ShopArgs(), " --pcap-in ", in, " --pcap-out ", out, " -o json"));
  ASSERT_EQ(r.status, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["packets_in"], 5);
  EXPECT_EQ(j["forwarded"], 3);
  EXPECT_EQ(j["rejected"], 1);
  EXPECT_EQ(j["dropped"], 1);
  EXPECT_EQ(j["packets_out"], 4);
  EXPECT_EQ(j["drop_reasons"]["drop_action"], 1) << j["drop_reasons"].dump();
  bool service_table = false;
  for (const auto& t : j["tables"]) {
    if (t["table"] == "service") {
      service_table = true;
      EXPECT_GE(t["hits"].get<int>(), 4);
    }
  }
  EXPECT_TRUE(service_table) << j["tables"].dump();
  EXPECT_FALSE(j["entries"].empty());

  // libpcap reads the output back: the DNATed destinations, the RST answering the client.
  auto frames = sim::ReadPcap(out);
  ASSERT_TRUE(frames.ok()) << frames.status();
  ASSERT_EQ(frames->size(), 4u);
  std::vector<std::string> dsts;
  for (const auto& f : *frames) {
    sim::ParsedPacket p;
    ASSERT_EQ(sim::ParsePacket(f.data, p), sim::ParseError::kNone);
    dsts.push_back(flowtables::FormatEndpoint(
        sim::DstAddr(p), static_cast<uint16_t>(p.fields.get(flowtables::Field::kL4Dst).lo)));
  }
  EXPECT_THAT(dsts[0], ::testing::AnyOf("10.244.1.10:8080", "10.244.2.10:8080"));
  EXPECT_THAT(dsts[1], ::testing::AnyOf("10.244.1.10:8080", "10.244.2.10:8080"));
  EXPECT_EQ(dsts[2], "10.244.1.20:9000");
  EXPECT_EQ(dsts[3], "10.244.1.10:41004") << "the REJECT reply goes back to the client";
  EXPECT_EQ((*frames)[0].ts_ns, ShopCapture()[0].ts_ns) << "timestamps are kept";

  // And so does tcpdump.
  if (access("/usr/bin/tcpdump", X_OK) != 0) GTEST_SKIP() << "tcpdump not installed";
  CmdResult dump;
  if (FILE* f = popen(absl::StrCat("/usr/bin/tcpdump -r ", out, " -nn 2>&1").c_str(), "r")) {
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) dump.out.append(buf, n);
    dump.status = pclose(f);
  }
  ASSERT_EQ(dump.status, 0) << dump.out;
  EXPECT_THAT(dump.out, HasSubstr("> 10.244.1.20.9000: Flags [S]"));
  EXPECT_THAT(dump.out, ::testing::ContainsRegex(R"(> 10\.244\.[12]\.10\.8080: Flags \[S\])"));
  EXPECT_THAT(dump.out, HasSubstr("10.96.0.99.80 > 10.244.1.10.41004: Flags [R"));
  EXPECT_THAT(dump.out, ::testing::Not(HasSubstr("10.96.0.80.80:")))
      << "the cluster IP was rewritten";
}

TEST_F(SimCommand, PrintsASummaryTableByDefault) {
  const std::string in = (dir_ / "a.pcap").string(), out = (dir_ / "b.pcap").string();
  ASSERT_TRUE(sim::WritePcap(in, ShopCapture()).ok());
  const CmdResult r =
      Nicflow(absl::StrCat("sim ", ShopArgs(), " --pcap-in ", in, " --pcap-out ", out));
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("5 packets in"));
  EXPECT_THAT(r.out, HasSubstr("4 packets out (3 forwarded, 1 REJECT replies); 1 dropped"));
  EXPECT_THAT(r.out, HasSubstr("drop_action"));
  EXPECT_THAT(r.out, HasSubstr("TABLE"));
}

TEST_F(SimCommand, MissingInputIsAnErrorNamingTheFile) {
  const std::string missing = (dir_ / "missing.pcap").string();
  const std::string cmd = absl::StrCat(NICFLOW_BINARY, " sim ", ShopArgs(), " --pcap-in ", missing,
                                       " --pcap-out ", (dir_ / "b.pcap").string(), " 2>&1");
  CmdResult r;
  if (FILE* f = popen(cmd.c_str(), "r")) {
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) r.out.append(buf, n);
    r.status = pclose(f);
  }
  EXPECT_NE(r.status, 0);
  EXPECT_THAT(r.out, HasSubstr(missing));
}

}  // namespace
}  // namespace nicflow
