// The manifest loader: every kind with its API defaults, and every accepted input format.
#include "nicflow/flowtables/loader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "loader_test_util.h"

namespace nicflow::flowtables {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::Load;
using testing::LoadError;
using testing::TempDir;

IpAddr Ip(std::string_view s) { return *IpAddr::Parse(s); }
IpPrefix Cidr(std::string_view s) { return *IpPrefix::Parse(s); }

TEST(LoaderNamespace, GetsMetadataNameLabelWhenAbsent) {
  auto s = Load("apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {team: a}}\n");
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->namespaces.size(), 1u);
  EXPECT_EQ(s->namespaces[0].name, "shop");
  EXPECT_EQ(s->namespaces[0].labels.at("kubernetes.io/metadata.name"), "shop");
  EXPECT_EQ(s->namespaces[0].labels.at("team"), "a");
  EXPECT_EQ(s->namespaces[0].source.file, "test.yaml");
  EXPECT_EQ(s->namespaces[0].source.line, 1);
}

TEST(LoaderNamespace, WrongMetadataNameLabelIsOverwrittenWithANote) {
  auto s = Load(
      "apiVersion: v1\nkind: Namespace\n"
      "metadata: {name: shop, labels: {kubernetes.io/metadata.name: other}}\n");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->namespaces[0].labels.at("kubernetes.io/metadata.name"), "shop");
  ASSERT_EQ(s->notes.size(), 1u);
  EXPECT_THAT(s->notes[0], HasSubstr("Namespace shop: metadata.labels"));
}

TEST(LoaderPod, ReadsIpsPortsNodeAndLabels) {
  auto s = Load(R"(
apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: shop, labels: {app: web}}
spec:
  nodeName: node-a
  containers:
  - name: web
    ports: [{name: http, containerPort: 8080}, {containerPort: 53, protocol: UDP}]
status: {phase: Running, podIP: 10.0.0.1, podIPs: [{ip: 10.0.0.1}, {ip: "fd00::1"}]}
)");
  ASSERT_TRUE(s.ok()) << s.status();
  const Pod& p = s->pods.at(0);
  EXPECT_EQ(p.ns, "shop");
  EXPECT_EQ(p.name, "web-1");
  EXPECT_EQ(p.node_name, "node-a");
  EXPECT_EQ(p.labels.at("app"), "web");
  EXPECT_THAT(p.ips, ElementsAre(Ip("10.0.0.1"), Ip("fd00::1")));
  ASSERT_EQ(p.ports.size(), 2u);
  EXPECT_EQ(p.ports[0].name, "http");
  EXPECT_EQ(p.ports[0].port, 8080);
  EXPECT_EQ(p.ports[0].protocol, Protocol::kTcp);
  EXPECT_EQ(p.ports[1].protocol, Protocol::kUdp);
  EXPECT_FALSE(p.host_network);
  EXPECT_FALSE(p.terminal);
}

TEST(LoaderPod, FallsBackToPodIpAndDefaultNamespace) {
  auto s = Load("apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nstatus: {podIP: 10.1.2.3}\n");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->pods[0].ns, "default");
  EXPECT_THAT(s->pods[0].ips, ElementsAre(Ip("10.1.2.3")));
}

TEST(LoaderPod, HostNetworkAndTerminalPhases) {
  auto s = Load(R"(
apiVersion: v1
kind: Pod
metadata: {name: a}
spec: {hostNetwork: true}
status: {phase: Succeeded}
---
apiVersion: v1
kind: Pod
metadata: {name: b}
status: {phase: Failed}
---
apiVersion: v1
kind: Pod
metadata: {name: c}
status: {phase: Pending}
)");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE(s->pods[0].host_network);
  EXPECT_TRUE(s->pods[0].terminal);
  EXPECT_TRUE(s->pods[1].terminal);
  EXPECT_FALSE(s->pods[2].terminal);
  EXPECT_TRUE(s->pods[2].ips.empty());
}

