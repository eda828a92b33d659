// The service stage, packet by packet: which frontend a packet hits and what it does.
#include "service_compiler.h"

#include <algorithm>
#include <random>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service_test_util.h"

namespace nicflow::flowtables {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using namespace ::nicflow::flowtables::testing;  // NOLINT: test helpers

constexpr uint32_t kDnatFlags = kFlagServiceHit | kFlagTranslated;

absl::StatusOr<Program> CompileSvc(const ClusterState& state, const NodeFacts& node = TestNode(),
                                   CompileOptions options = {},
                                   std::vector<std::string>* notes = nullptr) {
  ProgramBuilder b;
  std::vector<std::string> n;
  if (auto st = CompileServices(state, node, options, b, n); !st.ok()) return st;
  if (notes != nullptr) *notes = n;
  return std::move(b).Finish();
}

Program MustCompile(const ClusterState& state, const NodeFacts& node = TestNode()) {
  auto p = CompileSvc(state, node);
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? *std::move(p) : Program{};
}

const Entry* Svc(const Program& p, const Packet& pkt) { return Lookup(p, kTableService, pkt); }

// shop/web: ClusterIP 10.96.0.10, port http 80 -> targetPort "http" (8080 in the slice),
// endpoints 10.244.1.5 (here) and 10.244.2.5 (node-b).
ClusterState WebState() {
  ClusterState st;
  st.services.push_back(
      MakeService("shop", "web", {"10.96.0.10"}, {Port("http", 80, std::string("http"))}));
  st.endpoint_slices.push_back(MakeSlice("shop", "web-1", "web",
                                         {Ep("10.244.1.5", "node-a"), Ep("10.244.2.5", "node-b")},
                                         {EpPort("http", 8080)}));
  return st;
}

TEST(ServiceCompiler, ClusterIpLoadBalancesToReadyEndpointsOnTheSlicePort) {
  Program p = MustCompile(WebState());
  const Entry* e = Svc(p, Pkt("10.244.1.9", "10.96.0.10", 80, kFlagLocalSrc));
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(FlagsSet(e), kDnatFlags | kFlagClusterIp);
  EXPECT_THAT(Backends(p, e), ElementsAre("10.244.1.5:8080", "10.244.2.5:8080"));
  EXPECT_EQ(e->origin, (Origin{"Service", "shop", "web", "port http"}));
  const SelectGroup* g = GroupOf(p, e);
  ASSERT_NE(g, nullptr);
  EXPECT_EQ(g->name, "svc/shop/web/http/v4/cluster");
  EXPECT_EQ(g->buckets[0].actions, (std::vector<Action>{DnatAction{Ip("10.244.1.5"), 8080}}));
  EXPECT_EQ(g->buckets[0].weight, 1u);
  EXPECT_FALSE(g->affinity_timeout_s.has_value());
  ASSERT_NE(FindAction<GotoAction>(e), nullptr);
  EXPECT_EQ(FindAction<GotoAction>(e)->table, kTableMasqMark);
}

TEST(ServiceCompiler, MultiPortServiceResolvesEachPortByEndpointSlicePortName) {
  ClusterState st;
  st.services.push_back(
      MakeService("shop", "api", {"10.96.0.20"},
                  {Port("http", 80, std::string("web")), Port("metrics", 9100, uint16_t{9100})}));
  st.endpoint_slices.push_back(MakeSlice("shop", "api-1", "api", {Ep("10.244.2.7", "node-b")},
                                         {EpPort("metrics", 19100), EpPort("http", 8080)}));
  Program p = MustCompile(st);
  EXPECT_THAT(Backends(p, Svc(p, Pkt("10.244.1.9", "10.96.0.20", 80))),
              ElementsAre("10.244.2.7:8080"));
  EXPECT_THAT(Backends(p, Svc(p, Pkt("10.244.1.9", "10.96.0.20", 9100))),
              ElementsAre("10.244.2.7:19100"));
}

TEST(ServiceCompiler, SlicePortOfAnotherNameOrProtocolGivesNoEndpointsAndRejects) {
  ClusterState st = WebState();
  st.endpoint_slices[0].ports = {EpPort("https", 8443), EpPort("http", 8080, Protocol::kUdp)};
  Program p = MustCompile(st);
  const Entry* e = Svc(p, Pkt("10.244.1.9", "10.96.0.10", 80));
  EXPECT_TRUE(IsReject(e));
  EXPECT_THAT(e->origin.detail, HasSubstr("no endpoints"));
  EXPECT_TRUE(p.groups.empty());
}

TEST(ServiceCompiler, ServiceWithoutEndpointsRejectsOnEveryFrontend) {
  ClusterState st;
  Service s = MakeService("shop", "legacy", {"10.96.0.99"},
                          {Port("http", 80, uint16_t{80}, Protocol::kTcp, 30099)});
  s.type = ServiceType::kNodePort;
  s.external_ips = {Ip("198.51.100.9")};
  st.services.push_back(s);
  Program p = MustCompile(st);
  EXPECT_TRUE(IsReject(Svc(p, Pkt("10.244.1.9", "10.96.0.99", 80))));
  EXPECT_TRUE(IsReject(Svc(p, Pkt("203.0.113.7", "192.168.0.2", 30099))));
  EXPECT_TRUE(IsReject(Svc(p, Pkt("203.0.113.7", "198.51.100.9", 80))));
}

TEST(ServiceCompiler, NotReadyEndpointsAreLeftOut) {
  ClusterState st = WebState();
  st.endpoint_slices[0].endpoints[1].ready = false;
  Program p = MustCompile(st);
  EXPECT_THAT(Backends(p, Svc(p, Pkt("10.244.1.9", "10.96.0.10", 80))),
              ElementsAre("10.244.1.5:8080"));
}

TEST(ServiceCompiler, FallsBackToServingTerminatingEndpointsWhenNoneIsReady) {
  ClusterState st = WebState();
  st.endpoint_slices[0].endpoints = {Ep("10.244.1.5", "node-a", false, true, true),
                                     Ep("10.244.2.5", "node-b", false, false, true),
                                     Ep("10.244.2.6", "node-b", false, false, false)};
  Program p = MustCompile(st);
  EXPECT_THAT(Backends(p, Svc(p, Pkt("10.244.1.9", "10.96.0.10", 80))),
              ElementsAre("10.244.1.5:8080"));
}

TEST(ServiceCompiler, TerminatingEndpointsAreUnusedWhileAnyIsReady) {
  ClusterState st = WebState();
  st.endpoint_slices[0].endpoints[0] = Ep("10.244.1.5", "node-a", false, true, true);
  Program p = MustCompile(st);
  EXPECT_THAT(Backends(p, Svc(p, Pkt("10.244.1.9", "10.96.0.10", 80))),
              ElementsAre("10.244.2.5:8080"));
}

TEST(ServiceCompiler, LocalAndClusterSetsFallBackToTerminatingIndependently) {
  // Here only a serving+terminating endpoint; node-b has a ready one. Cluster traffic uses the
  // ready one, Local traffic the terminating local one (topology.go).
  ClusterState st = WebState();
  st.services[0].type = ServiceType::kNodePort;
  st.services[0].ports[0].node_port = 30080;
  st.services[0].external_traffic_local = true;
  st.endpoint_slices[0].endpoints[0] = Ep("10.244.1.5", "node-a", false, true, true);
  Program p = MustCompile(st);
  EXPECT_THAT(Backends(p, Svc(p, Pkt("10.244.1.9", "10.96.0.10", 80, kFlagLocalSrc))),
              ElementsAre("10.244.2.5:8080"));
  EXPECT_THAT(Backends(p, Svc(p, Pkt("203.0.113.7", "192.168.0.2", 30080))),
              ElementsAre("10.244.1.5:8080"));
}

TEST(ServiceCompiler, InternalTrafficPolicyLocalUsesOnlyLocalEndpoints) {
  ClusterState st = WebState();
  st.services[0].internal_traffic_local = true;
  Program p = MustCompile(st);
  const Entry* e = Svc(p, Pkt("10.244.1.9", "10.96.0.10", 80, kFlagLocalSrc));
  EXPECT_THAT(Backends(p, e), ElementsAre("10.244.1.5:8080"));
  EXPECT_EQ(GroupOf(p, e)->name, "svc/shop/web/http/v4/local");
}

TEST(ServiceCompiler, InternalTrafficPolicyLocalDropsWithoutLocalEndpoints) {
  ClusterState st = WebState();
  st.services[0].internal_traffic_local = true;
  st.endpoint_slices[0].endpoints.erase(st.endpoint_slices[0].endpoints.begin());
  Program p = MustCompile(st);
  const Entry* e = Svc(p, Pkt("10.244.1.9", "10.96.0.10", 80, kFlagLocalSrc));
  EXPECT_TRUE(IsDrop(e));
  EXPECT_THAT(e->origin.detail, HasSubstr("no local endpoints"));
}

ClusterState NodePortState(bool local_policy) {
  ClusterState st = WebState();
  st.services[0].type = ServiceType::kNodePort;
  st.services[0].ports[0].node_port = 30080;
  st.services[0].external_traffic_local = local_policy;
  return st;
}

TEST(ServiceCompiler, NodePortListensOnEveryNodeIpOfTheServiceFamily) {
  NodeFacts node = TestNode();
  node.ips.push_back(Ip("192.168.1.2"));
  Program p = MustCompile(NodePortState(false), node);
  for (const char* ip : {"192.168.0.2", "192.168.1.2"}) {
    const Entry* e = Svc(p, Pkt("203.0.113.7", ip, 30080));
    ASSERT_NE(e, nullptr) << ip;
    EXPECT_THAT(Backends(p, e), ElementsAre("10.244.1.5:8080", "10.244.2.5:8080"));
    EXPECT_EQ(e->origin.detail, std::string("port http nodePort 30080 on ") + ip);
  }
  // A single-stack IPv4 Service has no NodePort on the node's IPv6 address.
  EXPECT_EQ(Svc(p, Pkt("2001:db8::7", "2001:db8::2", 30080)), nullptr);
}

TEST(ServiceCompiler, NodePortListensOnlyOnNodePortAddresses) {
  NodeFacts node = TestNode();
  node.ips.push_back(Ip("192.168.1.2"));
  node.node_port_addresses = {Cidr("192.168.1.0/24")};
  Program p = MustCompile(NodePortState(false), node);
  EXPECT_EQ(Svc(p, Pkt("203.0.113.7", "192.168.0.2", 30080)), nullptr);
  EXPECT_NE(Svc(p, Pkt("203.0.113.7", "192.168.1.2", 30080)), nullptr);
}

TEST(ServiceCompiler, NodePortAddressesOfOneFamilyLeaveTheOtherFamilyOnEveryAddress) {
  ClusterState st = NodePortState(false);
  st.services[0].cluster_ips.push_back(Ip("fd00:96::10"));
  st.endpoint_slices.push_back(MakeSlice("shop", "web-v6", "web", {Ep("fd00:244:2::5", "node-b")},
                                         {EpPort("http", 8080)}, IpFamily::kV6));
  NodeFacts node = TestNode();
  node.ips.push_back(Ip("192.168.1.2"));
  node.node_port_addresses = {Cidr("192.168.1.0/24")};
  Program p = MustCompile(st, node);
  EXPECT_EQ(Svc(p, Pkt("203.0.113.7", "192.168.0.2", 30080)), nullptr);
  EXPECT_THAT(Backends(p, Svc(p, Pkt("2001:db8:9::1", "2001:db8::2", 30080))),
              ElementsAre("[fd00:244:2::5]:8080"));
}

TEST(ServiceCompiler, NodePortWithClusterPolicyMasqueradesExternalTraffic) {
  Program p = MustCompile(NodePortState(false));
  for (uint32_t from : {0u, uint32_t{kFlagLocalSrc}, uint32_t{kFlagFromHost}}) {
    const Entry* e = Svc(p, Pkt("203.0.113.7", "192.168.0.2", 30080, from));
    EXPECT_EQ(FlagsSet(e), kDnatFlags | kFlagMasq) << from;
    EXPECT_EQ(GroupOf(p, e)->name, "svc/shop/web/http/v4/cluster");
  }
}

TEST(ServiceCompiler, NodePortWithLocalPolicyKeepsClientIpAndUsesLocalEndpoints) {
  Program p = MustCompile(NodePortState(true));
  const Entry* e = Svc(p, Pkt("203.0.113.7", "192.168.0.2", 30080));
  EXPECT_EQ(FlagsSet(e), kDnatFlags);
  EXPECT_THAT(Backends(p, e), ElementsAre("10.244.1.5:8080"));
  EXPECT_EQ(GroupOf(p, e)->name, "svc/shop/web/http/v4/local");
}

TEST(ServiceCompiler, NodePortWithLocalPolicyDropsWithoutLocalEndpoints) {
  ClusterState st = NodePortState(true);
  st.endpoint_slices[0].endpoints.erase(st.endpoint_slices[0].endpoints.begin());
  Program p = MustCompile(st);
  const Entry* outside = Svc(p, Pkt("203.0.113.7", "192.168.0.2", 30080));
  EXPECT_TRUE(IsDrop(outside));
  EXPECT_THAT(outside->origin.detail, HasSubstr("no local endpoints"));
  // Pods short-circuit to every endpoint without masquerade; the host is masqueraded.
  const Entry* pod = Svc(p, Pkt("10.244.1.9", "192.168.0.2", 30080, kFlagLocalSrc));
  EXPECT_EQ(FlagsSet(pod), kDnatFlags);
  EXPECT_THAT(Backends(p, pod), ElementsAre("10.244.2.5:8080"));
  const Entry* host = Svc(p, Pkt("192.168.0.2", "192.168.0.2", 30080, kFlagFromHost));
  EXPECT_EQ(FlagsSet(host), kDnatFlags | kFlagMasq);
  EXPECT_THAT(Backends(p, host), ElementsAre("10.244.2.5:8080"));
  // The ClusterIP keeps using every endpoint.
  EXPECT_THAT(Backends(p, Svc(p, Pkt("10.244.1.9", "10.96.0.10", 80, kFlagLocalSrc))),
              ElementsAre("10.244.2.5:8080"));
}

TEST(ServiceCompiler, LocalPolicyPodShortCircuitNeedsTheLocalDetector) {
  ClusterState st = NodePortState(true);
  st.endpoint_slices[0].endpoints.erase(st.endpoint_slices[0].endpoints.begin());
  NodeFacts node = TestNode();
  node.cluster_cidrs = {Cidr("fd00:244::/48")};  // no IPv4 cluster CIDR: detector is a no-op
  Program p = MustCompile(st, node);
  EXPECT_TRUE(IsDrop(Svc(p, Pkt("10.244.1.9", "192.168.0.2", 30080, kFlagLocalSrc))));
}

TEST(ServiceCompiler, LocalPolicyPodTrafficBeatsHostTrafficWhenBothFlagsAreSet) {
  ClusterState st = NodePortState(true);
  Program p = MustCompile(st);
  const Entry* e = Svc(p, Pkt("10.244.1.1", "192.168.0.2", 30080, kFlagLocalSrc | kFlagFromHost));
  EXPECT_EQ(FlagsSet(e), kDnatFlags);  // kube-proxy: pod short-circuit precedes host masquerade
  EXPECT_EQ(GroupOf(p, e)->name, "svc/shop/web/http/v4/cluster");
}

TEST(ServiceCompiler, ExternalIpsAreFrontendsOnTheServicePort) {
  ClusterState st = WebState();
  st.services[0].external_ips = {Ip("198.51.100.10")};
  Program p = MustCompile(st);
  const Entry* e = Svc(p, Pkt("203.0.113.7", "198.51.100.10", 80));
  EXPECT_EQ(FlagsSet(e), kDnatFlags | kFlagMasq);
  EXPECT_EQ(e->origin.detail, "port http externalIP 198.51.100.10");
  EXPECT_EQ(Svc(p, Pkt("203.0.113.7", "198.51.100.10", 81)), nullptr);
}

ClusterState LoadBalancerState() {
  ClusterState st = WebState();
  st.services[0].type = ServiceType::kLoadBalancer;
  st.services[0].load_balancer_ips = {Ip("198.51.100.80")};
  return st;
}

TEST(ServiceCompiler, LoadBalancerIngressIpIsAFrontend) {
  Program p = MustCompile(LoadBalancerState());
  const Entry* e = Svc(p, Pkt("203.0.113.7", "198.51.100.80", 80));
  EXPECT_THAT(Backends(p, e), ElementsAre("10.244.1.5:8080", "10.244.2.5:8080"));
  EXPECT_EQ(e->origin.detail, "port http loadBalancer 198.51.100.80");
}

TEST(ServiceCompiler, LoadBalancerSourceRangesDropOtherSources) {
  ClusterState st = LoadBalancerState();
  st.services[0].load_balancer_source_ranges = {Cidr("203.0.113.0/24"), Cidr("203.0.0.0/16")};
  Program p = MustCompile(st);
  EXPECT_NE(GroupOf(p, Svc(p, Pkt("203.0.113.7", "198.51.100.80", 80))), nullptr);
  EXPECT_NE(GroupOf(p, Svc(p, Pkt("203.0.9.7", "198.51.100.80", 80))), nullptr);
  const Entry* denied = Svc(p, Pkt("192.0.2.1", "198.51.100.80", 80));
  EXPECT_TRUE(IsDrop(denied));
  EXPECT_THAT(denied->origin.detail, HasSubstr("loadBalancerSourceRanges"));
  // Pods are subject to the ranges too; the ClusterIP is not.
  EXPECT_TRUE(IsDrop(Svc(p, Pkt("10.244.1.9", "198.51.100.80", 80, kFlagLocalSrc))));
  EXPECT_NE(GroupOf(p, Svc(p, Pkt("192.0.2.1", "10.96.0.10", 80))), nullptr);
}

TEST(ServiceCompiler, SourceRangeHoldingTheNodeIpAlsoAllowsTheVip) {
  ClusterState st = LoadBalancerState();
  st.services[0].load_balancer_source_ranges = {Cidr("192.168.0.0/24")};
  Program p = MustCompile(st);
  EXPECT_NE(GroupOf(p, Svc(p, Pkt("198.51.100.80", "198.51.100.80", 80))), nullptr);
}

TEST(ServiceCompiler, SourceRangesWithLocalPolicyStillSplitPodAndHostTraffic) {
  ClusterState st = LoadBalancerState();
  st.services[0].external_traffic_local = true;
  st.services[0].load_balancer_source_ranges = {Cidr("10.244.0.0/16"), Cidr("192.0.2.0/24")};
  st.endpoint_slices[0].endpoints.erase(st.endpoint_slices[0].endpoints.begin());
  Program p = MustCompile(st);
  EXPECT_TRUE(IsDrop(Svc(p, Pkt("192.0.2.1", "198.51.100.80", 80))));  // allowed, none local
  const Entry* pod = Svc(p, Pkt("10.244.1.9", "198.51.100.80", 80, kFlagLocalSrc));
  EXPECT_THAT(Backends(p, pod), ElementsAre("10.244.2.5:8080"));
  EXPECT_TRUE(IsDrop(Svc(p, Pkt("198.18.0.1", "198.51.100.80", 80, kFlagLocalSrc))));
}

TEST(ServiceCompiler, ClientIpAffinityHashesOnTheSourceWithTheTimeout) {
  ClusterState st = WebState();
  st.services[0].affinity_timeout_s = 600;
  Program p = MustCompile(st);
  const SelectGroup* g = GroupOf(p, Svc(p, Pkt("10.244.1.9", "10.96.0.10", 80)));
  ASSERT_NE(g, nullptr);
  EXPECT_EQ(g->affinity_timeout_s, 600u);
  EXPECT_EQ(g->hash_fields, std::vector<Field>{Field::kIpv4Src});
}

TEST(ServiceCompiler, ClusterIpPortTheServiceLacksRejects) {
  Program p = MustCompile(WebState());
  const Entry* e = Svc(p, Pkt("10.244.1.9", "10.96.0.10", 443));
  EXPECT_TRUE(IsReject(e));
  EXPECT_EQ(e->priority, kPrioClusterIpOtherPort);
  EXPECT_TRUE(IsReject(Svc(p, Pkt("10.244.1.9", "10.96.0.10", 80, 0, Protocol::kUdp))));
}

TEST(ServiceCompiler, UnallocatedServiceCidrAddressDrops) {
  ClusterState st = WebState();
  ServiceCidr sc;
  sc.name = "kubernetes";
  sc.cidrs = {Cidr("10.96.0.0/16")};
  st.service_cidrs.push_back(sc);
  Program p = MustCompile(st);
  const Entry* e = Svc(p, Pkt("10.244.1.9", "10.96.7.7", 80));
  EXPECT_TRUE(IsDrop(e));
  EXPECT_EQ(e->origin.kind, "ServiceCIDR");
  EXPECT_EQ(e->origin.name, "kubernetes");
  EXPECT_EQ(Svc(p, Pkt("10.244.1.9", "10.97.0.1", 80)), nullptr);
}

TEST(ServiceCompiler, HeadlessExternalNameAndUnallocatedServicesProduceNothing) {
  ClusterState st;
  Service headless = MakeService("shop", "db", {}, {Port("pg", 5432)});
  headless.headless = true;
  Service ext = MakeService("shop", "ext", {}, {Port("http", 80)});
  ext.type = ServiceType::kExternalName;
  Service pending =
      MakeService("shop", "pending", {}, {Port("http", 80, uint16_t{80}, Protocol::kTcp, 30001)});
  pending.type = ServiceType::kNodePort;
  st.services = {headless, ext, pending};
  st.endpoint_slices.push_back(
      MakeSlice("shop", "db-1", "db", {Ep("10.244.1.5", "node-a")}, {EpPort("pg", 5432)}));
  Program p = MustCompile(st, [] {
    NodeFacts n = TestNode();
    n.service_cidrs.clear();
    return n;
  }());
  EXPECT_TRUE(p.entries[kTableService].empty());
  EXPECT_TRUE(p.groups.empty());
}

TEST(ServiceCompiler, UdpAndSctpPortsMatchOnlyTheirProtocol) {
  ClusterState st;
  st.services.push_back(MakeService("kube-system", "dns", {"10.96.0.53"},
                                    {Port("dns", 53, uint16_t{53}, Protocol::kUdp),
                                     Port("sig", 53, uint16_t{53}, Protocol::kSctp)}));
  st.endpoint_slices.push_back(
      MakeSlice("kube-system", "dns-1", "dns", {Ep("10.244.2.53", "node-b")},
                {EpPort("dns", 5353, Protocol::kUdp), EpPort("sig", 3868, Protocol::kSctp)}));
  Program p = MustCompile(st);
  EXPECT_THAT(Backends(p, Svc(p, Pkt("10.244.1.9", "10.96.0.53", 53, 0, Protocol::kUdp))),
              ElementsAre("10.244.2.53:5353"));
  EXPECT_THAT(Backends(p, Svc(p, Pkt("10.244.1.9", "10.96.0.53", 53, 0, Protocol::kSctp))),
              ElementsAre("10.244.2.53:3868"));
  EXPECT_TRUE(IsReject(Svc(p, Pkt("10.244.1.9", "10.96.0.53", 53, 0, Protocol::kTcp))));
}

TEST(ServiceCompiler, DualStackPairsEachClusterIpWithSlicesOfItsFamily) {
  ClusterState st = WebState();
  st.services[0].cluster_ips.push_back(Ip("fd00:96::10"));
  st.services[0].type = ServiceType::kNodePort;
  st.services[0].ports[0].node_port = 30080;
  st.endpoint_slices.push_back(MakeSlice("shop", "web-v6", "web", {Ep("fd00:244:2::5", "node-b")},
                                         {EpPort("http", 8080)}, IpFamily::kV6));
  Program p = MustCompile(st);
  const Entry* v6 = Svc(p, Pkt("fd00:244:1::9", "fd00:96::10", 80, kFlagLocalSrc));
  EXPECT_THAT(Backends(p, v6), ElementsAre("[fd00:244:2::5]:8080"));
  EXPECT_EQ(GroupOf(p, v6)->name, "svc/shop/web/http/v6/cluster");
  EXPECT_THAT(Backends(p, Svc(p, Pkt("10.244.1.9", "10.96.0.10", 80))),
              ElementsAre("10.244.1.5:8080", "10.244.2.5:8080"));
  EXPECT_THAT(Backends(p, Svc(p, Pkt("2001:db8::7", "2001:db8::2", 30080))),
              ElementsAre("[fd00:244:2::5]:8080"));
}

TEST(ServiceCompiler, DuplicateFrontendBetweenServicesFailsNamingBoth) {
  ClusterState st = WebState();
  st.services[0].external_ips = {Ip("198.51.100.10")};
  Service other = MakeService("shop", "zz", {"10.96.0.11"}, {Port("http", 80)});
  other.external_ips = {Ip("198.51.100.10")};
  st.services.push_back(other);
  auto p = CompileSvc(st);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(p.status().message(), HasSubstr("Service shop/zz: spec.externalIPs[0]"));
  EXPECT_THAT(p.status().message(), HasSubstr("Service shop/web"));
}

TEST(ServiceCompiler, DuplicateNodePortBetweenServicesFails) {
  ClusterState st = NodePortState(false);
  Service other = MakeService("shop", "zz", {"10.96.0.11"},
                              {Port("http", 80, uint16_t{80}, Protocol::kTcp, 30080)});
  other.type = ServiceType::kNodePort;
  st.services.push_back(other);
  auto p = CompileSvc(st);
  ASSERT_FALSE(p.ok());
  EXPECT_THAT(p.status().message(), HasSubstr("spec.ports[0].nodePort"));
}

TEST(ServiceCompiler, SkipBadObjectsLeavesTheLaterServiceOutWholeAndNotesIt) {
  ClusterState st = WebState();
  Service other = MakeService("shop", "zz", {"10.96.0.10", "10.96.0.12"}, {Port("http", 80)});
  st.services.push_back(other);
  CompileOptions options;
  options.skip_bad_objects = true;
  std::vector<std::string> notes;
  auto p = CompileSvc(st, TestNode(), options, &notes);
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_THAT(notes[0], HasSubstr("Service shop/zz: spec.clusterIPs[1]"));
  for (const Entry& e : p->entries[kTableService]) EXPECT_NE(e.origin.name, "zz");
  EXPECT_THAT(Backends(*p, Svc(*p, Pkt("10.244.1.9", "10.96.0.10", 80))),
              ElementsAre("10.244.1.5:8080", "10.244.2.5:8080"));
}

TEST(ServiceCompiler, SharedClusterIpFailsNamingBothServices) {
  ClusterState st = WebState();
  st.services.push_back(MakeService("shop", "zz", {"10.96.0.10"}, {Port("https", 443)}));
  auto p = CompileSvc(st);
  ASSERT_FALSE(p.ok());
  EXPECT_THAT(p.status().message(),
              HasSubstr("Service shop/zz: spec.clusterIPs[0]: 10.96.0.10 is already the "
                        "clusterIP of Service shop/web"));
}

TEST(ServiceCompiler, ClusterIpOfAFamilyWithoutServiceCidrFails) {
  ClusterState st = WebState();
  st.services[0].cluster_ips.push_back(Ip("fd00:96::10"));
  NodeFacts node = TestNode();
  node.service_cidrs = {Cidr("10.96.0.0/16")};
  auto p = CompileSvc(st, node);
  ASSERT_FALSE(p.ok());
  EXPECT_THAT(p.status().message(), HasSubstr("Service shop/web: spec.clusterIPs[1]"));
  EXPECT_THAT(p.status().message(), HasSubstr("no ServiceCIDR"));
}

TEST(ServiceCompiler, DuplicatePortAndPortZeroFail) {
  ClusterState st;
  st.services.push_back(MakeService("a", "dup", {"10.96.0.1"}, {Port("x", 80), Port("y", 80)}));
  auto p = CompileSvc(st);
  ASSERT_FALSE(p.ok());
  EXPECT_THAT(p.status().message(), HasSubstr("Service a/dup: spec.ports[1]: duplicate TCP"));
  st.services = {MakeService("a", "zero", {"10.96.0.1"}, {Port("x", 0)})};
  p = CompileSvc(st);
  ASSERT_FALSE(p.ok());
  EXPECT_THAT(p.status().message(), HasSubstr("spec.ports[0].port"));
}

TEST(ServiceCompiler, EndpointInTwoSlicesAppearsOnceUsingItsReadyCopy) {
  ClusterState st = WebState();
  st.endpoint_slices[0].endpoints[0].ready = false;
  st.endpoint_slices.push_back(
      MakeSlice("shop", "web-2", "web", {Ep("10.244.1.5", "node-a")}, {EpPort("http", 8080)}));
  Program p = MustCompile(st);
  EXPECT_THAT(Backends(p, Svc(p, Pkt("10.244.1.9", "10.96.0.10", 80))),
              ElementsAre("10.244.1.5:8080", "10.244.2.5:8080"));
}

TEST(ServiceCompiler, LoadOrderDoesNotChangeTheProgram) {
  ClusterState st = WebState();
  st.services.push_back(MakeService("shop", "cart", {"10.96.0.20"}, {Port("http", 80)}));
  st.endpoint_slices.push_back(
      MakeSlice("shop", "cart-2", "cart", {Ep("10.244.2.9", "node-b")}, {EpPort("http", 9000)}));
  st.endpoint_slices.push_back(
      MakeSlice("shop", "cart-1", "cart", {Ep("10.244.1.9", "node-a")}, {EpPort("http", 9000)}));
  Program a = MustCompile(st);
  std::mt19937 rng(7);
  for (int i = 0; i < 5; ++i) {
    std::shuffle(st.services.begin(), st.services.end(), rng);
    std::shuffle(st.endpoint_slices.begin(), st.endpoint_slices.end(), rng);
    for (auto& s : st.endpoint_slices) std::shuffle(s.endpoints.begin(), s.endpoints.end(), rng);
    Program b = MustCompile(st);
    auto d = Diff(a, b);
    ASSERT_TRUE(d.ok());
    EXPECT_TRUE(d->empty()) << "shuffle " << i;
  }
}

TEST(ServiceCompiler, AddingAnEndpointOnlyModifiesItsGroup) {
  ClusterState st = NodePortState(false);
  Program before = MustCompile(st);
  st.endpoint_slices[0].endpoints.push_back(Ep("10.244.3.5", "node-c"));
  Program after = MustCompile(st);
  auto d = Diff(before, after);
  ASSERT_TRUE(d.ok());
  ASSERT_EQ(d->ops.size(), 1u);
  EXPECT_EQ(d->ops[0].kind, DeltaOp::Kind::kModifyGroup);
  EXPECT_EQ(d->ops[0].group.name, "svc/shop/web/http/v4/cluster");
}

TEST(ServiceCompiler, CategorizeEndpointsReportsWhetherAnyEndpointIsUsable) {
  ServiceEndpoint dead{Ip("10.0.0.1"), 80, false, false, true, true};
  EXPECT_FALSE(CategorizeEndpoints({dead}).has_any);
  ServiceEndpoint draining{Ip("10.0.0.2"), 80, false, true, true, false};
  CategorizedEndpoints c = CategorizeEndpoints({dead, draining});
  EXPECT_TRUE(c.has_any);
  EXPECT_EQ(c.cluster.size(), 1u);
  EXPECT_TRUE(c.local.empty());
}

}  // namespace
}  // namespace nicflow::flowtables
