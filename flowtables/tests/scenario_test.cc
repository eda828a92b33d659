// Scenario files: both formats of examples/README.md, the example files, and bad scenarios.
#include "nicflow/flowtables/scenario.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "loader_test_util.h"

namespace nicflow::flowtables {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;
using testing::SourceDir;
using testing::TempDir;

IpAddr Ip(std::string_view s) { return *IpAddr::Parse(s); }
IpPrefix Cidr(std::string_view s) { return *IpPrefix::Parse(s); }

std::string Message(const absl::Status& st) { return std::string(Sv(st.message())); }

TEST(ServiceScenarios, ShopExampleParsesWithItsManifests) {
  auto scenarios = LoadServiceScenarios(SourceDir() + "/examples/shop/scenarios.yaml");
  ASSERT_TRUE(scenarios.ok()) << scenarios.status();
  ASSERT_EQ(scenarios->size(), 1u);
  const ServiceScenario& s = (*scenarios)[0];
  EXPECT_EQ(s.name, "shop on node-a");
  EXPECT_EQ(s.node_name, "node-a");
  ASSERT_EQ(s.manifests.size(), 3u);
  EXPECT_THAT(s.manifests[0], HasSubstr("examples/shop/cluster.yaml"));
  EXPECT_EQ(s.state.services.size(), 4u);
  EXPECT_EQ(s.state.network_policies.size(), 6u);
  EXPECT_TRUE(s.state.proxy_config.has_value());
  EXPECT_FALSE(s.state.node_facts.has_value());
  ASSERT_EQ(s.packets.size(), 9u);

  const ScenarioPacket& first = s.packets[0];
  EXPECT_EQ(first.name, "web pod to cart service");
  EXPECT_EQ(first.proto, Protocol::kTcp);
  EXPECT_EQ(first.src, Ip("10.244.1.10"));
  EXPECT_EQ(first.dst, Ip("10.96.0.90"));
  EXPECT_EQ(first.dst_port, 80);
  EXPECT_EQ(first.verdict, ExpectedVerdict::kDnat);
  EXPECT_THAT(first.endpoints, ElementsAre(Pair(Ip("10.244.1.20"), 9000)));
  EXPECT_FALSE(first.masq);
  EXPECT_FALSE(first.in_port.has_value());

  EXPECT_EQ(s.packets[1].verdict, ExpectedVerdict::kDrop);
  EXPECT_EQ(s.packets[2].verdict, ExpectedVerdict::kForward);
  EXPECT_EQ(s.packets[3].endpoints.size(), 2u);
  EXPECT_TRUE(s.packets[3].masq);
  EXPECT_EQ(s.packets[7].verdict, ExpectedVerdict::kReject);
}

TEST(ServiceScenarios, InlineObjectsAndNodeFacts) {
  auto scenarios = ParseServiceScenarios(R"(
- name: inline
  objects:
  - apiVersion: v1
    kind: Service
    metadata: {name: web, namespace: default}
    spec: {clusterIP: 172.30.0.10, ports: [{port: 80, targetPort: 8080}]}
  - apiVersion: discovery.k8s.io/v1
    kind: EndpointSlice
    metadata: {name: web-1, labels: {kubernetes.io/service-name: web}}
    addressType: IPv6
    endpoints: [{addresses: ["fd00::5"]}]
    ports: [{port: 8080}]
  node:
    name: test-node
    ips: [192.168.0.2, "2001:db8::1"]
    clusterCIDRs: [10.0.0.0/8, "fd00::/64"]
    serviceCIDRs: [172.30.0.0/16]
    podCIDRs: [10.0.1.0/24]
    masqueradeAll: true
    nodePortAddresses: [192.168.0.2/32]
    nonMasqueradeCIDRs: [10.0.0.0/8]
  packets:
  - {name: v6, proto: UDP, src: "2001:db8::9", dst: "[fd00::1]:53", expect: "[fd00::5]:8080", masq: true, inPort: uplink}
)",
                                         "inline.yaml", "");
  ASSERT_TRUE(scenarios.ok()) << scenarios.status();
  const ServiceScenario& s = (*scenarios)[0];
  EXPECT_EQ(s.node_name, "test-node");
  EXPECT_EQ(s.state.services.size(), 1u);
  EXPECT_EQ(s.state.endpoint_slices.size(), 1u);
  EXPECT_EQ(s.state.services[0].source.file, "inline.yaml");
  ASSERT_TRUE(s.state.node_facts.has_value());
  const NodeFacts& n = *s.state.node_facts;
  EXPECT_THAT(n.ips, ElementsAre(Ip("192.168.0.2"), Ip("2001:db8::1")));
  EXPECT_THAT(n.cluster_cidrs, ElementsAre(Cidr("10.0.0.0/8"), Cidr("fd00::/64")));
  EXPECT_THAT(n.service_cidrs, ElementsAre(Cidr("172.30.0.0/16")));
  EXPECT_THAT(n.pod_cidrs, ElementsAre(Cidr("10.0.1.0/24")));
  EXPECT_TRUE(n.masquerade_all);
  EXPECT_THAT(n.node_port_addresses, ElementsAre(Cidr("192.168.0.2/32")));
  EXPECT_THAT(n.masq.non_masquerade_cidrs, ElementsAre(Cidr("10.0.0.0/8")));
  const ScenarioPacket& p = s.packets.at(0);
  EXPECT_EQ(p.proto, Protocol::kUdp);
  EXPECT_EQ(p.dst, Ip("fd00::1"));
  EXPECT_EQ(p.dst_port, 53);
  EXPECT_THAT(p.endpoints, ElementsAre(Pair(Ip("fd00::5"), 8080)));
  EXPECT_EQ(p.in_port, "uplink");
}