TEST(LoaderService, AppliesApiDefaults) {
  auto s = Load(R"(
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  clusterIP: 10.96.0.10
  selector: {app: web}
  ports: [{port: 80}]
)");
  ASSERT_TRUE(s.ok()) << s.status();
  const Service& svc = s->services.at(0);
  EXPECT_EQ(svc.type, ServiceType::kClusterIP);
  EXPECT_FALSE(svc.headless);
  EXPECT_THAT(svc.cluster_ips, ElementsAre(Ip("10.96.0.10")));
  ASSERT_EQ(svc.ports.size(), 1u);
  EXPECT_EQ(svc.ports[0].protocol, Protocol::kTcp);
  EXPECT_EQ(svc.ports[0].port, 80);
  EXPECT_EQ(std::get<uint16_t>(svc.ports[0].target_port), 80);
  EXPECT_EQ(svc.ports[0].node_port, 0);
  EXPECT_FALSE(svc.affinity_timeout_s.has_value());
  EXPECT_FALSE(svc.external_traffic_local);
  EXPECT_FALSE(svc.internal_traffic_local);
  ASSERT_TRUE(svc.selector.has_value());
  EXPECT_EQ(svc.selector->at("app"), "web");
}

TEST(LoaderService, TargetPortZeroDefaultsToPort) {
  auto s = Load(
      "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n"
      "spec: {clusterIP: 10.96.0.1, ports: [{port: 8443, targetPort: 0}]}\n");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(std::get<uint16_t>(s->services[0].ports[0].target_port), 8443);
}

TEST(LoaderService, ReadsEveryField) {
  auto s = Load(R"(
apiVersion: v1
kind: Service
metadata: {name: lb, namespace: shop}
spec:
  type: LoadBalancer
  clusterIP: 10.96.0.11
  clusterIPs: [10.96.0.11, "fd00:96::11"]
  ports:
  - {name: http, port: 80, targetPort: http, nodePort: 30080}
  - {name: dns, port: 53, protocol: UDP, targetPort: 5353}
  externalIPs: [203.0.113.9]
  loadBalancerSourceRanges: [198.51.100.0/24]
  sessionAffinity: ClientIP
  externalTrafficPolicy: Local
  internalTrafficPolicy: Local
status:
  loadBalancer:
    ingress: [{ip: 203.0.113.10}, {hostname: lb.example.com}, {ip: 203.0.113.11, ipMode: Proxy}]
)");
  ASSERT_TRUE(s.ok()) << s.status();
  const Service& svc = s->services.at(0);
  EXPECT_EQ(svc.type, ServiceType::kLoadBalancer);
  EXPECT_THAT(svc.cluster_ips, ElementsAre(Ip("10.96.0.11"), Ip("fd00:96::11")));
  EXPECT_EQ(std::get<std::string>(svc.ports[0].target_port), "http");
  EXPECT_EQ(svc.ports[0].node_port, 30080);
  EXPECT_EQ(svc.ports[1].protocol, Protocol::kUdp);
  EXPECT_EQ(std::get<uint16_t>(svc.ports[1].target_port), 5353);
  EXPECT_THAT(svc.external_ips, ElementsAre(Ip("203.0.113.9")));
  EXPECT_THAT(svc.load_balancer_source_ranges, ElementsAre(Cidr("198.51.100.0/24")));
  // The ipMode Proxy address is not captured by kube-proxy; the hostname has no IP.
  EXPECT_THAT(svc.load_balancer_ips, ElementsAre(Ip("203.0.113.10")));
  EXPECT_EQ(svc.affinity_timeout_s, 10800u);
  EXPECT_TRUE(svc.external_traffic_local);
  EXPECT_TRUE(svc.internal_traffic_local);
}

TEST(LoaderService, HeadlessExternalNameAndAffinityTimeout) {
  auto s = Load(R"(
apiVersion: v1
kind: Service
metadata: {name: db}
spec: {clusterIP: None, selector: {app: db}}
---
apiVersion: v1
kind: Service
metadata: {name: ext}
spec: {type: ExternalName, externalName: example.com}
---
apiVersion: v1
kind: Service
metadata: {name: sticky}
spec:
  clusterIP: 10.96.0.12
  ports: [{port: 80}]
  sessionAffinity: ClientIP
  sessionAffinityConfig: {clientIP: {timeoutSeconds: 600}}
)");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE(s->services[0].headless);
  EXPECT_TRUE(s->services[0].cluster_ips.empty());
  EXPECT_EQ(s->services[1].type, ServiceType::kExternalName);
  EXPECT_EQ(s->services[2].affinity_timeout_s, 600u);
}

