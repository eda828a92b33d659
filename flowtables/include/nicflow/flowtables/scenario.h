// Scenario files: the two test formats documented in examples/README.md, as plain structs.
//
// A *service scenario* gives a cluster state (manifest files, inline objects, and a node name or
// an inline block of node facts) and packets with the fate expected on that node. A *netpol
// scenario* gives namespaces, pods and NetworkPolicies in the x/y/z style of the Kubernetes e2e
// suite, with probes saying which pod pairs must connect. The conformance runner and the tests
// of every backend read them; this header only parses and validates (errors name the file, the
// scenario and the field path), it does not run anything.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "nicflow/flowtables/ip.h"
#include "nicflow/flowtables/loader.h"
#include "nicflow/flowtables/model.h"

namespace nicflow::flowtables {

/// What a traced packet must end up as.
enum class ExpectedVerdict : uint8_t {
  kForward,  ///< expect: "" (no rule rewrites or stops it)
  kDnat,     ///< expect: "ip:port, ..." (leaves with one of these destinations)
  kDrop,     ///< expect: DROP
  kReject,   ///< expect: REJECT
};

struct ScenarioPacket {
  std::string name;
  Protocol proto = Protocol::kTcp;
  IpAddr src;
  IpAddr dst;
  uint16_t dst_port = 0;
  ExpectedVerdict verdict = ExpectedVerdict::kForward;
  /// kDnat: every destination the packet may leave with, in the order written.
  std::vector<std::pair<IpAddr, uint16_t>> endpoints;
  bool masq = false;  ///< whether it must be masqueraded (source-NATed)
  /// Entry port class when given (`inPort`), e.g. "host", "pod", "uplink"; otherwise the runner
  /// derives it from `src` (node IP: host; inside the cluster CIDRs: pod; else uplink).
  std::optional<std::string> in_port;
  std::string expect;  ///< `expect` as written, for messages
};

struct ServiceScenario {
  std::string name;
  std::vector<std::string> manifests;  ///< resolved against the scenario file's directory
  /// `node: NAME`, or the inline facts' name; empty when the scenario names no node.
  std::string node_name;
  /// Manifests plus inline objects; `node_facts` set when the scenario has an inline block.
  ClusterState state;
  std::vector<ScenarioPacket> packets;
  SourceRef source;
};

struct NetpolPod {
  std::string ns;
  std::string name;
  Labels labels;
  IpAddr ip;
  std::vector<ContainerPort> ports;
};

struct NetpolProbe {
  uint16_t port = 0;
  Protocol proto = Protocol::kTcp;
  /// Pairs [from, to] of pods written "ns/name".
  std::vector<std::pair<std::string, std::string>> allowed;
  std::vector<std::pair<std::string, std::string>> denied;
};

struct NetpolScenario {
  std::string name;
  std::map<std::string, Labels> namespaces;  ///< name -> labels as written
  std::vector<NetpolPod> pods;
  std::vector<NetworkPolicy> policies;  ///< validated and defaulted like loaded manifests
  std::vector<NetpolProbe> probes;
  SourceRef source;
};

/// Reads a service scenario file. Manifests are loaded with `options`.
/// Errors: NotFound (file or manifest missing), InvalidArgument naming file, scenario and field
/// ("examples/shop/scenarios.yaml: scenario 1 (shop on node-a): packets[2].dst: ..."),
/// ResourceExhausted for oversize input.
absl::StatusOr<std::vector<ServiceScenario>> LoadServiceScenarios(const std::string& path,
                                                                  const LoadOptions& options = {});
/// Same from text; `base_dir` resolves relative manifest paths.
absl::StatusOr<std::vector<ServiceScenario>> ParseServiceScenarios(std::string_view text,
                                                                   std::string_view source_name,
                                                                   std::string_view base_dir,
                                                                   const LoadOptions& options = {});

/// Reads a NetworkPolicy scenario file. Errors as LoadServiceScenarios; probes must name pods
/// the scenario defines, and pods namespaces it defines.
absl::StatusOr<std::vector<NetpolScenario>> LoadNetpolScenarios(const std::string& path,
                                                                const LoadOptions& options = {});
absl::StatusOr<std::vector<NetpolScenario>> ParseNetpolScenarios(std::string_view text,
                                                                 std::string_view source_name,
                                                                 const LoadOptions& options = {});

/// The cluster a netpol scenario describes: its namespaces (with kubernetes.io/metadata.name),
/// its pods running on node "node-1" with their IPs and ports, its policies, a Node object and
/// inline node facts: node IP 192.168.255.1 (plus fd00:ffff::1 when a pod is IPv6), cluster
/// CIDR 10.0.0.0/8, or when a pod lies outside it the /8 (IPv4) and /64 (IPv6) prefixes covering
/// every pod; the node's pod CIDRs are the cluster CIDRs (every pod is local).
ClusterState NetpolScenarioToClusterState(const NetpolScenario& scenario);

/// The node's name and IPs used by NetpolScenarioToClusterState.
inline constexpr std::string_view kNetpolNodeName = "node-1";
inline constexpr std::string_view kNetpolNodeIp = "192.168.255.1";
inline constexpr std::string_view kNetpolNodeIpV6 = "fd00:ffff::1";

}  // namespace nicflow::flowtables
