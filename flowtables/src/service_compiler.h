// Private to flowtables: the service stage — Service frontends to select groups, REJECT and DROP.
//
// What kube-proxy's nftables mode does, per node and per IP family (pkg/proxy/nftables/
// proxier.go, pkg/proxy/topology.go), and how it maps onto one LPM/ternary table:
//
//   kube-proxy                                   nicflow service table
//   service-ips / service-nodeports vmaps        one entry per frontend (dst IP, proto, port):
//                                                ClusterIP, each NodePort address, each
//                                                LoadBalancer ingress IP, each externalIP
//   service-/local- chains (numgen vmap)          select groups "svc/ns/name/port/v4/cluster|local"
//   endpoint- chains (dnat to)                    buckets [DNAT ip:port], one per endpoint
//   external- chain: eTP=Cluster "jump mark-for-  the external entry sets Masq itself
//     masquerade"
//   external- chain, eTP=Local: pods short-      extra entries at higher priority keyed on
//     circuit to cluster endpoints; host traffic  meta.flags LocalSrc / FromHost
//     masqueraded, to cluster endpoints
//   firewall-check (loadBalancerSourceRanges)    entries keyed on allowed source prefixes; the
//                                                frontend's entry without a source match drops
//   no-endpoint-services: reject / drop          the frontend's entry is REJECT (no usable
//                                                endpoint anywhere) or DROP (Local policy, none
//                                                on this node)
//   cluster-ips-check: reject other ports,       per ClusterIP a lower-priority REJECT entry;
//     drop unallocated ServiceCIDR addresses      per ServiceCIDR a lowest-priority DROP entry
//   service- chain "ip saddr != clusterCIDR      ClusterIp flag; masq_mark (nat_compiler.h)
//     jump mark-for-masquerade", masqueradeAll    decides after the lookup
//
// Endpoints: a Service port's endpoints are those of the EndpointSlices of its family whose
// port of the same name and protocol carries the target port (kube-proxy never reads the
// Service's targetPort). Cluster and Local sets are chosen as topology.go does: ready endpoints,
// else serving+terminating ones, separately for each set.
//
// Stability: group names and entry identities derive from the Service and the frontend only;
// buckets are sorted by address. Adding an endpoint modifies its group; the entries change only
// when a set goes from empty to non-empty (REJECT/DROP <-> DNAT).
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "nicflow/flowtables/compiler.h"
#include "nicflow/flowtables/model.h"
#include "program_builder.h"

namespace nicflow::flowtables {

// Service table priorities. A frontend's entries sit in [kPrioFrontend, kPrioFrontend + 520):
// + 0 any source, + 1 from host, + 2 from pods; with loadBalancerSourceRanges, an allowed prefix
// of length L adds 4 * (L + 1).
inline constexpr int32_t kPrioFrontend = 10000;
inline constexpr int32_t kPrioClusterIpOtherPort = 500;
inline constexpr int32_t kPrioUnallocated = 100;

/// One endpoint of a Service port, as kube-proxy sees it.
struct ServiceEndpoint {
  IpAddr addr;
  uint16_t port = 0;
  bool ready = true;
  bool serving = true;
  bool terminating = false;
  bool local = false;  ///< endpoint nodeName is this node
};

/// The endpoint sets of one Service port (topology.go CategorizeEndpoints).
struct CategorizedEndpoints {
  std::vector<ServiceEndpoint> cluster;  ///< ready anywhere, else serving+terminating anywhere
  std::vector<ServiceEndpoint> local;    ///< ready here, else serving+terminating here
  bool has_any = false;                  ///< some endpoint is usable somewhere in the cluster
};

/// Sorted by (address, port); a duplicate address:port keeps its most usable copy.
CategorizedEndpoints CategorizeEndpoints(const std::vector<ServiceEndpoint>& all);

/// The endpoints of `port` of family `family` among `slices` (the Service's EndpointSlices):
/// each slice's port with the same name and protocol gives the target port. Sorted, deduplicated.
std::vector<ServiceEndpoint> CollectEndpoints(const ServicePort& port, IpFamily family,
                                              const std::vector<const EndpointSlice*>& slices,
                                              const std::string& node_name);

/// "svc/<ns>/<name>/<port name or proto-port>/<v4|v6>/<cluster|local>".
std::string ServiceGroupName(const Service& svc, const ServicePort& port, IpFamily family,
                             bool local);

/// One Service's share of the service stage, compiled on its own (the incremental compiler's
/// per-Service unit, incremental.h).
struct ServiceUnitOutput {
  std::vector<Entry> entries;       ///< service-table entries, matches canonical
  std::vector<SelectGroup> groups;  ///< sorted by name
  std::vector<std::string> claims;  ///< the frontends and clusterIPs it holds, as text keys
  std::vector<std::string> notes;
};

/// Compiles `svc` alone with `slices` (its EndpointSlices, in name order). Services kube-proxy
/// skips (headless, ExternalName, no clusterIP) give an empty output. Errors: as CompileServices
/// for this Service, including a frontend it claims twice; claims other Services hold are the
/// caller's to check (`out.claims`).
absl::Status CompileOneService(const Service& svc, const NodeFacts& node,
                               const std::vector<const EndpointSlice*>& slices,
                               ServiceUnitOutput& out);

/// Emits the service stage. Errors: InvalidArgument naming the Service and field when a Service
/// cannot compile (two addresses of one family, a clusterIP of a family without a ServiceCIDR,
/// port 0, a frontend or clusterIP another Service already has); with
/// `options.skip_bad_objects` that Service is skipped and noted instead.
absl::Status CompileServices(const ClusterState& state, const NodeFacts& node,
                             const CompileOptions& options, ProgramBuilder& builder,
                             std::vector<std::string>& notes);

}  // namespace nicflow::flowtables