TEST(LoaderEndpointSlice, ConditionsDefaultAsTheApiSays) {
  auto s = Load(R"(
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-x1, namespace: shop, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
endpoints:
- {addresses: [10.0.0.1]}
- {addresses: [10.0.0.2], conditions: {ready: false}}
- {addresses: [10.0.0.3], conditions: {ready: false, serving: true, terminating: true}}
- addresses: [10.0.0.4]
  nodeName: node-a
  targetRef: {kind: Pod, name: web-4}
ports: [{name: http, port: 8080}, {name: all}, {name: "", port: 9090}]
)");
  ASSERT_TRUE(s.ok()) << s.status();
  const EndpointSlice& es = s->endpoint_slices.at(0);
  EXPECT_EQ(es.service_name, "web");
  EXPECT_EQ(es.family, IpFamily::kV4);
  ASSERT_EQ(es.endpoints.size(), 4u);
  EXPECT_TRUE(es.endpoints[0].ready);
  EXPECT_TRUE(es.endpoints[0].serving);
  EXPECT_FALSE(es.endpoints[0].terminating);
  EXPECT_FALSE(es.endpoints[1].ready);
  // kube-proxy reads a nil serving as true (endpointslicecache.go), whatever ready says.
  EXPECT_TRUE(es.endpoints[1].serving);
  EXPECT_TRUE(es.endpoints[2].serving);
  EXPECT_TRUE(es.endpoints[2].terminating);
  EXPECT_EQ(es.endpoints[3].node_name, "node-a");
  EXPECT_EQ(es.endpoints[3].target_pod, "shop/web-4");
  // A port without a number ("all ports") cannot be programmed; kube-proxy skips it too.
  ASSERT_EQ(es.ports.size(), 2u);
  EXPECT_EQ(es.ports[0].name, "http");
  EXPECT_EQ(es.ports[1].name, "");  // the controller writes "" for an unnamed Service port
  EXPECT_EQ(es.ports[0].port, 8080);
  EXPECT_EQ(es.ports[0].protocol, Protocol::kTcp);
}

TEST(LoaderEndpointSlice, FqdnSlicesAreKeptEmptyWithANote) {
  auto s = Load(R"(
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: x, labels: {kubernetes.io/service-name: web}}
addressType: FQDN
endpoints: [{addresses: [example.com]}]
)");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_FALSE(s->endpoint_slices[0].family.has_value());
  EXPECT_TRUE(s->endpoint_slices[0].endpoints.empty());
  ASSERT_EQ(s->notes.size(), 1u);
  EXPECT_THAT(s->notes[0], HasSubstr("EndpointSlice default/x: addressType: FQDN"));
}

TEST(LoaderEndpointSlice, AddressFamilyMustMatchAddressType) {
  EXPECT_EQ(LoadError(R"(
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: x}
addressType: IPv6
endpoints: [{addresses: [10.0.0.1]}]
)"),
            "test.yaml: EndpointSlice default/x: endpoints[0].addresses[0]: 10.0.0.1 does not "
            "match the slice's addressType");
}

TEST(LoaderNetworkPolicy, PolicyTypesDefaultLikeTheApiServer) {
  auto s = Load(R"(
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: ingress-only}
spec: {podSelector: {}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: both}
spec:
  podSelector: {matchLabels: {app: a}}
  egress: [{}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: egress-only}
spec: {podSelector: {}, policyTypes: [Egress]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: empty-egress-list}
spec: {podSelector: {}, egress: []}
)");
  ASSERT_TRUE(s.ok()) << s.status();
  const auto& np = s->network_policies;
  EXPECT_TRUE(np[0].affects_ingress);
  EXPECT_FALSE(np[0].affects_egress);
  EXPECT_TRUE(np[1].affects_ingress);
  EXPECT_TRUE(np[1].affects_egress);
  ASSERT_EQ(np[1].egress.size(), 1u);
  EXPECT_TRUE(np[1].egress[0].peers.empty());
  EXPECT_FALSE(np[2].affects_ingress);
  EXPECT_TRUE(np[2].affects_egress);
  EXPECT_TRUE(np[3].affects_ingress);
  EXPECT_FALSE(np[3].affects_egress);
}

