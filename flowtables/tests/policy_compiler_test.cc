#include "policy_compiler.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "policy_test_util.h"

namespace nicflow::flowtables {
namespace {

using namespace testing_policy;  // NOLINT: test helpers
using ::testing::HasSubstr;

constexpr std::string_view kXa = "10.0.0.11", kXb = "10.0.0.12", kYa = "10.0.1.11",
                           kZa = "10.0.2.11", kRemote = "10.1.0.5", kOutside = "192.0.2.7";

std::vector<ContainerPort> ServePorts() {
  return {{"serve-80-tcp", 80, Protocol::kTcp},
          {"serve-81-tcp", 81, Protocol::kTcp},
          {"serve-80-udp", 80, Protocol::kUdp}};
}

// Namespaces x, y, z (label ns=<name>); pods a, b (label pod=<name>); y/r runs on another node.
ClusterState Cluster() {
  ClusterState s;
  for (std::string ns : {"x", "y", "z"}) s.namespaces.push_back(MakeNamespace(ns, {{"ns", ns}}));
  s.pods.push_back(MakePod("x", "a", {{"pod", "a"}}, {std::string(kXa)}, "n1", ServePorts()));
  s.pods.push_back(MakePod("x", "b", {{"pod", "b"}}, {std::string(kXb)}, "n1", ServePorts()));
  s.pods.push_back(MakePod("y", "a", {{"pod", "a"}}, {std::string(kYa)}, "n1", ServePorts()));
  s.pods.push_back(MakePod("z", "a", {{"pod", "a"}}, {std::string(kZa)}, "n1", ServePorts()));
  s.pods.push_back(MakePod("y", "r", {{"pod", "r"}}, {std::string(kRemote)}, "n2", ServePorts()));
  return s;
}

NetworkPolicyRule Rule(std::vector<NetworkPolicyPeer> peers,
                       std::vector<NetworkPolicyPort> ports = {}) {
  return NetworkPolicyRule{std::move(peers), std::move(ports)};
}

TEST(PolicyCompiler, WithoutPoliciesTablesAreEmptyAndEverythingPasses) {
  Compiled c = CompileOrDie(Cluster());
  EXPECT_EQ(PolicyEntryCount(c.program), 0u);
  EXPECT_TRUE(Allowed(c.program, kXa, kXb));
  EXPECT_TRUE(Allowed(c.program, kOutside, kXa, 9999, Protocol::kUdp));
}

TEST(PolicyCompiler, DefaultDenyIngressDropsWithAnOriginNamingTheIsolation) {
  ClusterState s = Cluster();
  s.network_policies.push_back(IngressPolicy("x", "deny-all", Sel(), {}));
  Compiled c = CompileOrDie(s);
  Walk w = Trace(c.program, Packet{Ip(kYa), Ip(kXa)});
  ASSERT_EQ(w.fate, Fate::kDrop);
  ASSERT_FALSE(w.path.empty());
  EXPECT_EQ(w.path.front()->origin.ToString().find("Pod x/a"), 0u)
      << w.path.front()->origin.ToString();
  EXPECT_EQ(w.path.back()->origin.kind, "NetworkPolicy");
  EXPECT_EQ(w.path.back()->origin.name, "deny-all");
  EXPECT_THAT(w.path.back()->origin.detail, HasSubstr("ingress isolation"));
  // Other namespaces are untouched, and egress of x is not isolated.
  EXPECT_TRUE(Allowed(c.program, kXa, kYa));
  EXPECT_TRUE(Allowed(c.program, kXa, kZa));
}

TEST(PolicyCompiler, PodSelectorAlonePicksPeersInThePolicyNamespaceOnly) {
  ClusterState s = Cluster();
  s.network_policies.push_back(
      IngressPolicy("x", "from-b", Sel({{"pod", "a"}}), {Rule({PodPeer(Sel({{"pod", "b"}}))})}));
  Compiled c = CompileOrDie(s);
  EXPECT_TRUE(Allowed(c.program, kXb, kXa));
  EXPECT_FALSE(Allowed(c.program, kYa, kXa));  // y/a has pod=a, not b, and is in another ns
  s.pods.push_back(MakePod("y", "b", {{"pod", "b"}}, {"10.0.1.12"}));
  c = CompileOrDie(s);
  EXPECT_FALSE(Allowed(c.program, "10.0.1.12", kXa));  // pod=b but in y
  EXPECT_TRUE(Allowed(c.program, kXa, kXb));           // x/b is not selected
}

TEST(PolicyCompiler, NamespaceSelectorAloneAdmitsEveryPodOfSelectedNamespacesOnAnyNode) {
  ClusterState s = Cluster();
  s.network_policies.push_back(
      IngressPolicy("x", "from-y", Sel(), {Rule({NsPeer(Sel({{"ns", "y"}}))})}));
  Compiled c = CompileOrDie(s);
  EXPECT_TRUE(Allowed(c.program, kYa, kXa));
  EXPECT_TRUE(Allowed(c.program, kRemote, kXb));
  EXPECT_FALSE(Allowed(c.program, kZa, kXa));
  EXPECT_FALSE(Allowed(c.program, kXb, kXa));
  EXPECT_FALSE(Allowed(c.program, kOutside, kXa));
}

TEST(PolicyCompiler, PodAndNamespaceSelectorInOnePeerAreAnded) {
  ClusterState s = Cluster();
  s.network_policies.push_back(IngressPolicy(
      "x", "from-y-r", Sel(), {Rule({NsPodPeer(Sel({{"ns", "y"}}), Sel({{"pod", "r"}}))})}));
  Compiled c = CompileOrDie(s);
  EXPECT_TRUE(Allowed(c.program, kRemote, kXa));
  EXPECT_FALSE(Allowed(c.program, kYa, kXa));
}

TEST(PolicyCompiler, SeparatePeersAreOred) {
  ClusterState s = Cluster();
  s.network_policies.push_back(
      IngressPolicy("x", "from-y-or-b", Sel({{"pod", "a"}}),
                    {Rule({NsPeer(Sel({{"ns", "y"}})), PodPeer(Sel({{"pod", "b"}}))})}));
  Compiled c = CompileOrDie(s);
  EXPECT_TRUE(Allowed(c.program, kYa, kXa));
  EXPECT_TRUE(Allowed(c.program, kXb, kXa));
  EXPECT_FALSE(Allowed(c.program, kZa, kXa));
}

TEST(PolicyCompiler, MatchExpressionOperatorsSelectPodsAndNamespaces) {
  ClusterState s = Cluster();
  LabelSelector not_y;
  not_y.match_expressions.push_back({"ns", LabelSelector::Op::kNotIn, {"y"}});
  LabelSelector has_pod;
  has_pod.match_expressions.push_back({"pod", LabelSelector::Op::kExists, {}});
  LabelSelector in_b;
  in_b.match_expressions.push_back({"pod", LabelSelector::Op::kIn, {"b", "c"}});
  LabelSelector no_tier;
  no_tier.match_expressions.push_back({"tier", LabelSelector::Op::kDoesNotExist, {}});
  s.network_policies.push_back(
      IngressPolicy("x", "expr", in_b, {Rule({NsPodPeer(not_y, has_pod)})}));
  s.network_policies.push_back(IngressPolicy("z", "expr", no_tier, {}));
  Compiled c = CompileOrDie(s);
  EXPECT_TRUE(Allowed(c.program, kZa, kXb));   // z is not y, z/a has a pod label
  EXPECT_FALSE(Allowed(c.program, kYa, kXb));  // y is excluded
  EXPECT_TRUE(Allowed(c.program, kYa, kXa));   // x/a is not pod in (b, c): not isolated
  EXPECT_FALSE(Allowed(c.program, kXa, kZa));  // z/a has no tier label: isolated, no rule
}

TEST(PolicyCompiler, IpBlockMatchesByAddressWithExceptions) {
  ClusterState s = Cluster();
  s.network_policies.push_back(IngressPolicy(
      "x", "block", Sel(),
      {Rule({BlockPeer("10.0.0.0/16", {"10.0.1.0/24"}), BlockPeer("192.0.2.0/24")})}));
  Compiled c = CompileOrDie(s);
  EXPECT_TRUE(Allowed(c.program, kZa, kXa));       // a pod address inside the block counts
  EXPECT_FALSE(Allowed(c.program, kYa, kXa));      // inside the except
  EXPECT_TRUE(Allowed(c.program, kOutside, kXa));  // a non-pod address
  EXPECT_FALSE(Allowed(c.program, kRemote, kXa));  // outside every block
  EXPECT_TRUE(Allowed(c.program, "2001:db8::1", "2001:db8::2"));  // no v6 pod: unaffected
}

TEST(PolicyCompiler, PortsMatchProtocolNumberAndEndPortRange) {
  ClusterState s = Cluster();
  s.network_policies.push_back(IngressPolicy(
      "x", "ports", Sel(),
      {Rule({}, {Port(80), Port(1000, Protocol::kUdp, 1010), Port(5000, Protocol::kSctp)})}));
  Compiled c = CompileOrDie(s);
  EXPECT_TRUE(Allowed(c.program, kYa, kXa, 80));
  EXPECT_FALSE(Allowed(c.program, kYa, kXa, 81));
  EXPECT_FALSE(Allowed(c.program, kYa, kXa, 80, Protocol::kUdp));
  EXPECT_TRUE(Allowed(c.program, kYa, kXa, 1000, Protocol::kUdp));
  EXPECT_TRUE(Allowed(c.program, kYa, kXa, 1010, Protocol::kUdp));
  EXPECT_FALSE(Allowed(c.program, kYa, kXa, 1011, Protocol::kUdp));
  EXPECT_FALSE(Allowed(c.program, kYa, kXa, 1005, Protocol::kTcp));
  EXPECT_TRUE(Allowed(c.program, kYa, kXa, 5000, Protocol::kSctp));
  EXPECT_FALSE(Allowed(c.program, kYa, kXa, 5000, Protocol::kTcp));
}

TEST(PolicyCompiler, PortWithoutNumberAllowsEveryPortOfItsProtocol) {
  ClusterState s = Cluster();
  s.network_policies.push_back(
      IngressPolicy("x", "udp", Sel(), {Rule({}, {AllPortsOf(Protocol::kUdp)})}));
  Compiled c = CompileOrDie(s);
  EXPECT_TRUE(Allowed(c.program, kYa, kXa, 53, Protocol::kUdp));
  EXPECT_TRUE(Allowed(c.program, kYa, kXa, 65535, Protocol::kUdp));
  EXPECT_FALSE(Allowed(c.program, kYa, kXa, 53, Protocol::kTcp));
}

TEST(PolicyCompiler, IngressNamedPortResolvesAgainstTheReceivingPod) {
  ClusterState s = Cluster();
  s.pods[1].ports = {{"http", 8080, Protocol::kTcp}};  // x/b
  s.pods[0].ports = {{"http", 9090, Protocol::kTcp}};  // x/a
  s.pods.push_back(MakePod("x", "c", {}, {"10.0.0.13"}, "n1", {{"http", 8080, Protocol::kUdp}}));
  s.network_policies.push_back(IngressPolicy("x", "http", Sel(), {Rule({}, {NamedPort("http")})}));
  Compiled c = CompileOrDie(s);
  EXPECT_TRUE(Allowed(c.program, kYa, kXa, 9090));
  EXPECT_FALSE(Allowed(c.program, kYa, kXa, 8080));
  EXPECT_TRUE(Allowed(c.program, kYa, kXb, 8080));
  EXPECT_FALSE(Allowed(c.program, kYa, kXb, 9090));
  // x/c names a UDP port "http": a TCP named port does not match it, so nothing is allowed.
  EXPECT_FALSE(Allowed(c.program, kYa, "10.0.0.13", 8080));
  EXPECT_FALSE(Allowed(c.program, kYa, "10.0.0.13", 8080, Protocol::kUdp));
}

TEST(PolicyCompiler, EgressNamedPortResolvesAgainstTheDestinationPod) {
  ClusterState s = Cluster();
  s.pods[2].ports = {{"dns", 5353, Protocol::kUdp}};  // y/a
  s.pods[4].ports = {{"dns", 53, Protocol::kUdp}};    // y/r (remote)
  s.network_policies.push_back(EgressPolicy(
      "x", "dns", Sel({{"pod", "a"}}),
      {Rule({NsPeer(Sel({{"ns", "y"}}))}, {NamedPort("dns", Protocol::kUdp), Port(443)})}));
  Compiled c = CompileOrDie(s);
  EXPECT_TRUE(Allowed(c.program, kXa, kYa, 5353, Protocol::kUdp));
  EXPECT_FALSE(Allowed(c.program, kXa, kYa, 53, Protocol::kUdp));
  EXPECT_TRUE(Allowed(c.program, kXa, kRemote, 53, Protocol::kUdp));
  EXPECT_FALSE(Allowed(c.program, kXa, kRemote, 5353, Protocol::kUdp));
  EXPECT_TRUE(Allowed(c.program, kXa, kRemote, 443));
  EXPECT_FALSE(Allowed(c.program, kXa, kZa, 53, Protocol::kUdp));
  EXPECT_TRUE(Allowed(c.program, kXb, kZa, 53, Protocol::kUdp));  // x/b is not selected
}

TEST(PolicyCompiler, EmptyFromAllowsEverySourceAndEmptyRuleListDeniesAll) {
  ClusterState s = Cluster();
  s.network_policies.push_back(IngressPolicy("x", "all", Sel({{"pod", "a"}}), {Rule({})}));
  s.network_policies.push_back(IngressPolicy("x", "none", Sel({{"pod", "b"}}), {}));
  Compiled c = CompileOrDie(s);
  EXPECT_TRUE(Allowed(c.program, kOutside, kXa, 1, Protocol::kSctp));
  EXPECT_TRUE(Allowed(c.program, kYa, kXa));
  EXPECT_FALSE(Allowed(c.program, kYa, kXb));
  EXPECT_FALSE(Allowed(c.program, kXa, kXb));
}

TEST(PolicyCompiler, EgressIsolationIsSeparateFromIngress) {
  ClusterState s = Cluster();
  s.network_policies.push_back(EgressPolicy("x", "to-y-only", Sel({{"pod", "a"}}),
                                            {Rule({NsPeer(Sel({{"ns", "y"}}))}, {Port(80)})}));
  Compiled c = CompileOrDie(s);
  EXPECT_TRUE(Allowed(c.program, kXa, kYa, 80));
  EXPECT_FALSE(Allowed(c.program, kXa, kYa, 81));
  EXPECT_FALSE(Allowed(c.program, kXa, kZa, 80));
  EXPECT_FALSE(Allowed(c.program, kXa, kOutside, 80));
  EXPECT_TRUE(Allowed(c.program, kZa, kXa, 81));  // ingress of x/a is not isolated
  Walk w = Trace(c.program, Packet{Ip(kXa), Ip(kZa)});
  ASSERT_EQ(w.fate, Fate::kDrop);
  EXPECT_THAT(w.path.back()->origin.ToString(), HasSubstr("egress isolation"));
}

TEST(PolicyCompiler, EgressAndIngressMustBothAllow) {
  ClusterState s = Cluster();
  s.network_policies.push_back(EgressPolicy("x", "out", Sel(), {Rule({}, {Port(80)})}));
  s.network_policies.push_back(IngressPolicy("y", "in", Sel(), {Rule({}, {Port(81)})}));
  Compiled c = CompileOrDie(s);
  EXPECT_FALSE(Allowed(c.program, kXa, kYa, 80));
  EXPECT_FALSE(Allowed(c.program, kXa, kYa, 81));
  EXPECT_TRUE(Allowed(c.program, kXa, kZa, 80));
  EXPECT_TRUE(Allowed(c.program, kZa, kYa, 81));
}

TEST(PolicyCompiler, PoliciesSelectingAPodAreUnioned) {
  ClusterState s = Cluster();
  s.network_policies.push_back(
      IngressPolicy("x", "from-y", Sel(), {Rule({NsPeer(Sel({{"ns", "y"}}))}, {Port(80)})}));
  s.network_policies.push_back(
      IngressPolicy("x", "from-z", Sel({{"pod", "a"}}), {Rule({NsPeer(Sel({{"ns", "z"}}))})}));
  Compiled c = CompileOrDie(s);
  EXPECT_TRUE(Allowed(c.program, kYa, kXa, 80));
  EXPECT_TRUE(Allowed(c.program, kZa, kXa, 81));
  EXPECT_FALSE(Allowed(c.program, kYa, kXa, 81));
  EXPECT_FALSE(Allowed(c.program, kZa, kXb, 81));  // x/b only has from-y
  EXPECT_TRUE(Allowed(c.program, kYa, kXb, 80));
}

TEST(PolicyCompiler, PoliciesOfOtherNamespacesDoNotSelect) {
  ClusterState s = Cluster();
  s.network_policies.push_back(IngressPolicy("y", "deny", Sel({{"pod", "a"}}), {}));
  Compiled c = CompileOrDie(s);
  EXPECT_TRUE(Allowed(c.program, kZa, kXa));
  EXPECT_FALSE(Allowed(c.program, kZa, kYa));
}

TEST(PolicyCompiler, TrafficFromTheNodeReachesIsolatedPods) {
  ClusterState s = Cluster();
  s.network_policies.push_back(IngressPolicy("x", "deny", Sel(), {}));
  Compiled c = CompileOrDie(s);
  EXPECT_TRUE(Allowed(c.program, kNodeIp, kXa, 8080, Protocol::kTcp, kFlagFromHost));
  EXPECT_FALSE(Allowed(c.program, kNodeIp, kXa, 8080, Protocol::kTcp, 0));
}

TEST(PolicyCompiler, EgressToTheOwnNodeIsAlwaysAllowed) {
  ClusterState s = Cluster();
  s.network_policies.push_back(EgressPolicy("x", "deny-out", Sel(), {}));
  s.network_policies.push_back(
      EgressPolicy("y", "to-block", Sel(), {Rule({BlockPeer("192.168.0.0/24")}, {Port(443)})}));
  Compiled c = CompileOrDie(s);
  Walk w = Trace(c.program, Packet{Ip(kXa), Ip(kNodeIp), Protocol::kUdp, 53});
  ASSERT_EQ(w.fate, Fate::kAllow);
  EXPECT_EQ(w.path.back()->origin.kind, "Node");
  EXPECT_FALSE(Allowed(c.program, kXa, "192.168.0.3", 53, Protocol::kUdp));
  // The node's address inside a rule's ipBlock keeps both: any port to the node, 443 elsewhere.
  EXPECT_TRUE(Allowed(c.program, kYa, kNodeIp, 80));
  EXPECT_TRUE(Allowed(c.program, kYa, "192.168.0.3", 443));
  EXPECT_FALSE(Allowed(c.program, kYa, "192.168.0.3", 80));
}

TEST(PolicyCompiler, APodReachingItselfThroughAServiceIsNeverBlocked) {
  ClusterState s = Cluster();
  s.network_policies.push_back(IngressPolicy("x", "deny-in", Sel(), {}));
  s.network_policies.push_back(EgressPolicy("x", "deny-out", Sel(), {}));
  Compiled c = CompileOrDie(s);
  // masq_mark flags hairpin traffic (source == chosen endpoint); policy lets it through.
  Walk w = Trace(c.program, Packet{Ip(kXa), Ip(kXa), Protocol::kTcp, 80, kFlagHairpin});
  ASSERT_EQ(w.fate, Fate::kAllow);
  ASSERT_EQ(w.path.size(), 2u);  // the egress and the ingress bypass
  EXPECT_EQ(w.path[1]->origin.ToString().find("nicflow"), 0u);
  EXPECT_THAT(w.path[1]->origin.detail, HasSubstr("itself"));
  EXPECT_FALSE(Allowed(c.program, kXa, kXb, 80));
  EXPECT_FALSE(Allowed(c.program, kXb, kXa, 80));
}

TEST(PolicyCompiler, OnlyLocalPodsAreEnforced) {
  ClusterState s = Cluster();
  s.network_policies.push_back(IngressPolicy("y", "deny-in", Sel(), {}));
  s.network_policies.push_back(EgressPolicy("y", "deny-out", Sel(), {}));
  Compiled c = CompileOrDie(s);
  EXPECT_FALSE(Allowed(c.program, kXa, kYa));
  EXPECT_FALSE(Allowed(c.program, kYa, kXa));
  // y/r runs on n2: its node enforces both directions.
  EXPECT_TRUE(Allowed(c.program, kXa, kRemote));
  EXPECT_TRUE(Allowed(c.program, kRemote, kXa));
  for (const Entry& e : c.program.entries[kTableIngressPod]) EXPECT_NE(e.origin.name, "r");
}

TEST(PolicyCompiler, DualStackPodsAreEnforcedOnBothFamilies) {
  ClusterState s;
  s.namespaces.push_back(MakeNamespace("x"));
  s.pods.push_back(MakePod("x", "a", {{"pod", "a"}}, {"10.0.0.11", "fd00::11"}));
  s.pods.push_back(MakePod("x", "b", {{"pod", "b"}}, {"10.0.0.12", "fd00::12"}));
  s.pods.push_back(MakePod("x", "c", {{"pod", "c"}}, {"10.0.0.13", "fd00::13"}));
  s.network_policies.push_back(
      IngressPolicy("x", "from-b", Sel({{"pod", "a"}}),
                    {Rule({PodPeer(Sel({{"pod", "b"}})), BlockPeer("2001:db8::/64")})}));
  Compiled c = CompileOrDie(s);
  EXPECT_TRUE(Allowed(c.program, "fd00::12", "fd00::11"));
  EXPECT_FALSE(Allowed(c.program, "fd00::13", "fd00::11"));
  EXPECT_TRUE(Allowed(c.program, "2001:db8::9", "fd00::11"));
  EXPECT_TRUE(Allowed(c.program, "10.0.0.12", "10.0.0.11"));
  EXPECT_FALSE(Allowed(c.program, "10.0.0.13", "10.0.0.11"));
}

TEST(PolicyCompiler, HostNetworkAndTerminalPodsAreNeitherSelectedNorPeers) {
  ClusterState s = Cluster();
  Pod host = MakePod("x", "h", {{"pod", "h"}}, {"192.168.0.2"});
  host.host_network = true;
  Pod done = MakePod("x", "d", {{"pod", "h"}}, {"10.0.0.99"});
  done.terminal = true;
  s.pods.push_back(host);
  s.pods.push_back(done);
  s.network_policies.push_back(
      IngressPolicy("x", "h", Sel(), {Rule({PodPeer(Sel({{"pod", "h"}}))})}));
  Compiled c = CompileOrDie(s);
  EXPECT_FALSE(Allowed(c.program, "192.168.0.2", kXa));
  EXPECT_FALSE(Allowed(c.program, "10.0.0.99", kXa));
  EXPECT_TRUE(Allowed(c.program, kXa, "192.168.0.2"));        // h is not isolated
  EXPECT_EQ(c.program.entries[kTableIngressPod].size(), 4u);  // x/a, x/b, host and hairpin bypass
}

TEST(PolicyCompiler, EntriesNameTheirPolicyRuleAndPart) {
  ClusterState s = Cluster();
  s.network_policies.push_back(IngressPolicy(
      "x", "web", Sel({{"pod", "a"}}),
      {Rule({NsPeer(Sel({{"ns", "z"}})), NsPeer(Sel({{"ns", "y"}}))}, {Port(81), Port(80)})}));
  Compiled c = CompileOrDie(s);
  Walk w = Trace(c.program, Packet{Ip(kYa), Ip(kXa), Protocol::kTcp, 80});
  ASSERT_EQ(w.fate, Fate::kAllow);
  ASSERT_EQ(w.path.size(), 3u);
  EXPECT_EQ(w.path[0]->origin.ToString(), "Pod x/a ingress isolated by NetworkPolicy x/web");
  EXPECT_EQ(w.path[1]->origin.ToString(), "NetworkPolicy x/web ingress[0] from[1]");
  EXPECT_EQ(w.path[2]->origin.ToString(), "NetworkPolicy x/web ingress[0] ports[1]");
}

TEST(PolicyCompiler, AllowEntriesOfOneSetNeverTieAtEqualPriority) {
  ClusterState s = Cluster();
  // Overlapping ports and peers across rules: the interpreter fails the test on a tie.
  s.network_policies.push_back(IngressPolicy(
      "x", "overlap", Sel(),
      {Rule({NsPeer(Sel())}, {Port(80, Protocol::kTcp, 90)}), Rule({PodPeer(Sel())}, {Port(80)}),
       Rule({}, {Port(85)}), Rule({}, {Port(80, Protocol::kTcp, 85)})}));
  Compiled c = CompileOrDie(s);
  for (uint16_t port : {80, 85, 90, 91}) {
    EXPECT_EQ(Allowed(c.program, kXb, kXa, port), port != 91) << port;
  }
}

TEST(PolicyCompiler, MoreThan32PeerListsPuntsTheRestAndSaysSo) {
  ClusterState s = Cluster();
  std::vector<NetworkPolicyRule> rules;
  for (int i = 0; i < 40; ++i) {
    rules.push_back(Rule({BlockPeer("198.51.100." + std::to_string(i) + "/32")},
                         {Port(static_cast<uint16_t>(1000 + i))}));
  }
  s.network_policies.push_back(IngressPolicy("x", "many", Sel({{"pod", "a"}}), rules));
  Compiled c = CompileOrDie(s);
  ASSERT_EQ(c.notes.size(), 1u);
  EXPECT_THAT(c.notes[0], HasSubstr("more than 32"));
  int allowed = 0, punted = 0;
  for (int i = 0; i < 40; ++i) {
    const Packet p{Ip("198.51.100." + std::to_string(i)), Ip(kXa), Protocol::kTcp,
                   static_cast<uint16_t>(1000 + i)};
    const Fate f = FateOf(c.program, p);
    allowed += f == Fate::kAllow;
    punted += f == Fate::kPunt;
    // A wrong port is never allowed.
    EXPECT_NE(FateOf(c.program, Packet{p.src, p.dst, Protocol::kTcp, 999}), Fate::kAllow);
  }
  EXPECT_EQ(allowed, 32);
  EXPECT_EQ(punted, 8);
}

TEST(PolicyCompiler, APeerWithoutSelectorOrIpBlockIsAnErrorNamingIt) {
  ClusterState s = Cluster();
  s.network_policies.push_back(
      IngressPolicy("x", "bad", Sel(), {Rule({}), Rule({NetworkPolicyPeer{}})}));
  ProgramBuilder b;
  std::vector<std::string> notes;
  absl::Status st = CompilePolicies(s, Node1(), b, notes);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("NetworkPolicy x/bad: spec.ingress[1].from[0]"));
}

TEST(PolicyCompiler, EndPortBelowPortIsAnErrorNamingIt) {
  ClusterState s = Cluster();
  s.network_policies.push_back(
      EgressPolicy("x", "bad", Sel(), {Rule({}, {Port(90, Protocol::kTcp, 80)})}));
  ProgramBuilder b;
  std::vector<std::string> notes;
  absl::Status st = CompilePolicies(s, Node1(), b, notes);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("NetworkPolicy x/bad: spec.egress[0].ports[0].endPort"));
}

}  // namespace
}  // namespace nicflow::flowtables
