// The compiler's entry points: resolve the node's facts, then run the stages in pipeline order.
// Stage by stage: nat_compiler.h (classify, ct_state, masq_mark, snat, forward),
// service_compiler.h (service), policy_compiler.h (egress_* and ingress_*).
#include "nicflow/flowtables/compiler.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nat_compiler.h"
#include "nicflow/flowtables/status.h"
#include "policy_compiler.h"
#include "program_builder.h"
#include "service_compiler.h"

namespace nicflow::flowtables {

namespace {

const Node* FindNode(const ClusterState& state, const std::string& name) {
  for (const Node& n : state.nodes) {
    if (n.name == name) return &n;
  }
  return nullptr;
}

std::string NodeNames(const ClusterState& state) {
  std::vector<std::string> names;
  for (const Node& n : state.nodes) names.push_back(n.name);
  std::sort(names.begin(), names.end());
  return names.empty() ? "none" : absl::StrJoin(names, ", ");
}

// Which node to compile for: the caller's choice, else kube-proxy's hostnameOverride, else the
// only Node there is.
absl::StatusOr<std::string> ChooseNodeName(const ClusterState& state,
                                           const CompileOptions& options) {
  if (!options.node_name.empty()) return options.node_name;
  if (state.proxy_config && !state.proxy_config->hostname_override.empty()) {
    return state.proxy_config->hostname_override;
  }
  if (state.nodes.size() == 1) return state.nodes.front().name;
  return absl::InvalidArgumentError(absl::StrCat(
      "cannot tell which node to compile for: ", state.nodes.size(), " Node objects (",
      NodeNames(state), ") and neither a node name nor KubeProxyConfiguration.hostnameOverride"));
}

std::vector<IpPrefix> Unique(const std::vector<IpPrefix>& in) {
  std::vector<IpPrefix> out;
  for (const IpPrefix& p : in) {
    if (std::find(out.begin(), out.end(), p) == out.end()) out.push_back(p);
  }
  return out;
}

// Fills what the inline facts or the Node object left open from the cluster-wide objects.
void FillClusterFacts(const ClusterState& state, const Node* node_obj, NodeFacts& facts) {
  if (facts.ips.empty() && node_obj != nullptr) {
    facts.ips = node_obj->internal_ips;  // InternalIP first: it is the primary address
    for (const IpAddr& a : node_obj->external_ips) {
      if (std::find(facts.ips.begin(), facts.ips.end(), a) == facts.ips.end()) {
        facts.ips.push_back(a);
      }
    }
  }
  if (facts.pod_cidrs.empty() && node_obj != nullptr) facts.pod_cidrs = node_obj->pod_cidrs;
  if (facts.cluster_cidrs.empty() && state.proxy_config) {
    facts.cluster_cidrs = state.proxy_config->cluster_cidrs;
  }
  if (facts.cluster_cidrs.empty()) {
    // No clusterCIDR configured: every node's podCIDRs together are the pod network.
    std::set<IpPrefix> all;
    for (const Node& n : state.nodes) all.insert(n.pod_cidrs.begin(), n.pod_cidrs.end());
    facts.cluster_cidrs.assign(all.begin(), all.end());
  }
  if (facts.service_cidrs.empty()) {
    for (const ServiceCidr& sc : state.service_cidrs) {
      facts.service_cidrs.insert(facts.service_cidrs.end(), sc.cidrs.begin(), sc.cidrs.end());
    }
  }
  facts.cluster_cidrs = Unique(facts.cluster_cidrs);
  facts.service_cidrs = Unique(facts.service_cidrs);
  facts.pod_cidrs = Unique(facts.pod_cidrs);
  // ip-masq-agent settings given inline win over a separate MasqConfig.
  const bool inline_masq = !facts.masq.non_masquerade_cidrs.empty() || facts.masq.masq_link_local;
  if (state.masq_config && !inline_masq) facts.masq = *state.masq_config;
}

// nodePortAddresses: ["primary"]: the node's primary address of each family.
std::vector<IpPrefix> PrimaryAddresses(const NodeFacts& facts) {
  std::vector<IpPrefix> out;
  for (IpFamily f : {IpFamily::kV4, IpFamily::kV6}) {
    if (auto a = PrimaryNodeIp(facts, f)) out.push_back(IpPrefix::Host(*a));
  }
  return out;
}

}  // namespace

absl::StatusOr<NodeFacts> ResolveNodeFacts(const ClusterState& state,
                                           const CompileOptions& options) {
  NodeFacts facts;
  if (state.node_facts) {
    facts = *state.node_facts;
    if (!options.node_name.empty()) {
      if (!facts.name.empty() && facts.name != options.node_name) {
        return absl::InvalidArgumentError(absl::StrCat("node facts are for node \"", facts.name,
                                                       "\" but the compile asks for node \"",
                                                       options.node_name, "\""));
      }
      facts.name = options.node_name;
    }
    FillClusterFacts(state, FindNode(state, facts.name), facts);
    return facts;
  }
  NICFLOW_ASSIGN_OR_RETURN(facts.name, ChooseNodeName(state, options));
  const Node* node_obj = FindNode(state, facts.name);
  if (node_obj == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "node \"", facts.name, "\": no Node object of that name (Nodes: ", NodeNames(state), ")"));
  }
  if (state.proxy_config) {
    const ProxyConfig& pc = *state.proxy_config;
    facts.masquerade_all = pc.masquerade_all;
    facts.detect_local = pc.detect_local;
    facts.node_port_addresses = pc.node_port_addresses;
  }
  FillClusterFacts(state, node_obj, facts);
  if (state.proxy_config && state.proxy_config->node_port_primary) {
    facts.node_port_addresses = PrimaryAddresses(facts);
  }
  return facts;
}

absl::StatusOr<CompileResult> Compile(const ClusterState& state, const CompileOptions& options) {
  CompileResult result;
  NICFLOW_ASSIGN_OR_RETURN(result.node, ResolveNodeFacts(state, options));
  const NodeFacts& node = result.node;
  if (node.ips.empty()) {
    result.notes.push_back(absl::StrCat("node ", node.name,
                                        ": no addresses; no NodePorts, masquerade or egress SNAT"));
  }
  ProgramBuilder builder;
  CompileClassify(node, builder);
  CompileConntrackState(builder);
  NICFLOW_RETURN_IF_ERROR(CompileServices(state, node, options, builder, result.notes));
  CompileMasqMark(state, node, builder, result.notes);
  NICFLOW_RETURN_IF_ERROR(CompilePolicies(state, node, builder, result.notes));
  CompileSnat(node, builder, result.notes);
  NICFLOW_RETURN_IF_ERROR(CompileForward(state, node, options, builder, result.notes));
  NICFLOW_ASSIGN_OR_RETURN(result.program, std::move(builder).Finish());
  return result;
}

}  // namespace nicflow::flowtables
