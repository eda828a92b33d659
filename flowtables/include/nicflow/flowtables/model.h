// The intent model: the Kubernetes objects nicflow reads, as plain validated C++ values.
//
// The loader (loader.h) fills a ClusterState from manifests; the compiler (compiler.h) reads it.
// Every object keeps a SourceRef so errors and provenance can name the file and object. Values
// here are already validated (ports in range, IPs and CIDRs parsed); defaults Kubernetes applies
// on admission (protocol TCP, targetPort = port, policyTypes, ...) are applied by the loader.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "nicflow/flowtables/ip.h"

namespace nicflow::flowtables {

enum class Protocol : uint8_t { kTcp = 6, kUdp = 17, kSctp = 132 };
std::string_view ProtocolName(Protocol p);  ///< "TCP", "UDP", "SCTP"

using Labels = std::map<std::string, std::string>;

/// Where an object came from, for error messages and provenance.
struct SourceRef {
  std::string file;  ///< path as given, or "<inline>"
  int document = 0;  ///< index of the YAML document / List item in the file
  int line = 0;      ///< 1-based line where the object starts in YAML; 0 when unknown (JSON)
};

/// A label selector (metav1.LabelSelector). An empty selector selects everything.
struct LabelSelector {
  enum class Op : uint8_t { kIn, kNotIn, kExists, kDoesNotExist };
  struct Requirement {
    std::string key;
    Op op = Op::kIn;
    std::vector<std::string> values;
  };
  Labels match_labels;
  std::vector<Requirement> match_expressions;

