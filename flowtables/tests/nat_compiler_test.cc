// The plumbing and NAT stages, packet by packet: classify, ct_state, masq_mark, snat, forward.
#include "nat_compiler.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service_test_util.h"

namespace nicflow::flowtables {
namespace {

using ::testing::HasSubstr;
using namespace ::nicflow::flowtables::testing;  // NOLINT: test helpers

Program Finish(ProgramBuilder& b) {
  auto p = std::move(b).Finish();
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? *std::move(p) : Program{};
}

Program Classify(const NodeFacts& node) {
  ProgramBuilder b;
  CompileClassify(node, b);
  return Finish(b);
}

Packet From(PortClass pc, std::string_view src, std::string_view dst = "10.96.0.10") {
  Packet p = Pkt(src, dst, 80);
  p.port_class = pc;
  return p;
}

TEST(NatCompiler, ClassifyMarksClusterCidrSourcesLocal) {
  Program p = Classify(TestNode());
  const Entry* pod = Lookup(p, kTableClassify, From(PortClass::kPod, "10.244.2.9"));
  EXPECT_EQ(FlagsSet(pod), kFlagLocalSrc);
  EXPECT_EQ(FindAction<GotoAction>(pod)->table, kTableConntrack);
  EXPECT_EQ(
      FlagsSet(Lookup(p, kTableClassify, From(PortClass::kPod, "fd00:244:0:7::1", "fd00:96::1"))),
      kFlagLocalSrc);
  EXPECT_EQ(Lookup(p, kTableClassify, From(PortClass::kUplink, "203.0.113.7")), nullptr);
}

TEST(NatCompiler, ClassifyNodeCidrModeOnlyTrustsThisNodesPodCidr) {
  NodeFacts node = TestNode();
  node.detect_local = DetectLocalMode::kNodeCidr;
  Program p = Classify(node);
  EXPECT_EQ(FlagsSet(Lookup(p, kTableClassify, From(PortClass::kPod, "10.244.1.9"))),
            kFlagLocalSrc);
  EXPECT_EQ(Lookup(p, kTableClassify, From(PortClass::kUplink, "10.244.2.9")), nullptr);
}

TEST(NatCompiler, ClassifyInterfaceModesMarkPodPortsLocal) {
  NodeFacts node = TestNode();
  node.detect_local = DetectLocalMode::kInterfaceNamePrefix;
  Program p = Classify(node);
  EXPECT_EQ(FlagsSet(Lookup(p, kTableClassify, From(PortClass::kPod, "172.16.0.1"))),
            kFlagLocalSrc);
  EXPECT_EQ(Lookup(p, kTableClassify, From(PortClass::kUplink, "10.244.2.9")), nullptr);
}

TEST(NatCompiler, ClassifyMarksHostTrafficFromHostAndLocalWhenInsideTheCidr) {
  Program p = Classify(TestNode());
  EXPECT_EQ(FlagsSet(Lookup(p, kTableClassify, From(PortClass::kHost, "192.168.0.2"))),
            kFlagFromHost);
  EXPECT_EQ(FlagsSet(Lookup(p, kTableClassify, From(PortClass::kHost, "10.244.1.1"))),
            kFlagFromHost | kFlagLocalSrc);
}

TEST(NatCompiler, CtStateSendsKnownConnectionsToForwardAndDropsInvalid) {
  ProgramBuilder b;
  CompileConntrackState(b);
  Program p = Finish(b);
  auto state = [&](uint8_t ct) {
    Packet pkt = Pkt("10.244.1.9", "10.96.0.10", 80);
    pkt.ct_state = ct;
    return Lookup(p, kTableCtState, pkt);
  };
  for (uint8_t ct :
       {uint8_t(kCtTrk | kCtEst), uint8_t(kCtTrk | kCtEst | kCtRpl), uint8_t(kCtTrk | kCtRel)}) {
    const Entry* e = state(ct);
    ASSERT_NE(FindAction<GotoAction>(e), nullptr) << int(ct);
    EXPECT_EQ(FindAction<GotoAction>(e)->table, kTableForward);
  }
  EXPECT_TRUE(IsDrop(state(kCtTrk | kCtInv)));
  EXPECT_EQ(state(kCtTrk | kCtNew), nullptr);  // the default: on to the service stage
  EXPECT_EQ(p.tables[kTableCtState].default_actions,
            (std::vector<Action>{GotoAction{kTableService}}));
}

Program MasqMark(const ClusterState& st, const NodeFacts& node,
                 std::vector<std::string>* notes = nullptr) {
  ProgramBuilder b;
  std::vector<std::string> n;
  CompileMasqMark(st, node, b, n);
  if (notes != nullptr) *notes = n;
  return Finish(b);
}

constexpr uint32_t kClusterHit = kFlagServiceHit | kFlagTranslated | kFlagClusterIp;

TEST(NatCompiler, OffClusterTrafficToAClusterIpIsMasqueraded) {
  Program p = MasqMark({}, TestNode());
  const Entry* e = Lookup(p, kTableMasqMark, Pkt("203.0.113.7", "10.244.2.5", 8080, kClusterHit));
  EXPECT_EQ(FlagsSet(e), kFlagMasq);
  EXPECT_EQ(FindAction<GotoAction>(e)->table, kTableEgressPod);
  EXPECT_EQ(
      FlagsSet(Lookup(p, kTableMasqMark, Pkt("2001:db8:9::1", "fd00:244:2::5", 8080, kClusterHit))),
      kFlagMasq);
}

TEST(NatCompiler, LocalTrafficToAClusterIpKeepsItsSource) {
  Program p = MasqMark({}, TestNode());
  EXPECT_EQ(
      Lookup(p, kTableMasqMark, Pkt("10.244.1.9", "10.244.2.5", 8080, kClusterHit | kFlagLocalSrc)),
      nullptr);
  // Traffic that hit no ClusterIP is not marked either.
  EXPECT_EQ(Lookup(p, kTableMasqMark, Pkt("203.0.113.7", "10.244.2.5", 8080)), nullptr);
}

TEST(NatCompiler, WithoutAClusterCidrOfTheFamilyNothingIsMasqueradedAndANoteSaysSo) {
  NodeFacts node = TestNode();
  node.cluster_cidrs = {Cidr("10.244.0.0/16")};
  std::vector<std::string> notes;
  Program p = MasqMark({}, node, &notes);
  EXPECT_EQ(Lookup(p, kTableMasqMark, Pkt("2001:db8:9::1", "fd00:244:2::5", 80, kClusterHit)),
            nullptr);
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_THAT(notes[0], HasSubstr("IPv6"));
}

TEST(NatCompiler, MasqueradeAllMarksEveryClusterIpHit) {
  NodeFacts node = TestNode();
  node.masquerade_all = true;
  Program p = MasqMark({}, node);
  EXPECT_EQ(FlagsSet(Lookup(p, kTableMasqMark,
                            Pkt("10.244.1.9", "10.244.2.5", 80, kClusterHit | kFlagLocalSrc))),
            kFlagMasq);
}

TEST(NatCompiler, HairpinMasqueradesALocalEndpointReachingItself) {
  ClusterState st;
  st.pods.push_back(MakePod("shop", "web-1", "node-a", {"10.244.1.5"}));
  st.endpoint_slices.push_back(
      MakeSlice("shop", "x", "x", {Ep("10.244.1.6", "node-a"), Ep("10.244.2.6", "node-b")}, {}));
  Program p = MasqMark(st, TestNode());
  const uint32_t hit = kClusterHit | kFlagLocalSrc;
  const Entry* pod = Lookup(p, kTableMasqMark, Pkt("10.244.1.5", "10.244.1.5", 8080, hit));
  EXPECT_EQ(FlagsSet(pod), kFlagMasq | kFlagHairpin);
  EXPECT_EQ(pod->origin, (Origin{"Pod", "shop", "web-1", "hairpin"}));
  EXPECT_EQ(FlagsSet(Lookup(p, kTableMasqMark, Pkt("10.244.1.6", "10.244.1.6", 80, hit))),
            kFlagMasq | kFlagHairpin);
  EXPECT_EQ(Lookup(p, kTableMasqMark, Pkt("10.244.1.6", "10.244.1.5", 8080, hit)), nullptr);
  // Not translated: a pod talking to its own IP directly is none of kube-proxy's business.
  EXPECT_EQ(Lookup(p, kTableMasqMark, Pkt("10.244.1.5", "10.244.1.5", 8080, kFlagLocalSrc)),
            nullptr);
}

Program Snat(const NodeFacts& node, std::vector<std::string>* notes = nullptr) {
  ProgramBuilder b;
  std::vector<std::string> n;
  CompileSnat(node, b, n);
  if (notes != nullptr) *notes = n;
  return Finish(b);
}

const SnatAction* SnatOf(const Program& p, const Packet& pkt) {
  const Entry* e = Lookup(p, kTableSnat, pkt);
  if (e != nullptr) {
    EXPECT_NE(FindAction<CtCommitAction>(e), nullptr);
    EXPECT_EQ(FindAction<GotoAction>(e)->table, kTableForward);
  }
  return FindAction<SnatAction>(e);
}

TEST(NatCompiler, MasqueradeSnatsToThePrimaryNodeIpOfTheFamily) {
  NodeFacts node = TestNode();
  node.ips = {Ip("192.168.0.2"), Ip("2001:db8::2"), Ip("192.168.1.2")};
  Program p = Snat(node);
  const SnatAction* v4 = SnatOf(p, Pkt("203.0.113.7", "10.244.2.5", 80, kFlagMasq));
  ASSERT_NE(v4, nullptr);
  EXPECT_EQ(v4->addr, Ip("192.168.0.2"));
  const SnatAction* v6 = SnatOf(p, Pkt("2001:db8:9::1", "fd00:244:2::5", 80, kFlagMasq));
  ASSERT_NE(v6, nullptr);
  EXPECT_EQ(v6->addr, Ip("2001:db8::2"));
}

TEST(NatCompiler, PodTrafficLeavingTheClusterIsSnatedLikeIpMasqAgent) {
  Program p = Snat(TestNode());
  const SnatAction* s = SnatOf(p, Pkt("10.244.1.9", "93.184.216.34", 443, kFlagLocalSrc));
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->addr, Ip("192.168.0.2"));
  EXPECT_EQ(SnatOf(p, Pkt("10.244.1.9", "10.244.2.5", 80)), nullptr);   // inside the cluster
  EXPECT_EQ(SnatOf(p, Pkt("10.244.1.9", "192.168.0.2", 80)), nullptr);  // to this node
  EXPECT_EQ(SnatOf(p, Pkt("10.244.1.9", "169.254.169.254", 80)), nullptr);
  EXPECT_EQ(SnatOf(p, Pkt("203.0.113.7", "93.184.216.34", 80)), nullptr);  // not a pod
  // Everything that reaches snat is committed, SNAT or not.
  EXPECT_EQ(p.tables[kTableSnat].default_actions,
            (std::vector<Action>{CtCommitAction{}, GotoAction{kTableForward}}));
}

TEST(NatCompiler, NonMasqueradeCidrsReplaceTheDefaultAndLinkLocalCanBeMasqueraded) {
  NodeFacts node = TestNode();
  node.masq.non_masquerade_cidrs = {Cidr("10.0.0.0/8")};
  node.masq.masq_link_local = true;
  Program p = Snat(node);
  EXPECT_EQ(SnatOf(p, Pkt("10.244.1.9", "10.1.2.3", 80)), nullptr);
  EXPECT_NE(SnatOf(p, Pkt("10.244.1.9", "172.16.0.1", 80)), nullptr);
  EXPECT_NE(SnatOf(p, Pkt("10.244.1.9", "169.254.169.254", 80)), nullptr);
}

TEST(NatCompiler, NoNodeAddressOfAFamilyMeansNoSnatThereAndANote) {
  NodeFacts node = TestNode();
  node.ips = {Ip("192.168.0.2")};
  std::vector<std::string> notes;
  Program p = Snat(node, &notes);
  EXPECT_EQ(SnatOf(p, Pkt("fd00:244:1::9", "2001:db8:9::1", 80, kFlagMasq)), nullptr);
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_THAT(notes[0], HasSubstr("no IPv6 address"));
}

absl::StatusOr<Program> Forward(const ClusterState& st, CompileOptions options = {},
                                std::vector<std::string>* notes = nullptr) {
  ProgramBuilder b;
  std::vector<std::string> n;
  if (auto s = CompileForward(st, TestNode(), options, b, n); !s.ok()) return s;
  if (notes != nullptr) *notes = n;
  return std::move(b).Finish();
}

const OutputAction* OutputTo(const Program& p, std::string_view dst) {
  return FindAction<OutputAction>(Lookup(p, kTableForward, Pkt("10.244.1.9", dst, 80)));
}

TEST(NatCompiler, ForwardSendsLocalPodsToTheirVfAndNodeIpsToTheHost) {
  ClusterState st;
  st.pods.push_back(MakePod("shop", "web-1", "node-a", {"10.244.1.5", "fd00:244:1::5"}));
  auto p = Forward(st);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(OutputTo(*p, "10.244.1.5")->port.ToString(), "vf:shop/web-1");
  EXPECT_EQ(OutputTo(*p, "fd00:244:1::5")->port.ToString(), "vf:shop/web-1");
  EXPECT_EQ(OutputTo(*p, "192.168.0.2")->port.ToString(), "host");
  EXPECT_EQ(OutputTo(*p, "10.244.2.5"), nullptr);  // default: the uplink
  EXPECT_EQ(p->tables[kTableForward].default_actions,
            (std::vector<Action>{OutputAction{PortRef{PortRef::Kind::kUplink, ""}}}));
  ASSERT_EQ(p->ports.size(), 3u);
  EXPECT_EQ(p->ports[2].ref.ToString(), "vf:shop/web-1");
  EXPECT_EQ(p->ports[2].ips.size(), 2u);
}

TEST(NatCompiler, ForwardIgnoresPodsElsewhereHostNetworkTerminalOrWithoutIps) {
  ClusterState st;
  st.pods.push_back(MakePod("a", "remote", "node-b", {"10.244.2.5"}));
  Pod hostnet = MakePod("a", "hostnet", "node-a", {"192.168.0.2"});
  hostnet.host_network = true;
  Pod done = MakePod("a", "done", "node-a", {"10.244.1.7"});
  done.terminal = true;
  st.pods = {st.pods[0], hostnet, done, MakePod("a", "pending", "node-a", {})};
  auto p = Forward(st);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->entries[kTableForward].size(), 2u);  // the node's two addresses
  EXPECT_EQ(p->ports.size(), 2u);
}

TEST(NatCompiler, TwoLocalPodsWithOneIpFailOrSkipTheLaterOne) {
  ClusterState st;
  st.pods.push_back(MakePod("a", "one", "node-a", {"10.244.1.5"}));
  st.pods.push_back(MakePod("a", "two", "node-a", {"10.244.1.5"}));
  auto p = Forward(st);
  ASSERT_FALSE(p.ok());
  EXPECT_THAT(p.status().message(),
              HasSubstr("Pod a/two: status.podIPs[0]: 10.244.1.5 is also held by Pod a/one"));
  CompileOptions skip;
  skip.skip_bad_objects = true;
  std::vector<std::string> notes;
  p = Forward(st, skip, &notes);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(OutputTo(*p, "10.244.1.5")->port.ToString(), "vf:a/one");
  EXPECT_EQ(notes.size(), 1u);
}

}  // namespace
}  // namespace nicflow::flowtables
