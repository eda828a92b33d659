// Generates a large, realistic cluster as a flowtables::ClusterState (seeded, deterministic).
//
// Shape: `nodes` nodes with a /24 pod CIDR each inside 10.0.0.0/8 (cluster CIDR), pods spread
// round-robin over nodes and namespaces, Services in 10.96.0.0/12 each backed by an EndpointSlice
// of `endpoints_per_service` pods (a pod backs several Services when there are fewer pods than
// endpoints), a mix of ClusterIP / NodePort / LoadBalancer (every tenth Service a NodePort until
// the 2,768 ports of the default node port range are used up), and NetworkPolicies selecting pods
// by label with pod, namespace and ipBlock peers and numeric, named and ranged ports.
#pragma once

#include <cstdint>
#include <string>

#include "nicflow/flowtables/model.h"

namespace nicflow::bench {

struct ClusterShape {
  int services = 10000;
  int endpoints_per_service = 10;
  int pods = 20000;
  int namespaces = 100;
  int policies = 2000;
  int nodes = 100;
  uint64_t seed = 1;
};

struct GeneratedCluster {
  flowtables::ClusterState state;
  std::string node_name;  ///< the node to compile for ("node-0")
  int peers = 0;          ///< policy peers in total (for the P+Q bound)
  int ports = 0;          ///< policy ports in total
  int rules = 0;          ///< policy rules in total
};

GeneratedCluster GenerateCluster(const ClusterShape& shape);

/// Replaces the endpoint `index` of EndpointSlice `slice` with another pod's IP (a one-endpoint
/// change, as when a pod is rescheduled).
void MoveOneEndpoint(flowtables::ClusterState& state, size_t slice, size_t index, uint64_t salt);

}  // namespace nicflow::bench