TEST(LoaderNetworkPolicy, ReadsPeersPortsAndSelectors) {
  auto s = Load(R"(
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: shop}
spec:
  podSelector:
    matchExpressions: [{key: tier, operator: In, values: [web, api]}, {key: canary, operator: DoesNotExist}]
  ingress:
  - from:
    - {podSelector: {matchLabels: {app: a}}, namespaceSelector: {matchLabels: {team: x}}}
    - ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}
    ports: [{port: 80}, {port: http, protocol: UDP}, {port: 9100, endPort: 9102, protocol: SCTP}, {protocol: TCP}]
)");
  ASSERT_TRUE(s.ok()) << s.status();
  const NetworkPolicy& np = s->network_policies.at(0);
  ASSERT_EQ(np.pod_selector.match_expressions.size(), 2u);
  EXPECT_EQ(np.pod_selector.match_expressions[0].op, LabelSelector::Op::kIn);
  EXPECT_THAT(np.pod_selector.match_expressions[0].values, ElementsAre("web", "api"));
  EXPECT_EQ(np.pod_selector.match_expressions[1].op, LabelSelector::Op::kDoesNotExist);
  const NetworkPolicyRule& rule = np.ingress.at(0);
  ASSERT_EQ(rule.peers.size(), 2u);
  ASSERT_TRUE(rule.peers[0].pod_selector && rule.peers[0].namespace_selector);
  EXPECT_EQ(rule.peers[0].namespace_selector->match_labels.at("team"), "x");
  ASSERT_TRUE(rule.peers[1].ip_block.has_value());
  EXPECT_EQ(rule.peers[1].ip_block->cidr, Cidr("10.0.0.0/8"));
  EXPECT_THAT(rule.peers[1].ip_block->except, ElementsAre(Cidr("10.1.0.0/16")));
  ASSERT_EQ(rule.ports.size(), 4u);
  EXPECT_EQ(rule.ports[0].protocol, Protocol::kTcp);
  EXPECT_EQ(std::get<uint16_t>(rule.ports[0].port), 80);
  EXPECT_EQ(std::get<std::string>(rule.ports[1].port), "http");
  EXPECT_EQ(rule.ports[1].protocol, Protocol::kUdp);
  EXPECT_EQ(rule.ports[2].end_port, 9102);
  EXPECT_EQ(rule.ports[2].protocol, Protocol::kSctp);
  EXPECT_TRUE(std::holds_alternative<std::monostate>(rule.ports[3].port));
}

TEST(LoaderNetworkPolicy, IpBlockHostBitsAreMaskedWithANote) {
  auto s = Load(R"(
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p}
spec:
  podSelector: {}
  egress: [{to: [{ipBlock: {cidr: 10.0.0.1/24}}]}]
)");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->network_policies[0].egress[0].peers[0].ip_block->cidr, Cidr("10.0.0.0/24"));
  ASSERT_EQ(s->notes.size(), 1u);
  EXPECT_EQ(s->notes[0],
            "test.yaml: NetworkPolicy default/p: spec.egress[0].to[0].ipBlock.cidr: host bits of "
            "\"10.0.0.1/24\" ignored: read as 10.0.0.0/24");
}

