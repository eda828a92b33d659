// Private to flowtables: the model side of the NetworkPolicy compiler — which pods a policy
// selects, which addresses a rule's peers admit, and how local pods group into policy sets with
// stable tags. policy_compiler.cc turns the result into table entries; its design comment
// explains the whole.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "nicflow/flowtables/ir.h"
#include "nicflow/flowtables/model.h"
#include "policy_prefix.h"

namespace nicflow::flowtables {

enum class PolicyDirection : uint8_t { kIngress, kEgress };
const char* DirectionName(PolicyDirection d);  ///< "ingress", "egress"

/// Lookups over the cluster, built once per compile.
class PolicyIndex {
 public:
  /// Indexes `state`; keeps pointers into it, so `state` must outlive the index.
  explicit PolicyIndex(const ClusterState& state);

  /// Pods that can be selected or be peers: they hold IPs, are not hostNetwork (their address is
  /// the node's) and not terminal (Succeeded/Failed pods have released their IPs).
  const std::vector<const Pod*>& PodsIn(std::string_view ns) const;
  const std::vector<const Pod*>& AllPods() const { return all_pods_; }
  /// Every namespace named by a Namespace object or a pod, with its labels. A namespace known only
  /// from its pods gets the label the API server always sets, kubernetes.io/metadata.name.
  const std::map<std::string, Labels, std::less<>>& Namespaces() const { return namespaces_; }
  /// Policies by namespace, in name order.
  const std::vector<const NetworkPolicy*>& PoliciesIn(std::string_view ns) const;

 private:
  std::vector<const Pod*> all_pods_;
  std::map<std::string, std::vector<const Pod*>, std::less<>> pods_by_ns_;
  std::map<std::string, Labels, std::less<>> namespaces_;
  std::map<std::string, std::vector<const NetworkPolicy*>, std::less<>> policies_by_ns_;
};

/// The port number `pod` declares under `name` for `protocol`, if any. A policy's named port
/// must match both the container port's name and its protocol.
std::optional<uint16_t> ResolveNamedPort(const Pod& pod, std::string_view name, Protocol protocol);

/// Which addresses a rule's `from`/`to` admits, as LPM items (their bits are filled in per set).
struct PeerCondition {
  /// Equal keys admit equal addresses: rules of one set with the same key share one bit.
  std::string key;
  std::vector<PrefixBitsItem> items;
  std::vector<uint32_t> item_origin;  ///< parallel to `items`: index into `origins`
  std::vector<Origin> origins;        ///< one per peer (items share them: pods are many)
};

/// One pod address a peer list admits (for named ports resolved against the destination pod).
struct PeerPodAddr {
  const Pod* pod = nullptr;
  IpAddr ip;
};

/// Resolves the peers of rule `rule_index` of `policy` in direction `dir` (non-empty `peers`).
/// Errors: InvalidArgument naming the policy and peer when a peer sets no selector or ipBlock.
absl::StatusOr<PeerCondition> ResolvePeerCondition(const PolicyIndex& index,
                                                   const NetworkPolicy& policy, PolicyDirection dir,
                                                   int rule_index);

/// The pod addresses the rule's peers admit (every pod address when `peers` is empty); ipBlock
/// peers admit the pod addresses inside them.
std::vector<PeerPodAddr> PeerPodAddrs(const PolicyIndex& index, const NetworkPolicy& policy,
                                      const NetworkPolicyRule& rule);

/// The local pods one exact combination of policies (and, for ingress, named-port numbers)
/// selects in one direction.
struct PolicySet {
  PolicyDirection dir = PolicyDirection::kIngress;
  std::string ns;
  std::string key;  ///< canonical identity; the tag is derived from it
  uint32_t tag = 0;
  std::vector<const NetworkPolicy*> policies;  ///< in name order
  std::vector<const Pod*> pods;                ///< in name order
};

/// Groups `local_pods` by the policies of direction `dir` that select them; pods no policy
/// selects are not isolated and appear in no set. Sets come sorted by key, with tags assigned.
std::vector<PolicySet> BuildPolicySets(const PolicyIndex& index,
                                       const std::vector<const Pod*>& local_pods,
                                       PolicyDirection dir);

/// Gives each set a non-zero tag: a hash of its key, so a set keeps its tag whatever else changes;
/// on a collision the set later in key order re-hashes with a counter (deterministic).
void AssignTags(std::vector<PolicySet>& sets);

/// A canonical text of a selector ("app=web,tier in (a,b),!x"); equal selectors, equal text.
std::string SelectorKey(const LabelSelector& s);

}  // namespace nicflow::flowtables