  bool Matches(const Labels& labels) const;
  bool IsEmpty() const { return match_labels.empty() && match_expressions.empty(); }
};

struct Namespace {
  std::string name;
  Labels labels;  ///< includes kubernetes.io/metadata.name (added by the loader when absent)
  SourceRef source;
};

struct ContainerPort {
  std::string name;  ///< may be empty
  uint16_t port = 0;
  Protocol protocol = Protocol::kTcp;
};

struct Pod {
  std::string ns;
  std::string name;
  Labels labels;
  std::string node_name;
  std::vector<IpAddr> ips;  ///< status.podIPs (or podIP); empty when not yet running
  std::vector<ContainerPort> ports;
  bool host_network = false;
  bool terminal = false;  ///< phase Succeeded/Failed: no longer holds its IPs
  SourceRef source;
};

/// A Service port's targetPort: a number, or a container port name resolved per endpoint.
using TargetPort = std::variant<uint16_t, std::string>;

struct ServicePort {
  std::string name;
  Protocol protocol = Protocol::kTcp;
  uint16_t port = 0;
  TargetPort target_port = uint16_t{0};
  uint16_t node_port = 0;  ///< 0: none
};

enum class ServiceType : uint8_t { kClusterIP, kNodePort, kLoadBalancer, kExternalName };

struct Service {
  std::string ns;
  std::string name;
  ServiceType type = ServiceType::kClusterIP;
  bool headless = false;            ///< clusterIP: None
  std::vector<IpAddr> cluster_ips;  ///< spec.clusterIPs (or clusterIP); may be empty
  std::optional<Labels> selector;   ///< absent: endpoints managed by hand
  std::vector<ServicePort> ports;
  std::vector<IpAddr> external_ips;
  std::vector<IpAddr> load_balancer_ips;  ///< status.loadBalancer.ingress[].ip
  std::vector<IpPrefix> load_balancer_source_ranges;
  std::optional<uint32_t> affinity_timeout_s;  ///< set when sessionAffinity is ClientIP
  bool external_traffic_local = false;         ///< externalTrafficPolicy: Local
  bool internal_traffic_local = false;         ///< internalTrafficPolicy: Local
  SourceRef source;
};

struct EndpointPort {
  std::string name;  ///< matches ServicePort::name
  Protocol protocol = Protocol::kTcp;
  uint16_t port = 0;
};

struct Endpoint {
  std::vector<IpAddr> addresses;
  std::string node_name;
  bool ready = true;    ///< nil ready is treated as true (API semantics)
  bool serving = true;  ///< nil serving is true, as kube-proxy reads it (not "same as ready")
  bool terminating = false;
  std::string target_pod;  ///< "ns/name" from targetRef when it is a Pod
};

struct EndpointSlice {
  std::string ns;
  std::string name;
  std::string service_name;        ///< label kubernetes.io/service-name
  std::optional<IpFamily> family;  ///< addressType IPv4/IPv6; nullopt for FQDN (ignored)
  std::vector<Endpoint> endpoints;
  std::vector<EndpointPort> ports;
  SourceRef source;
};

struct IpBlock {
  IpPrefix cidr;
  std::vector<IpPrefix> except;
};

struct NetworkPolicyPeer {
  std::optional<LabelSelector> pod_selector;
  std::optional<LabelSelector> namespace_selector;
  std::optional<IpBlock> ip_block;
};

/// A policy port: a number or a named container port, with an optional endPort range.
struct NetworkPolicyPort {
  Protocol protocol = Protocol::kTcp;
  std::variant<std::monostate, uint16_t, std::string> port;  ///< monostate: all ports
  std::optional<uint16_t> end_port;
};

struct NetworkPolicyRule {
  std::vector<NetworkPolicyPeer> peers;  ///< empty: every peer
  std::vector<NetworkPolicyPort> ports;  ///< empty: every port and protocol
};

struct NetworkPolicy {
  std::string ns;
  std::string name;
  LabelSelector pod_selector;
  bool affects_ingress = false;  ///< policyTypes, defaulted as the API server does
  bool affects_egress = false;
  std::vector<NetworkPolicyRule> ingress;
  std::vector<NetworkPolicyRule> egress;
  SourceRef source;
};

struct Node {
  std::string name;
  std::vector<IpAddr> internal_ips;
  std::vector<IpAddr> external_ips;
  std::vector<IpPrefix> pod_cidrs;
  SourceRef source;
};

struct ServiceCidr {
  std::string name;
  std::vector<IpPrefix> cidrs;
  SourceRef source;
};

enum class DetectLocalMode : uint8_t { kClusterCidr, kNodeCidr, kInterfaceNamePrefix, kBridge };

/// kubeproxy.config.k8s.io/v1alpha1 KubeProxyConfiguration, the parts nicflow honours.
struct ProxyConfig {
  std::string hostname_override;
  std::vector<IpPrefix> cluster_cidrs;        ///< clusterCIDR, comma-separated for dual-stack
  std::vector<IpPrefix> node_port_addresses;  ///< empty: all node IPs
  bool node_port_primary = false;             ///< nodePortAddresses: ["primary"]
  bool masquerade_all = false;                ///< iptables or nftables masqueradeAll
  DetectLocalMode detect_local = DetectLocalMode::kClusterCidr;
  SourceRef source;
};

/// ip-masq-agent-like egress SNAT settings (nicflow's own; defaults as ip-masq-agent's).
struct MasqConfig {
  std::vector<IpPrefix> non_masquerade_cidrs;  ///< empty: cluster CIDRs only
  bool masq_link_local = false;
  SourceRef source;  ///< the MasqueradeConfig object it came from, if any
};

/// The resolved facts of the node being compiled for.
struct NodeFacts {
  std::string name;
  std::vector<IpAddr> ips;  ///< node addresses (host port); first per family is primary
  std::vector<IpPrefix> pod_cidrs;
  std::vector<IpPrefix> cluster_cidrs;
  std::vector<IpPrefix> service_cidrs;
  std::vector<IpPrefix> node_port_addresses;  ///< empty: every node IP
  bool masquerade_all = false;
  DetectLocalMode detect_local = DetectLocalMode::kClusterCidr;
  MasqConfig masq;
};

/// Everything loaded from manifests. Objects are kept in load order; lookups are by the compiler.
struct ClusterState {
  std::vector<Namespace> namespaces;
  std::vector<Pod> pods;
  std::vector<Service> services;
  std::vector<EndpointSlice> endpoint_slices;
  std::vector<NetworkPolicy> network_policies;
  std::vector<Node> nodes;
  std::vector<ServiceCidr> service_cidrs;
  std::optional<ProxyConfig> proxy_config;
  std::optional<MasqConfig> masq_config;
  /// Inline node facts (scenario files' `node:` block); override what Node objects say.
  std::optional<NodeFacts> node_facts;
  std::vector<std::string> notes;  ///< skipped kinds and objects, with reasons
};

}  // namespace nicflow::flowtables