TEST(LoaderNode, ReadsAddressesAndPodCidrs) {
  auto s = Load(R"(
apiVersion: v1
kind: Node
metadata: {name: node-a}
spec: {podCIDR: 10.244.1.0/24, podCIDRs: [10.244.1.0/24, "fd00:244:1::/64"]}
status:
  addresses:
  - {type: InternalIP, address: 192.168.10.11}
  - {type: ExternalIP, address: 203.0.113.1}
  - {type: Hostname, address: node-a}
  - {type: InternalIP, address: "fd00::11"}
---
apiVersion: v1
kind: Node
metadata: {name: node-b}
spec: {podCIDR: 10.244.2.0/24}
)");
  ASSERT_TRUE(s.ok()) << s.status();
  const Node& a = s->nodes.at(0);
  EXPECT_EQ(a.name, "node-a");
  EXPECT_THAT(a.internal_ips, ElementsAre(Ip("192.168.10.11"), Ip("fd00::11")));
  EXPECT_THAT(a.external_ips, ElementsAre(Ip("203.0.113.1")));
  EXPECT_THAT(a.pod_cidrs, ElementsAre(Cidr("10.244.1.0/24"), Cidr("fd00:244:1::/64")));
  EXPECT_THAT(s->nodes.at(1).pod_cidrs, ElementsAre(Cidr("10.244.2.0/24")));
}

TEST(LoaderServiceCidr, AcceptsV1AndV1beta1) {
  auto s = Load(R"(
apiVersion: networking.k8s.io/v1
kind: ServiceCIDR
metadata: {name: kubernetes}
spec: {cidrs: [10.96.0.0/16, "fd00:96::/112"]}
---
apiVersion: networking.k8s.io/v1beta1
kind: ServiceCIDR
metadata: {name: extra}
spec: {cidrs: [10.97.0.0/16]}
)");
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->service_cidrs.size(), 2u);
  EXPECT_THAT(s->service_cidrs[0].cidrs, ElementsAre(Cidr("10.96.0.0/16"), Cidr("fd00:96::/112")));
  EXPECT_EQ(s->service_cidrs[1].name, "extra");
}

TEST(LoaderKubeProxyConfiguration, ReadsTheFieldsNicflowHonours) {
  auto s = Load(R"(
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: nftables
hostnameOverride: " Node-A "
clusterCIDR: 10.244.0.0/16,fd00:244::/56
nodePortAddresses: [192.168.10.0/24]
iptables: {masqueradeAll: false}
nftables: {masqueradeAll: true}
detectLocalMode: NodeCIDR
metricsBindAddress: 0.0.0.0:10249
)");
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_TRUE(s->proxy_config.has_value());
  const ProxyConfig& pc = *s->proxy_config;
  EXPECT_EQ(pc.hostname_override, "node-a");
  EXPECT_THAT(pc.cluster_cidrs, ElementsAre(Cidr("10.244.0.0/16"), Cidr("fd00:244::/56")));
  EXPECT_THAT(pc.node_port_addresses, ElementsAre(Cidr("192.168.10.0/24")));
  EXPECT_FALSE(pc.node_port_primary);
  EXPECT_TRUE(pc.masquerade_all);
  EXPECT_EQ(pc.detect_local, DetectLocalMode::kNodeCidr);
}

TEST(LoaderKubeProxyConfiguration, MasqueradeAllFollowsTheMode) {
  auto s = Load(R"(
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
iptables: {masqueradeAll: true}
nodePortAddresses: [primary]
detectLocalMode: BridgeInterface
)");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE(s->proxy_config->masquerade_all);
  EXPECT_TRUE(s->proxy_config->node_port_primary);
  EXPECT_EQ(s->proxy_config->detect_local, DetectLocalMode::kBridge);

  auto n = Load(R"(
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: nftables
iptables: {masqueradeAll: true}
detectLocalMode: InterfaceNamePrefix
)");
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_FALSE(n->proxy_config->masquerade_all);
  EXPECT_EQ(n->proxy_config->detect_local, DetectLocalMode::kInterfaceNamePrefix);
  ASSERT_EQ(n->notes.size(), 1u);
  EXPECT_THAT(n->notes[0], HasSubstr("iptables.masqueradeAll: ignored"));
}

