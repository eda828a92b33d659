// The compiler: a node's view of the cluster -> the pipeline program (pipeline.h).
//
// Semantics are kube-proxy's nftables mode for Services and NAT, NetworkPolicy v1 for policy,
// evaluated for one node. See docs/semantics.md for the rules and their sources.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nicflow/flowtables/ir.h"
#include "nicflow/flowtables/model.h"

namespace nicflow::flowtables {

struct CompileOptions {
  /// The node to compile for; empty: KubeProxyConfiguration.hostnameOverride, inline node facts,
  /// or the only Node object.
  std::string node_name;
  /// Skip (and report) an object that cannot be compiled instead of failing the compile.
  bool skip_bad_objects = false;
};

struct CompileResult {
  Program program;
  NodeFacts node;                  ///< the resolved node facts the program was compiled for
  std::vector<std::string> notes;  ///< skipped objects, degraded choices, with reasons
};

/// Resolves the node's facts from Node, ServiceCIDR and KubeProxyConfiguration objects (or the
/// inline facts). Errors: InvalidArgument when the node is unknown or ambiguous.
absl::StatusOr<NodeFacts> ResolveNodeFacts(const ClusterState& state,
                                           const CompileOptions& options);

/// Compiles `state` for one node. Errors: InvalidArgument naming the object and field that
/// cannot be compiled (never a partial program).
absl::StatusOr<CompileResult> Compile(const ClusterState& state, const CompileOptions& options);

}  // namespace nicflow::flowtables
