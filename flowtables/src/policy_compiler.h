// Private to flowtables: the NetworkPolicy (networking.k8s.io/v1) stage of the compiler.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "nicflow/flowtables/model.h"
#include "program_builder.h"

namespace nicflow::flowtables {

/// Compiles every NetworkPolicy of `state` that selects a pod on `node` into the six policy
/// tables (kTableEgressPod .. kTableIngressRule) of `builder`, and sets their default actions:
/// pods no policy isolates pass straight through (egress_pod -> ingress_pod -> snat). Degraded
/// choices (rule sets too large for the 32 peer bits) are described in `notes`.
/// Errors: InvalidArgument naming the policy and field when a policy cannot be compiled (a peer
/// with neither selector nor ipBlock, or both; endPort below port). Nothing is added on error
/// apart from default actions.
absl::Status CompilePolicies(const ClusterState& state, const NodeFacts& node,
                             ProgramBuilder& builder, std::vector<std::string>& notes);

}  // namespace nicflow::flowtables