TEST(LoaderMasqueradeConfig, ReadsIpMasqAgentKeys) {
  auto s = Load(R"(
apiVersion: nicflow.io/v1alpha1
kind: MasqueradeConfig
nonMasqueradeCIDRs: [10.0.0.0/8, 192.168.0.0/16]
masqLinkLocal: true
resyncInterval: 60s
)");
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_TRUE(s->masq_config.has_value());
  EXPECT_THAT(s->masq_config->non_masquerade_cidrs,
              ElementsAre(Cidr("10.0.0.0/8"), Cidr("192.168.0.0/16")));
  EXPECT_TRUE(s->masq_config->masq_link_local);
}

TEST(LoaderKinds, OtherKindsAreSkippedWithANoteNamingFileAndObject) {
  auto s = Load(R"(
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg, namespace: shop}
data: {a: b}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
---
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: kn}
---
apiVersion: v1
kind: Endpoints
metadata: {name: web}
)");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE(s->services.empty());
  ASSERT_EQ(s->notes.size(), 4u);
  EXPECT_EQ(s->notes[0],
            "test.yaml: ConfigMap shop/cfg: skipped (kind v1 ConfigMap is not used by nicflow)");
  EXPECT_THAT(s->notes[1], HasSubstr("test.yaml: Deployment web: skipped"));
  EXPECT_THAT(s->notes[2], HasSubstr("serving.knative.dev/v1 Service is not used"));
  EXPECT_THAT(s->notes[3], HasSubstr("kube-proxy reads EndpointSlices"));
}

TEST(LoaderFormats, ReadsKubectlListOutput) {
  auto s = Load(R"(
apiVersion: v1
kind: List
metadata: {resourceVersion: ""}
items:
- apiVersion: v1
  kind: Service
  metadata: {name: a, namespace: shop, resourceVersion: "12", uid: 0b4c}
  spec: {clusterIP: 10.96.0.1, clusterIPs: [10.96.0.1], ports: [{port: 80, protocol: TCP, targetPort: 80}]}
  status: {loadBalancer: {}}
- apiVersion: v1
  kind: Namespace
  metadata: {name: shop}
)");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->services.size(), 1u);
  EXPECT_EQ(s->namespaces.size(), 1u);
  EXPECT_EQ(s->namespaces[0].source.document, 1);
}

TEST(LoaderFormats, RawApiListsLendTheirKindToItems) {
  auto s = Load(R"({"apiVersion": "v1", "kind": "PodList", "items": [
    {"metadata": {"name": "a", "namespace": "x"}, "status": {"podIP": "10.0.0.1"}},
    {"metadata": {"name": "b", "namespace": "x"}}]})");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->pods.size(), 2u);
}

TEST(LoaderFormats, ReadsJson) {
  auto s = Load(R"({
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "cart", "namespace": "shop", "creationTimestamp": null},
    "spec": {"clusterIP": "10.96.0.90", "ports": [{"port": 80, "targetPort": "api"}]}
})",
                {}, "svc.json");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(std::get<std::string>(s->services[0].ports[0].target_port), "api");
}

TEST(LoaderFormats, ReadsJsonWithTabsAndEscapes) {
  auto s = Load(
      "{\n\t\"apiVersion\": \"v1\", \"kind\": \"Namespace\",\n\t\"metadata\": "
      "{\"name\": \"a\", \"labels\": {\"x\": \"\\u0079\"}}\n}\n");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->namespaces[0].labels.at("x"), "y");
}

TEST(LoaderFormats, YamlFlowMappingStartingWithBraceIsYaml) {
  auto s = Load("{apiVersion: v1, kind: Namespace, metadata: {name: a}}\n");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->namespaces.size(), 1u);
}

TEST(LoaderFormats, KubectlCreateDryRunOutputLoads) {
  // kubectl create service clusterip cart --tcp=80:9000 --dry-run=client -o yaml
  // kubectl create namespace shop --dry-run=client -o yaml
  auto s = Load(R"(apiVersion: v1
kind: Service
metadata:
  creationTimestamp: null
  labels:
    app: cart
  name: cart
spec:
  ports:
  - name: 80-9000
    port: 80
    protocol: TCP
    targetPort: 9000
  selector:
    app: cart
  type: ClusterIP
status:
  loadBalancer: {}
---
apiVersion: v1
kind: Namespace
metadata:
  creationTimestamp: null
  name: shop
spec: {}
status: {}
)");
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->services.size(), 1u);
  EXPECT_TRUE(s->services[0].cluster_ips.empty());
  EXPECT_FALSE(s->services[0].headless);
  EXPECT_EQ(s->services[0].ports[0].name, "80-9000");
  EXPECT_EQ(std::get<uint16_t>(s->services[0].ports[0].target_port), 9000);
}