TEST(ServiceScenarios, ErrorsNameFileScenarioAndField) {
  auto bad_dst = ParseServiceScenarios(
      "- name: x\n  packets: [{name: p, proto: TCP, src: 10.0.0.1, dst: 10.0.0.2, expect: ''}]\n",
      "s.yaml", "");
  EXPECT_EQ(Message(bad_dst.status()),
            "s.yaml: scenario 1 (x): packets[0].dst: invalid endpoint \"10.0.0.2\": missing port "
            "(IPv6 is written [addr]:port)");
  auto bad_expect = ParseServiceScenarios(
      "- name: x\n  packets: [{proto: TCP, src: 10.0.0.1, dst: 10.0.0.2:80, expect: ACCEPT}]\n",
      "s.yaml", "");
  EXPECT_THAT(Message(bad_expect.status()),
              HasSubstr("s.yaml: scenario 1 (x): packets[0].expect: invalid endpoint \"ACCEPT\""));
  auto bad_proto = ParseServiceScenarios(
      "- packets: [{proto: ICMP, src: 10.0.0.1, dst: 10.0.0.2:80, expect: DROP}]\n", "s.yaml", "");
  EXPECT_EQ(Message(bad_proto.status()),
            "s.yaml: scenario 1: packets[0].proto: unsupported value \"ICMP\": must be one of "
            "TCP, UDP, SCTP");
  auto missing = ParseServiceScenarios("- name: x\n  manifests: [nope.yaml]\n", "s.yaml", "/tmp");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(missing.status()), HasSubstr("/tmp/nope.yaml"));
  auto bad_object = ParseServiceScenarios(
      "- name: x\n  objects:\n  - {apiVersion: v1, kind: Service, metadata: {name: a}, spec: "
      "{ports: [{port: 0}]}}\n",
      "s.yaml", "");
  EXPECT_EQ(Message(bad_object.status()),
            "s.yaml: Service default/a: spec.ports[0].port: 0 out of range (1-65535)");
  EXPECT_THAT(Message(ParseServiceScenarios("name: x\n", "s.yaml", "").status()),
              HasSubstr("expected a list of scenarios, got a map"));
}

TEST(ServiceScenarios, ManifestPathsAreRelativeToTheScenarioFile) {
  TempDir dir;
  dir.Write("m/ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n");
  std::string path = dir.Write("m/scenarios.yaml", "- name: x\n  manifests: [ns.yaml]\n");
  auto scenarios = LoadServiceScenarios(path);
  ASSERT_TRUE(scenarios.ok()) << scenarios.status();
  EXPECT_EQ((*scenarios)[0].state.namespaces.size(), 1u);
  EXPECT_EQ((*scenarios)[0].manifests[0], (dir.path() / "m/ns.yaml").string());
}

// The conformance suite's scenario files are the parser's real consumers: every one must parse.
TEST(Scenarios, EveryConformanceScenarioFileParses) {
  std::filesystem::path dir = SourceDir() + "/tests/conformance/scenarios";
  if (!std::filesystem::exists(dir)) GTEST_SKIP() << "no conformance scenarios in this tree";
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".yaml") continue;
    ++files;
    std::string path = entry.path().string();
    absl::Status st = entry.path().filename().string().starts_with("netpol")
                          ? LoadNetpolScenarios(path).status()
                          : LoadServiceScenarios(path).status();
    EXPECT_TRUE(st.ok()) << st;
  }
  EXPECT_GT(files, 0);
}

TEST(NetpolScenarios, ExampleParses) {
  auto scenarios = LoadNetpolScenarios(SourceDir() + "/examples/netpol/scenarios.yaml");
  ASSERT_TRUE(scenarios.ok()) << scenarios.status();
  ASSERT_EQ(scenarios->size(), 1u);
  const NetpolScenario& s = (*scenarios)[0];
  EXPECT_EQ(s.namespaces.size(), 3u);
  EXPECT_EQ(s.namespaces.at("y").at("ns"), "y");
  ASSERT_EQ(s.pods.size(), 4u);
  EXPECT_EQ(s.pods[0].ns, "x");
  EXPECT_EQ(s.pods[0].name, "a");
  EXPECT_EQ(s.pods[0].ip, Ip("10.0.0.11"));
  ASSERT_EQ(s.pods[0].ports.size(), 2u);
  EXPECT_EQ(s.pods[0].ports[0].name, "serve-80-tcp");
  EXPECT_EQ(s.pods[0].ports[0].port, 80);
  ASSERT_EQ(s.policies.size(), 2u);
  EXPECT_EQ(s.policies[0].name, "deny-all");
  EXPECT_TRUE(s.policies[1].affects_ingress);
  ASSERT_EQ(s.probes.size(), 2u);
  EXPECT_EQ(s.probes[0].port, 80);
  EXPECT_EQ(s.probes[0].allowed.size(), 6u);
  EXPECT_EQ(s.probes[0].allowed[0], std::make_pair(std::string("y/a"), std::string("x/a")));
  EXPECT_EQ(s.probes[1].denied.size(), 3u);
}

