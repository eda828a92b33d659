// The manifest loader on bad input: every error names the file, the object and the field, the
// state is left untouched, and skip mode drops only the bad object.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "loader_test_util.h"
#include "nicflow/flowtables/loader.h"

namespace nicflow::flowtables {
namespace {

using ::testing::HasSubstr;
using testing::Load;
using testing::LoadError;
using ::testing::StartsWith;
using testing::TempDir;

std::string Svc(std::string_view spec) {
  return absl::StrCat("apiVersion: v1\nkind: Service\nmetadata: {name: cart, namespace: shop}\n",
                      "spec: ", Sv(spec), "\n");
}

std::string Policy(std::string_view spec) {
  return absl::StrCat(
      "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: "
      "shop}\nspec: ",
      Sv(spec), "\n");
}

TEST(LoaderErrors, TargetPortOutOfRangeNamesFileObjectAndField) {
  EXPECT_EQ(LoadError(Svc("{clusterIP: 10.96.0.90, ports: [{port: 80, targetPort: 70000}]}"), {},
                      "examples/shop/cluster.yaml"),
            "examples/shop/cluster.yaml: Service shop/cart: spec.ports[0].targetPort: 70000 out "
            "of range (1-65535)");
}

TEST(LoaderErrors, PortsOutOfRange) {
  EXPECT_EQ(LoadError(Svc("{ports: [{port: 0}]}")),
            "test.yaml: Service shop/cart: spec.ports[0].port: 0 out of range (1-65535)");
  EXPECT_EQ(LoadError(Svc("{ports: [{port: 80}, {name: b, port: 81}]}")),
            "test.yaml: Service shop/cart: spec.ports[0].name: required when the Service has more "
            "than one port");
  EXPECT_EQ(LoadError(Svc("{ports: [{name: a, port: 80}, {name: b, port: 65536}]}")),
            "test.yaml: Service shop/cart: spec.ports[1].port: 65536 out of range (1-65535)");
  EXPECT_EQ(LoadError(Svc("{ports: [{port: -1}]}")),
            "test.yaml: Service shop/cart: spec.ports[0].port: -1 out of range (1-65535)");
  EXPECT_EQ(LoadError(Svc("{ports: [{port: 99999999999999999999}]}")),
            "test.yaml: Service shop/cart: spec.ports[0].port: 99999999999999999999 out of range "
            "(1-65535)");
  EXPECT_EQ(LoadError(Svc("{ports: [{port: 80.5}]}")),
            "test.yaml: Service shop/cart: spec.ports[0].port: expected an integer, got 80.5");
  EXPECT_EQ(LoadError(Svc("{type: NodePort, ports: [{port: 80, nodePort: 70000}]}")),
            "test.yaml: Service shop/cart: spec.ports[0].nodePort: 70000 out of range (0-65535)");
  EXPECT_EQ(LoadError(Svc("{ports: [{port: 80, nodePort: 30080}]}")),
            "test.yaml: Service shop/cart: spec.ports[0].nodePort: may not be used when type is "
            "ClusterIP");
}

TEST(LoaderErrors, ServiceStructure) {
  EXPECT_EQ(LoadError(Svc("{clusterIP: 10.96.0.1}")),
            "test.yaml: Service shop/cart: spec.ports: required value (a Service that is not "
            "headless or ExternalName needs ports)");
  EXPECT_EQ(LoadError(Svc("{ports: [{name: a, port: 80}, {name: a, port: 81}]}")),
            "test.yaml: Service shop/cart: spec.ports[1].name: duplicate port name \"a\"");
  EXPECT_EQ(LoadError(Svc("{ports: [{port: 80, targetPort: Http}]}")),
            "test.yaml: Service shop/cart: spec.ports[0].targetPort: invalid port name "
            "\"Http\": must be an IANA service name (a-z, 0-9, '-', at least one letter, at "
            "most 15)");
  EXPECT_EQ(LoadError(Svc("{ports: [{port: 80, targetPort: \"8080\"}]}")),
            "test.yaml: Service shop/cart: spec.ports[0].targetPort: invalid port name \"8080\": "
            "must be an IANA service name (a-z, 0-9, '-', at least one letter, at most 15)");
  EXPECT_EQ(LoadError(Svc("{clusterIPs: [10.96.0.1, 10.96.0.2], ports: [{port: 80}]}")),
            "test.yaml: Service shop/cart: spec.clusterIPs: at most one IP per family "
            "(dual-stack)");
  EXPECT_EQ(LoadError(Svc("{clusterIP: 10.96.0.1, clusterIPs: [10.96.0.2], ports: [{port: 80}]}")),
            "test.yaml: Service shop/cart: spec.clusterIPs: first entry \"10.96.0.2\" must match "
            "spec.clusterIP \"10.96.0.1\"");
  EXPECT_EQ(LoadError(Svc("{type: NodePort, clusterIP: None, ports: [{port: 80}]}")),
            "test.yaml: Service shop/cart: spec.clusterIP: may be \"None\" only when type is "
            "ClusterIP");
  EXPECT_EQ(LoadError(Svc("{clusterIP: 10.96.0.1, ports: [{port: 80}], sessionAffinity: ClientIP, "
                          "sessionAffinityConfig: {clientIP: {timeoutSeconds: 86401}}}")),
            "test.yaml: Service shop/cart: "
            "spec.sessionAffinityConfig.clientIP.timeoutSeconds: 86401 out of range (1-86400)");
}

TEST(LoaderErrors, EndPortRules) {
  EXPECT_EQ(
      LoadError(Policy("{podSelector: {}, ingress: [{ports: [{port: 9102, endPort: 9100}]}]}")),
      "test.yaml: NetworkPolicy shop/p: spec.ingress[0].ports[0].endPort: 9100 must be "
      "greater than or equal to port 9102");
  EXPECT_EQ(LoadError(Policy("{podSelector: {}, ingress: [{ports: [{port: http, endPort: 90}]}]}")),
            "test.yaml: NetworkPolicy shop/p: spec.ingress[0].ports[0].endPort: may not be "
            "specified when port is a name (\"http\")");
  EXPECT_EQ(LoadError(Policy("{podSelector: {}, egress: [{ports: [{endPort: 90}]}]}")),
            "test.yaml: NetworkPolicy shop/p: spec.egress[0].ports[0].endPort: may not be "
            "specified when port is not specified");
  EXPECT_EQ(LoadError(Policy("{podSelector: {}, egress: [{ports: [{port: 0}]}]}")),
            "test.yaml: NetworkPolicy shop/p: spec.egress[0].ports[0].port: 0 out of range "
            "(1-65535)");
}

TEST(LoaderErrors, WrongTypesNameTheField) {
  EXPECT_EQ(LoadError(Svc("cart")),
            "test.yaml: Service shop/cart: spec: expected a map, got a string");
  EXPECT_EQ(LoadError(Svc("{ports: {port: 80}}")),
            "test.yaml: Service shop/cart: spec.ports: expected a list, got a map");
  EXPECT_EQ(LoadError(Svc("{ports: [{port: [80]}]}")),
            "test.yaml: Service shop/cart: spec.ports[0].port: expected an integer, got a list");
  EXPECT_EQ(LoadError(Svc("{ports: [{port: \"80\"}]}")),
            "test.yaml: Service shop/cart: spec.ports[0].port: expected an integer, got a string");
  EXPECT_EQ(LoadError(Svc("{clusterIP: [10.96.0.1], ports: [{port: 80}]}")),
            "test.yaml: Service shop/cart: spec.clusterIP: expected a string, got a list");
  EXPECT_EQ(LoadError(Svc("{selector: [app], ports: [{port: 80}]}")),
            "test.yaml: Service shop/cart: spec.selector: expected a map, got a list");
  EXPECT_EQ(LoadError(Svc("{selector: {version: 1.0}, ports: [{port: 80}]}")),
            "test.yaml: Service shop/cart: spec.selector[version]: expected a string, got a "
            "number (quote it: \"1.0\")");
  EXPECT_EQ(LoadError("apiVersion: v1\nkind: Namespace\nmetadata: [shop]\n"),
            "test.yaml: Namespace (object 1): metadata: expected a map, got a list");
  EXPECT_EQ(LoadError("apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {hostNetwork: yes}\n"),
            "test.yaml: Pod default/a: spec.hostNetwork: expected a boolean, got a string");
  EXPECT_EQ(LoadError("- a\n- b\n"),
            "test.yaml: object 1: expected a Kubernetes object (a map), got a list");
}

TEST(LoaderErrors, UnknownEnumValues) {
  EXPECT_EQ(LoadError(Svc("{ports: [{port: 80, protocol: ICMP}]}")),
            "test.yaml: Service shop/cart: spec.ports[0].protocol: unsupported value \"ICMP\": "
            "must be one of TCP, UDP, SCTP");
  EXPECT_EQ(LoadError(Svc("{type: Foo, ports: [{port: 80}]}")),
            "test.yaml: Service shop/cart: spec.type: unsupported value \"Foo\": must be one of "
            "ClusterIP, NodePort, LoadBalancer, ExternalName");
  EXPECT_EQ(LoadError(Svc("{ports: [{port: 80}], externalTrafficPolicy: local}")),
            "test.yaml: Service shop/cart: spec.externalTrafficPolicy: unsupported value "
            "\"local\": must be one of Cluster, Local");
  EXPECT_EQ(LoadError(Policy("{podSelector: {}, policyTypes: [Ingress, Both]}")),
            "test.yaml: NetworkPolicy shop/p: spec.policyTypes[1]: unsupported value \"Both\": "
            "must be one of Ingress, Egress");
  EXPECT_EQ(LoadError("apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: "
                      "KubeProxyConfiguration\ndetectLocalMode: PodCIDR\n"),
            "test.yaml: KubeProxyConfiguration (object 1): detectLocalMode: unsupported value "
            "\"PodCIDR\": must be one of ClusterCIDR, NodeCIDR, InterfaceNamePrefix, "
            "BridgeInterface");
}

TEST(LoaderErrors, InvalidIpsAndCidrs) {
  EXPECT_EQ(LoadError(Svc("{clusterIP: 10.96.0.300, ports: [{port: 80}]}")),
            "test.yaml: Service shop/cart: spec.clusterIP: invalid IP address \"10.96.0.300\"");
  EXPECT_EQ(LoadError(Svc("{clusterIPs: [10.96.0.1, \"fd00::zz\"], ports: [{port: 80}]}")),
            "test.yaml: Service shop/cart: spec.clusterIPs[1]: invalid IP address \"fd00::zz\"");
  EXPECT_EQ(LoadError(Svc("{externalIPs: [010.0.0.1], ports: [{port: 80}]}")),
            "test.yaml: Service shop/cart: spec.externalIPs[0]: invalid IP address \"010.0.0.1\"");
  EXPECT_EQ(
      LoadError(Policy("{podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/33}}]}]}")),
      "test.yaml: NetworkPolicy shop/p: spec.ingress[0].from[0].ipBlock.cidr: invalid CIDR "
      "\"10.0.0.0/33\": bad prefix length");
  EXPECT_EQ(
      LoadError(Policy("{podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 10.0.0.1}}]}]}")),
      "test.yaml: NetworkPolicy shop/p: spec.ingress[0].from[0].ipBlock.cidr: invalid CIDR "
      "\"10.0.0.1\": missing prefix length");
  EXPECT_EQ(LoadError(Policy("{podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8, "
                             "except: [192.168.0.0/16]}}]}]}")),
            "test.yaml: NetworkPolicy shop/p: spec.ingress[0].from[0].ipBlock.except[0]: "
            "192.168.0.0/16 must be a strict subset of cidr 10.0.0.0/8");
  EXPECT_EQ(LoadError(Policy("{podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8, "
                             "except: [10.0.0.0/8]}}]}]}")),
            "test.yaml: NetworkPolicy shop/p: spec.ingress[0].from[0].ipBlock.except[0]: "
            "10.0.0.0/8 must be a strict subset of cidr 10.0.0.0/8");
  EXPECT_EQ(LoadError("apiVersion: networking.k8s.io/v1\nkind: ServiceCIDR\nmetadata: {name: "
                      "k}\nspec: {cidrs: [10.96.0.1/16]}\n"),
            "test.yaml: ServiceCIDR k: spec.cidrs[0]: invalid CIDR \"10.96.0.1/16\": host bits "
            "set (did you mean 10.96.0.0/16?)");
  EXPECT_EQ(LoadError("apiVersion: v1\nkind: Node\nmetadata: {name: n}\nstatus: {addresses: "
                      "[{type: InternalIP, address: node-a}]}\n"),
            "test.yaml: Node n: status.addresses[0].address: invalid IP address \"node-a\"");
  EXPECT_EQ(LoadError("apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: "
                      "KubeProxyConfiguration\nclusterCIDR: 10.244.0.0/16,10.245.0.0/16\n"),
            "test.yaml: KubeProxyConfiguration (object 1): clusterCIDR: at most one CIDR per IP "
            "family (dual-stack)");
}

TEST(LoaderErrors, PeersMustBeWellFormed) {
  EXPECT_EQ(LoadError(Policy("{podSelector: {}, ingress: [{from: [{}]}]}")),
            "test.yaml: NetworkPolicy shop/p: spec.ingress[0].from[0]: must specify a peer "
            "(podSelector, namespaceSelector or ipBlock)");
  EXPECT_EQ(LoadError(Policy("{podSelector: {}, ingress: [{from: [{podSelector: {}, ipBlock: "
                             "{cidr: 10.0.0.0/8}}]}]}")),
            "test.yaml: NetworkPolicy shop/p: spec.ingress[0].from[0]: ipBlock may not be "
            "combined with podSelector or namespaceSelector");
}

TEST(LoaderErrors, SelectorOperatorsAreChecked) {
  EXPECT_EQ(LoadError(Policy("{podSelector: {matchExpressions: [{key: app, operator: In}]}}")),
            "test.yaml: NetworkPolicy shop/p: spec.podSelector.matchExpressions[0].values: must "
            "be specified when operator is In or NotIn");
  EXPECT_EQ(LoadError(Policy("{podSelector: {matchExpressions: [{key: app, operator: NotIn, "
                             "values: []}]}}")),
            "test.yaml: NetworkPolicy shop/p: spec.podSelector.matchExpressions[0].values: must "
            "be specified when operator is In or NotIn");
  EXPECT_EQ(LoadError(Policy("{podSelector: {matchExpressions: [{key: app, operator: Exists, "
                             "values: [a]}]}}")),
            "test.yaml: NetworkPolicy shop/p: spec.podSelector.matchExpressions[0].values: may "
            "not be specified when operator is Exists or DoesNotExist");
  EXPECT_EQ(LoadError(Policy("{podSelector: {}, ingress: [{from: [{namespaceSelector: "
                             "{matchExpressions: [{key: app, operator: Gt, values: ['1']}]}}]}]}")),
            "test.yaml: NetworkPolicy shop/p: "
            "spec.ingress[0].from[0].namespaceSelector.matchExpressions[0].operator: unsupported "
            "value \"Gt\": must be one of In, NotIn, Exists, DoesNotExist");
  EXPECT_EQ(LoadError(Policy("{podSelector: {matchLabels: {\"a b\": c}}}")),
            "test.yaml: NetworkPolicy shop/p: spec.podSelector.matchLabels[a b]: invalid label "
            "key \"a b\": must be [prefix/]name, name at most 63 of A-Z, a-z, 0-9, '-', '_', '.', "
            "starting and ending alphanumeric");
}

TEST(LoaderErrors, MissingApiVersionOrKindOrName) {
  EXPECT_EQ(LoadError("kind: Service\nmetadata: {name: a}\n"),
            "test.yaml: Service default/a: apiVersion: required value");
  EXPECT_EQ(LoadError("apiVersion: v1\nmetadata: {name: a}\n"),
            "test.yaml: object a: kind: required value");
  EXPECT_EQ(LoadError("apiVersion: v1\nkind: Service\nmetadata: {namespace: shop}\nspec: {}\n"),
            "test.yaml: Service (object 1): metadata.name: required value");
  EXPECT_EQ(LoadError("apiVersion: v1\nkind: Service\nmetadata: {name: Cart}\n"),
            "test.yaml: Service default/Cart: metadata.name: invalid name \"Cart\": must be an RFC "
            "1035 label (a-z, 0-9, '-', starting with a letter, at most 63)");
}

TEST(LoaderErrors, UnsupportedVersionsOfKnownKinds) {
  EXPECT_EQ(
      LoadError("apiVersion: extensions/v1beta1\nkind: NetworkPolicy\nmetadata: {name: p}\n"),
      "test.yaml: NetworkPolicy default/p: apiVersion: extensions/v1beta1 is not supported for "
      "NetworkPolicy (use networking.k8s.io/v1)");
  EXPECT_EQ(
      LoadError("apiVersion: discovery.k8s.io/v1beta1\nkind: EndpointSlice\nmetadata: "
                "{name: s}\naddressType: IPv4\n"),
      "test.yaml: EndpointSlice default/s: apiVersion: discovery.k8s.io/v1beta1 is not supported "
      "for EndpointSlice (use discovery.k8s.io/v1)");
}

TEST(LoaderErrors, DuplicateObjectsNameBothSources) {
  std::string ns = "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n";
  EXPECT_EQ(LoadError(ns + "---\n" + ns),
            "test.yaml: Namespace shop: duplicate object: already defined in test.yaml:1");
  TempDir dir;
  std::string a = dir.Write("a.yaml", ns);
  std::string b = dir.Write("b.json", R"({"apiVersion": "v1", "kind": "Namespace",
      "metadata": {"name": "shop"}})");
  ClusterState s;
  absl::Status st = LoadPaths({a, b}, {}, s);
  EXPECT_EQ(std::string(Sv(st.message())),
            b + ": Namespace shop: duplicate object: already defined in " + a + ":1");
  // Also against what an earlier call loaded.
  ASSERT_TRUE(LoadPaths({a}, {}, s).ok());
  st = LoadPaths({b}, {}, s);
  EXPECT_THAT(std::string(Sv(st.message())), HasSubstr("already defined in " + a));
  // Same name in two namespaces, or two kinds, is fine.
  EXPECT_EQ(LoadError(Svc("{clusterIP: None}") + "---\n" +
                      "apiVersion: v1\nkind: Service\nmetadata: {name: cart, namespace: "
                      "other}\nspec: {clusterIP: None}\n"),
            "OK");
  std::string kpc = "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n";
  EXPECT_THAT(LoadError(kpc + "---\n" + kpc), HasSubstr("duplicate object"));
  EXPECT_EQ(LoadError(kpc + "metadata: {name: a}\n---\n" + kpc + "metadata: {name: b}\n"),
            "test.yaml: KubeProxyConfiguration b: duplicate object: already defined in "
            "test.yaml:1");
}

TEST(LoaderErrors, OversizeInputIsResourceExhaustedNamingTheFile) {
  std::string ns = "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n";
  LoadOptions small;
  small.max_file_bytes = 16;
  absl::StatusOr<ClusterState> s = Load(ns, small);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(std::string(Sv(s.status().message())),
            "test.yaml: 54 bytes exceeds the limit of 16 (LoadOptions::max_file_bytes)");

  TempDir dir;
  std::string path = dir.Write("big.yaml", ns);
  ClusterState state;
  absl::Status st = LoadPaths({path}, small, state);
  EXPECT_EQ(st.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(Sv(st.message())), StartsWith(path + ": 54 bytes exceeds"));

  LoadOptions few;
  few.max_objects = 2;
  std::string three =
      "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Namespace, "
      "metadata: {name: a}}\n- {apiVersion: v1, kind: Namespace, metadata: {name: "
      "b}}\n- {apiVersion: v1, kind: Namespace, metadata: {name: c}}\n";
  s = Load(three, few);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(std::string(Sv(s.status().message())),
            "test.yaml: more than 2 objects (LoadOptions::max_objects)");

  LoadOptions short_strings;
  short_strings.max_string_bytes = 12;
  s = Load(ns + "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a-very-long-name}\n",
           short_strings);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(std::string(Sv(s.status().message())),
            "test.yaml:7:18: a scalar of 16 bytes exceeds the limit of 12 "
            "(LoadOptions::max_string_bytes)");
}

TEST(LoaderErrors, AliasBombIsRefused) {
  std::string bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
  char prev = 'a';
  for (char c = 'b'; c <= 'k'; ++c, ++prev) {
    absl::StrAppend(&bomb, std::string(1, c), ": &", std::string(1, c), " [");
    for (int i = 0; i < 10; ++i) absl::StrAppend(&bomb, i ? ", " : "", "*", std::string(1, prev));
    absl::StrAppend(&bomb, "]\n");
  }
  absl::StatusOr<ClusterState> s = Load(bomb);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(Sv(s.status().message())), HasSubstr("alias expansion"));
}

