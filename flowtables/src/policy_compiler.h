// Private to flowtables: the NetworkPolicy (networking.k8s.io/v1) stage of the compiler.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "nicflow/flowtables/model.h"
#include "policy_sets.h"
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

/// The structural checks CompilePolicies makes of every policy, for one policy. Errors: as
/// CompilePolicies.
absl::Status ValidateNetworkPolicy(const NetworkPolicy& policy);

/// The tags of one namespace's policy sets, by direction, in key order.
struct NamespacePolicyTags {
  std::vector<uint32_t> egress;
  std::vector<uint32_t> ingress;
};

/// One namespace's share of the policy tables (the incremental compiler's per-namespace unit,
/// incremental.h): the sets of the namespace's local pods, tagged among themselves, with their
/// pod, peer and rule entries; not the bypass entries. Equal to what CompilePolicies emits for
/// the namespace as long as no tag of one namespace equals a tag of another (the caller checks
/// `tags`) and no two local pods share an address. Errors: as CompilePolicies.
absl::Status CompileNamespacePolicies(const PolicyIndex& index, const NodeFacts& node,
                                      std::string_view ns, ProgramBuilder& builder,
                                      std::vector<std::string>& notes, NamespacePolicyTags& tags);

/// The entries that let hairpin traffic (and, for ingress, traffic from the node) bypass the
/// `dir` policy tables; CompilePolicies adds them when any local pod is isolated in `dir`.
void AddPolicyBypassEntries(PolicyDirection dir, ProgramBuilder& builder);

}  // namespace nicflow::flowtables