TEST(LoaderFormats, EmptyDocumentsAndCommentsAreIgnored) {
  auto s = Load(
      "# just a comment\n---\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->namespaces.size(), 1u);
}

TEST(LoaderFormats, YamlAnchorsAndMergeKeys) {
  auto s = Load(R"(
apiVersion: v1
kind: Service
metadata: {name: a}
spec:
  clusterIP: 10.96.0.1
  ports:
  - &p {name: http, port: 80, targetPort: 8080}
  - <<: *p
    name: alt
    port: 81
)");
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->services[0].ports.size(), 2u);
  EXPECT_EQ(s->services[0].ports[1].name, "alt");
  EXPECT_EQ(s->services[0].ports[1].port, 81);
  EXPECT_EQ(std::get<uint16_t>(s->services[0].ports[1].target_port), 8080);
}

TEST(LoaderFormats, ScalarsAreTypedByTheYaml12CoreSchemaAndTags) {
  auto s = Load(R"(
apiVersion: v1
kind: Service
metadata: {name: a}
spec:
  type: NodePort
  clusterIP: 10.96.0.1
  ports:
  - {name: a, port: !!int "80", targetPort: !!str http, nodePort: 0x7530}
  - {name: b, port: +81, targetPort: 0o17}
)");
  ASSERT_TRUE(s.ok()) << s.status();
  const auto& ports = s->services[0].ports;
  EXPECT_EQ(ports[0].port, 80);
  EXPECT_EQ(std::get<std::string>(ports[0].target_port), "http");
  EXPECT_EQ(ports[0].node_port, 30000);
  EXPECT_EQ(ports[1].port, 81);
  EXPECT_EQ(std::get<uint16_t>(ports[1].target_port), 15);
  EXPECT_THAT(LoadError("apiVersion: v1\nkind: Namespace\nmetadata: {name: !!int abc}\n"),
              HasSubstr("test.yaml:3:18: scalar \"abc\" does not match its tag !!int"));
}

TEST(LoaderFormats, UnknownFieldsWithAnyTypeAreIgnored) {
  auto s = Load(R"(
apiVersion: v1
kind: Service
metadata: {name: a, annotations: {x: y}, managedFields: [{manager: kubectl}]}
spec: {clusterIP: 10.96.0.1, ports: [{port: 80, appProtocol: http}], futureField: [1, 2], ipFamilyPolicy: SingleStack}
)");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->services.size(), 1u);
}

TEST(LoaderPaths, DirectoriesLoadManifestFilesSortedByName) {
  TempDir dir;
  dir.Write("b.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n");
  dir.Write("a.json", R"({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}})");
  dir.Write("c.yml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: c}\n");
  dir.Write("README.md", "not a manifest: {");
  dir.Write("sub/d.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: d}\n");
  ClusterState s;
  ASSERT_TRUE(LoadPaths({dir.path().string()}, {}, s).ok());
  ASSERT_EQ(s.namespaces.size(), 3u);
  EXPECT_EQ(s.namespaces[0].name, "a");
  EXPECT_EQ(s.namespaces[1].name, "b");
  EXPECT_EQ(s.namespaces[2].name, "c");
  EXPECT_EQ(s.namespaces[0].source.file, (dir.path() / "a.json").string());
}

TEST(LoaderPaths, FilesAppendToTheState) {
  TempDir dir;
  std::string a = dir.Write("a.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n");
  std::string b = dir.Write("b.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n");
  ClusterState s;
  ASSERT_TRUE(LoadPaths({a}, {}, s).ok());
  ASSERT_TRUE(LoadPaths({b}, {}, s).ok());
  EXPECT_EQ(s.namespaces.size(), 2u);
}