TEST(NetpolScenarios, ConvertsToAOneNodeCluster) {
  auto scenarios = LoadNetpolScenarios(SourceDir() + "/examples/netpol/scenarios.yaml");
  ASSERT_TRUE(scenarios.ok()) << scenarios.status();
  ClusterState state = NetpolScenarioToClusterState((*scenarios)[0]);
  ASSERT_EQ(state.namespaces.size(), 3u);
  EXPECT_EQ(state.namespaces[0].labels.at("kubernetes.io/metadata.name"), "x");
  EXPECT_EQ(state.namespaces[0].labels.at("ns"), "x");
  ASSERT_EQ(state.pods.size(), 4u);
  EXPECT_EQ(state.pods[2].node_name, "node-1");
  EXPECT_THAT(state.pods[2].ips, ElementsAre(Ip("10.0.1.11")));
  EXPECT_EQ(state.network_policies.size(), 2u);
  ASSERT_TRUE(state.node_facts.has_value());
  EXPECT_EQ(state.node_facts->name, "node-1");
  EXPECT_THAT(state.node_facts->ips, ElementsAre(Ip("192.168.255.1")));
  EXPECT_THAT(state.node_facts->cluster_cidrs, ElementsAre(Cidr("10.0.0.0/8")));
  EXPECT_EQ(state.nodes.size(), 1u);
}

TEST(NetpolScenarios, ClusterCidrCoversPodsOutsideTenSlashEight) {
  auto scenarios = ParseNetpolScenarios(R"(
- name: outside
  namespaces: {x: {ns: x}}
  pods:
  - {ns: x, name: a, ip: 10.0.0.1}
  - {ns: x, name: b, ip: 172.16.0.5}
  - {ns: x, name: c, ip: "fd00:1::5"}
)",
                                        "n.yaml");
  ASSERT_TRUE(scenarios.ok()) << scenarios.status();
  ClusterState state = NetpolScenarioToClusterState((*scenarios)[0]);
  EXPECT_THAT(state.node_facts->cluster_cidrs,
              ElementsAre(Cidr("10.0.0.0/8"), Cidr("172.0.0.0/8"), Cidr("fd00:1::/64")));
  EXPECT_THAT(state.node_facts->ips, ElementsAre(Ip("192.168.255.1"), Ip("fd00:ffff::1")));
}

TEST(NetpolScenarios, ErrorsNameTheCulprit) {
  auto unknown_pod = ParseNetpolScenarios(R"(
- name: s
  namespaces: {x: {}}
  pods: [{ns: x, name: a, ip: 10.0.0.1}]
  probes: [{port: 80, proto: TCP, allowed: [[x/a, x/b]]}]
)",
                                          "n.yaml");
  EXPECT_EQ(Message(unknown_pod.status()),
            "n.yaml: scenario 1 (s): probes[0].allowed[0]: unknown pod \"x/b\" (write ns/name)");
  auto unknown_ns = ParseNetpolScenarios(
      "- namespaces: {x: {}}\n  pods: [{ns: y, name: a, ip: 10.0.0.1}]\n", "n.yaml");
  EXPECT_EQ(Message(unknown_ns.status()),
            "n.yaml: scenario 1: pods[0].ns: namespace \"y\" is not in the scenario's namespaces");
  auto bad_policy = ParseNetpolScenarios(R"(
- namespaces: {x: {}}
  policies:
  - {apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, metadata: {name: p, namespace: x}, spec: {podSelector: {matchExpressions: [{key: a, operator: In}]}}}
)",
                                         "n.yaml");
  EXPECT_EQ(Message(bad_policy.status()),
            "n.yaml: NetworkPolicy x/p: spec.podSelector.matchExpressions[0].values: must be "
            "specified when operator is In or NotIn");
  auto not_policy = ParseNetpolScenarios(
      "- policies: [{apiVersion: v1, kind: Service, metadata: {name: a}}]\n", "n.yaml");
  EXPECT_EQ(Message(not_policy.status()),
            "n.yaml: scenario 1: policies[0].kind: expected NetworkPolicy, got Service");
  auto bad_pair = ParseNetpolScenarios(R"(
- namespaces: {x: {}}
  pods: [{ns: x, name: a, ip: 10.0.0.1}]
  probes: [{port: 80, proto: TCP, denied: [[x/a]]}]
)",
                                       "n.yaml");
  EXPECT_EQ(Message(bad_pair.status()),
            "n.yaml: scenario 1: probes[0].denied[0]: expected a pair [from, to], got 1 entries");
}

}  // namespace
}  // namespace nicflow::flowtables