TEST(LoaderErrors, SyntaxErrorsCarryLineAndColumn) {
  EXPECT_EQ(LoadError("apiVersion: v1\nkind: Service\nmetadata: {name: a\nspec: {}\n"),
            "test.yaml:4:5: YAML syntax error: end of map flow not found");
  EXPECT_EQ(LoadError("apiVersion: v1\nkind: Service\n  metadata: x\n"),
            "test.yaml:3:11: YAML syntax error: illegal map value");
  EXPECT_THAT(LoadError("{\"apiVersion\": \"v1\",\n \"kind\": }\n", {}, "x.json"),
              StartsWith("x.json:2:10: JSON syntax error: "));
  EXPECT_EQ(LoadError("a: 1\na: 2\n"), "test.yaml:2:1: duplicate key \"a\"");
  EXPECT_EQ(LoadError(R"({"kind": "Namespace", "kind": "Pod"})"),
            "test.yaml: duplicate key \"kind\" in a JSON object");
}

TEST(LoaderErrors, BinaryAndNonUtf8InputIsRefused) {
  EXPECT_EQ(LoadError("apiVersion: v1\nkind: \xff\xfe\n"),
            "test.yaml:2:7: not valid UTF-8 (byte 0xff); manifests must be UTF-8 text");
  EXPECT_EQ(LoadError(std::string("apiVersion: v1\0\x01", 17)),
            "test.yaml:1:15: control character 0x00 (binary data?)");
  EXPECT_EQ(LoadError("\xc0\xaf"),
            "test.yaml:1:1: not valid UTF-8 (byte 0xc0); manifests must be "
            "UTF-8 text");
  EXPECT_EQ(LoadError("just some words\n"),
            "test.yaml: object 1: expected a Kubernetes object (a map), got a string");
  // A UTF-8 byte order mark and non-ASCII text are fine.
  EXPECT_EQ(LoadError("\xEF\xBB\xBF"
                      "apiVersion: v1\nkind: Namespace\nmetadata: {name: a, "
                      "annotations: {note: \"caf\xc3\xa9\"}}\n"),
            "OK");
}