TEST(LoaderPaths, MissingPathIsNotFound) {
  ClusterState s;
  absl::Status st = LoadPaths({"/nonexistent/x.yaml"}, {}, s);
  EXPECT_EQ(st.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(Sv(st.message())), HasSubstr("/nonexistent/x.yaml"));
}

TEST(LoaderExamples, ShopClusterLoadsWithExpectedCounts) {
  std::string dir = testing::SourceDir() + "/examples/shop/";
  ClusterState s;
  absl::Status st =
      LoadPaths({dir + "cluster.yaml", dir + "policies.yaml", dir + "kube-proxy.yaml"}, {}, s);
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_EQ(s.nodes.size(), 2u);
  EXPECT_EQ(s.service_cidrs.size(), 1u);
  EXPECT_EQ(s.namespaces.size(), 2u);
  EXPECT_EQ(s.pods.size(), 5u);
  EXPECT_EQ(s.services.size(), 4u);
  EXPECT_EQ(s.endpoint_slices.size(), 3u);
  EXPECT_EQ(s.network_policies.size(), 6u);
  ASSERT_TRUE(s.proxy_config.has_value());
  EXPECT_EQ(s.proxy_config->hostname_override, "node-a");
  EXPECT_THAT(s.proxy_config->cluster_cidrs, ElementsAre(Cidr("10.244.0.0/16")));
  EXPECT_TRUE(s.notes.empty()) << s.notes[0];
  const NetworkPolicy& egress = s.network_policies[5];
  EXPECT_EQ(egress.name, "cart-egress");
  EXPECT_FALSE(egress.affects_ingress);
  EXPECT_TRUE(egress.affects_egress);
  EXPECT_EQ(egress.egress.size(), 3u);
}

TEST(LoaderExamples, ShopDirectoryLoadsEveryManifest) {
  ClusterState s;
  // scenarios.yaml is a scenario file, not manifests: loading the whole directory must say so.
  absl::Status st = LoadPaths({testing::SourceDir() + "/examples/shop"}, {}, s);
  EXPECT_FALSE(st.ok());
  EXPECT_THAT(std::string(Sv(st.message())), HasSubstr("scenarios.yaml"));
  EXPECT_TRUE(s.services.empty());
}

TEST(LabelSelector, MatchesEveryOperator) {
  LabelSelector sel;
  sel.match_labels = {{"app", "web"}};
  sel.match_expressions = {{"tier", LabelSelector::Op::kIn, {"a", "b"}},
                           {"env", LabelSelector::Op::kNotIn, {"prod"}},
                           {"team", LabelSelector::Op::kExists, {}},
                           {"canary", LabelSelector::Op::kDoesNotExist, {}}};
  EXPECT_TRUE(sel.Matches({{"app", "web"}, {"tier", "a"}, {"team", "x"}}));
  EXPECT_TRUE(sel.Matches({{"app", "web"}, {"tier", "b"}, {"team", "x"}, {"env", "dev"}}));
  EXPECT_FALSE(sel.Matches({{"app", "web"}, {"tier", "c"}, {"team", "x"}}));
  EXPECT_FALSE(sel.Matches({{"app", "web"}, {"tier", "a"}, {"team", "x"}, {"env", "prod"}}));
  EXPECT_FALSE(sel.Matches({{"app", "web"}, {"tier", "a"}}));
  EXPECT_FALSE(sel.Matches({{"app", "web"}, {"tier", "a"}, {"team", "x"}, {"canary", ""}}));
  EXPECT_FALSE(sel.Matches({{"app", "db"}, {"tier", "a"}, {"team", "x"}}));
  EXPECT_TRUE(LabelSelector{}.Matches({}));
  EXPECT_TRUE(LabelSelector{}.Matches({{"any", "thing"}}));
}

TEST(Protocol, NamesAreKubernetesSpellings) {
  EXPECT_EQ(ProtocolName(Protocol::kTcp), "TCP");
  EXPECT_EQ(ProtocolName(Protocol::kUdp), "UDP");
  EXPECT_EQ(ProtocolName(Protocol::kSctp), "SCTP");
}

}  // namespace
}  // namespace nicflow::flowtables