TEST(LoaderAtomicity, StateIsUnchangedOnError) {
  ClusterState state;
  ASSERT_TRUE(
      LoadText("apiVersion: v1\nkind: Namespace\nmetadata: {name: old}\n", "old.yaml", {}, state)
          .ok());
  std::string good =
      "apiVersion: v1\nkind: Namespace\nmetadata: {name: new}\n---\n"
      "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n";
  std::string bad = Svc("{ports: [{port: 0}]}");
  EXPECT_FALSE(LoadText(good + "---\n" + bad, "x.yaml", {}, state).ok());
  ASSERT_EQ(state.namespaces.size(), 1u);
  EXPECT_EQ(state.namespaces[0].name, "old");
  EXPECT_TRUE(state.notes.empty());

  TempDir dir;
  std::string a = dir.Write("a.yaml", good);
  std::string b = dir.Write("b.yaml", bad);
  EXPECT_FALSE(LoadPaths({a, b}, {}, state).ok());
  EXPECT_EQ(state.namespaces.size(), 1u);
  EXPECT_FALSE(LoadPaths({a, dir.path().string() + "/missing.yaml"}, {}, state).ok());
  EXPECT_EQ(state.namespaces.size(), 1u);
}

TEST(LoaderSkipMode, BadObjectAloneIsSkippedAndReported) {
  LoadOptions skip;
  skip.skip_bad_objects = true;
  std::string text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n---\n" +
                     Svc("{ports: [{port: 80, targetPort: 70000}]}") + "---\n" +
                     "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\n"
                     "spec: {clusterIP: 10.96.0.1, ports: [{port: 80}]}\n---\nkind: Pod\n";
  std::string message = LoadError(text);
  EXPECT_EQ(message,
            "test.yaml: Service shop/cart: spec.ports[0].targetPort: 70000 out of range (1-65535)");
  absl::StatusOr<ClusterState> s = Load(text, skip);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->namespaces.size(), 1u);
  ASSERT_EQ(s->services.size(), 1u);
  EXPECT_EQ(s->services[0].name, "web");
  ASSERT_EQ(s->notes.size(), 2u);
  EXPECT_EQ(s->notes[0], "skipped: " + message);
  EXPECT_EQ(s->notes[1], "skipped: test.yaml: Pod (object 4): apiVersion: required value");
}

TEST(LoaderSkipMode, DuplicatesAreSkippedButSyntaxErrorsStillFail) {
  LoadOptions skip;
  skip.skip_bad_objects = true;
  std::string ns = "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n";
  absl::StatusOr<ClusterState> s = Load(ns + "---\n" + ns, skip);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->namespaces.size(), 1u);
  EXPECT_THAT(s->notes.at(0), HasSubstr("duplicate object"));
  EXPECT_FALSE(Load(ns + "---\n{a: [\n", skip).ok());
}

}  // namespace
}  // namespace nicflow::flowtables
