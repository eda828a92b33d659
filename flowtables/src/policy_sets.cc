#include "policy_sets.h"

#include <algorithm>
#include <set>
#include <tuple>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace nicflow::flowtables {

namespace {

constexpr std::string_view kNamespaceNameLabel = "kubernetes.io/metadata.name";

bool Usable(const Pod& p) { return !p.ips.empty() && !p.host_network && !p.terminal; }

const char* OpName(LabelSelector::Op op) {
  switch (op) {
    case LabelSelector::Op::kIn:
      return "in";
    case LabelSelector::Op::kNotIn:
      return "notin";
    case LabelSelector::Op::kExists:
      return "exists";
    case LabelSelector::Op::kDoesNotExist:
      return "!exists";
  }
  return "?";
}

const NetworkPolicyRule& RuleOf(const NetworkPolicy& p, PolicyDirection dir, int i) {
  return dir == PolicyDirection::kIngress ? p.ingress[i] : p.egress[i];
}

std::string PeerKey(const NetworkPolicyPeer& peer) {
  if (peer.ip_block) {
    std::vector<std::string> except;
    for (const IpPrefix& e : peer.ip_block->except) except.push_back(e.ToString());
    std::sort(except.begin(), except.end());
    return absl::StrCat("cidr(", peer.ip_block->cidr.ToString(), " except ",
                        absl::StrJoin(except, ","), ")");
  }
  std::string key;
  if (peer.namespace_selector)
    absl::StrAppend(&key, "ns(", SelectorKey(*peer.namespace_selector), ")");
  if (peer.pod_selector) absl::StrAppend(&key, "pod(", SelectorKey(*peer.pod_selector), ")");
  return key;
}

// The pods a selector peer admits: podSelector alone means the policy's own namespace.
std::vector<const Pod*> SelectPeerPods(const PolicyIndex& index, std::string_view policy_ns,
                                       const NetworkPolicyPeer& peer) {
  std::vector<const Pod*> out;
  auto add_from = [&](std::string_view ns) {
    for (const Pod* pod : index.PodsIn(ns)) {
      if (!peer.pod_selector || peer.pod_selector->Matches(pod->labels)) out.push_back(pod);
    }
  };
  if (!peer.namespace_selector) {
    add_from(policy_ns);
    return out;
  }
  for (const auto& [ns, labels] : index.Namespaces()) {
    if (peer.namespace_selector->Matches(labels)) add_from(ns);
  }
  return out;
}

bool InIpBlock(const IpBlock& block, const IpAddr& ip) {
  if (!block.cidr.Contains(ip)) return false;
  return std::none_of(block.except.begin(), block.except.end(),
                      [&](const IpPrefix& e) { return e.Contains(ip); });
}

uint32_t TagHash(std::string_view text) {
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a: stable across runs and platforms
  for (unsigned char c : text) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return static_cast<uint32_t>(h ^ (h >> 32));
}

}  // namespace

const char* DirectionName(PolicyDirection d) {
  return d == PolicyDirection::kIngress ? "ingress" : "egress";
}

std::string SelectorKey(const LabelSelector& s) {
  std::vector<std::string> parts;
  for (const auto& [k, v] : s.match_labels) parts.push_back(absl::StrCat(k, "=", v));
  for (const LabelSelector::Requirement& r : s.match_expressions) {
    std::vector<std::string> values = r.values;
    std::sort(values.begin(), values.end());
    parts.push_back(absl::StrCat(r.key, " ", OpName(r.op), " (", absl::StrJoin(values, ","), ")"));
  }
  std::sort(parts.begin(), parts.end());
  return absl::StrJoin(parts, ",");
}

PolicyIndex::PolicyIndex(const ClusterState& state) {
  for (const Namespace& ns : state.namespaces) {
    Labels& labels = namespaces_[ns.name];
    labels = ns.labels;
    labels.emplace(kNamespaceNameLabel, ns.name);
  }
  for (const Pod& pod : state.pods) {
    if (!namespaces_.contains(pod.ns)) {
      namespaces_[pod.ns] = Labels{{std::string(kNamespaceNameLabel), pod.ns}};
    }
    if (!Usable(pod)) continue;
    all_pods_.push_back(&pod);
    pods_by_ns_[pod.ns].push_back(&pod);
  }
  for (const NetworkPolicy& p : state.network_policies) policies_by_ns_[p.ns].push_back(&p);
  for (auto& [ns, policies] : policies_by_ns_) {
    std::sort(policies.begin(), policies.end(),
              [](const NetworkPolicy* a, const NetworkPolicy* b) { return a->name < b->name; });
  }
}

const std::vector<const Pod*>& PolicyIndex::PodsIn(std::string_view ns) const {
  static const std::vector<const Pod*> kNone;
  auto it = pods_by_ns_.find(ns);
  return it == pods_by_ns_.end() ? kNone : it->second;
}

const std::vector<const NetworkPolicy*>& PolicyIndex::PoliciesIn(std::string_view ns) const {
  static const std::vector<const NetworkPolicy*> kNone;
  auto it = policies_by_ns_.find(ns);
  return it == policies_by_ns_.end() ? kNone : it->second;
}

std::optional<uint16_t> ResolveNamedPort(const Pod& pod, std::string_view name, Protocol protocol) {
  for (const ContainerPort& cp : pod.ports) {
    if (cp.name == name && cp.protocol == protocol) return cp.port;
  }
  return std::nullopt;
}

absl::StatusOr<PeerCondition> ResolvePeerCondition(const PolicyIndex& index,
                                                   const NetworkPolicy& policy, PolicyDirection dir,
                                                   int rule_index) {
  const NetworkPolicyRule& rule = RuleOf(policy, dir, rule_index);
  const char* list = dir == PolicyDirection::kIngress ? "from" : "to";
  PeerCondition cond;
  cond.key = policy.ns;
  for (size_t j = 0; j < rule.peers.size(); ++j) {
    const NetworkPolicyPeer& peer = rule.peers[j];
    const std::string detail =
        absl::StrCat(DirectionName(dir), "[", rule_index, "] ", list, "[", j, "]");
    cond.origins.push_back(Origin{"NetworkPolicy", policy.ns, policy.name, detail});
    const auto origin = static_cast<uint32_t>(cond.origins.size() - 1);
    const bool has_selector = peer.pod_selector || peer.namespace_selector;
    if (peer.ip_block.has_value() == has_selector) {
      return absl::InvalidArgumentError(
          absl::StrCat("NetworkPolicy ", policy.ns, "/", policy.name, ": spec.", DirectionName(dir),
                       "[", rule_index, "].", list, "[", j, "]: ",
                       has_selector ? "ipBlock cannot be combined with selectors"
                                    : "a peer needs podSelector, namespaceSelector or ipBlock"));
    }
    absl::StrAppend(&cond.key, ";", PeerKey(peer));
    if (peer.ip_block) {
      cond.items.push_back(PrefixBitsItem{peer.ip_block->cidr, peer.ip_block->except, 0});
      cond.item_origin.push_back(origin);
      continue;
    }
    for (const Pod* pod : SelectPeerPods(index, policy.ns, peer)) {
      for (const IpAddr& ip : pod->ips) {
        cond.items.push_back(PrefixBitsItem{IpPrefix::Host(ip), {}, 0});
        cond.item_origin.push_back(origin);
      }
    }
  }
  return cond;
}

std::vector<PeerPodAddr> PeerPodAddrs(const PolicyIndex& index, const NetworkPolicy& policy,
                                      const NetworkPolicyRule& rule) {
  std::vector<PeerPodAddr> out;
  auto add_pod = [&](const Pod* pod) {
    for (const IpAddr& ip : pod->ips) out.push_back(PeerPodAddr{pod, ip});
  };
  if (rule.peers.empty()) {
    for (const Pod* pod : index.AllPods()) add_pod(pod);
  }
  for (const NetworkPolicyPeer& peer : rule.peers) {
    if (!peer.ip_block) {
      for (const Pod* pod : SelectPeerPods(index, policy.ns, peer)) add_pod(pod);
      continue;
    }
    for (const Pod* pod : index.AllPods()) {
      for (const IpAddr& ip : pod->ips) {
        if (InIpBlock(*peer.ip_block, ip)) out.push_back(PeerPodAddr{pod, ip});
      }
    }
  }
  auto key = [](const PeerPodAddr& a) { return std::tie(a.pod->ns, a.pod->name, a.ip); };
  std::sort(out.begin(), out.end(), [&](const auto& a, const auto& b) { return key(a) < key(b); });
  out.erase(std::unique(out.begin(), out.end(),
                        [&](const auto& a, const auto& b) { return key(a) == key(b); }),
            out.end());
  return out;
}

namespace {

// For ingress, the named ports of the set's rules resolve against the selected pod itself, so
// their numbers are part of what makes two pods share a set.
std::string NamedPortKey(const Pod& pod, const std::vector<const NetworkPolicy*>& policies) {
  std::set<std::pair<std::string, Protocol>> named;
  for (const NetworkPolicy* p : policies) {
    for (const NetworkPolicyRule& r : p->ingress) {
      for (const NetworkPolicyPort& port : r.ports) {
        if (const auto* name = std::get_if<std::string>(&port.port)) {
          named.emplace(*name, port.protocol);
        }
      }
    }
  }
  std::string key;
  for (const auto& [name, proto] : named) {
    const std::optional<uint16_t> n = ResolveNamedPort(pod, name, proto);
    absl::StrAppend(&key, " ", name, "/", static_cast<int>(proto), "=",
                    n ? absl::StrCat(*n) : std::string("none"));
  }
  return key;
}

}  // namespace

std::vector<PolicySet> BuildPolicySets(const PolicyIndex& index,
                                       const std::vector<const Pod*>& local_pods,
                                       PolicyDirection dir) {
  std::map<std::string, PolicySet> by_key;
  for (const Pod* pod : local_pods) {
    std::vector<const NetworkPolicy*> selecting;
    for (const NetworkPolicy* p : index.PoliciesIn(pod->ns)) {
      const bool affects =
          dir == PolicyDirection::kIngress ? p->affects_ingress : p->affects_egress;
      if (affects && p->pod_selector.Matches(pod->labels)) selecting.push_back(p);
    }
    if (selecting.empty()) continue;
    std::vector<std::string> names;
    for (const NetworkPolicy* p : selecting) names.push_back(p->name);
    std::string key =
        absl::StrCat(DirectionName(dir), " ", pod->ns, "/", absl::StrJoin(names, ","));
    if (dir == PolicyDirection::kIngress) key += NamedPortKey(*pod, selecting);
    PolicySet& set = by_key[key];
    if (set.pods.empty()) {
      set.dir = dir;
      set.ns = pod->ns;
      set.key = key;
      set.policies = std::move(selecting);
    }
    set.pods.push_back(pod);
  }
  std::vector<PolicySet> sets;
  sets.reserve(by_key.size());
  for (auto& [key, set] : by_key) {
    std::sort(set.pods.begin(), set.pods.end(),
              [](const Pod* a, const Pod* b) { return a->name < b->name; });
    sets.push_back(std::move(set));
  }
  AssignTags(sets);
  return sets;
}

void AssignTags(std::vector<PolicySet>& sets) {
  std::sort(sets.begin(), sets.end(),
            [](const PolicySet& a, const PolicySet& b) { return a.key < b.key; });
  absl::flat_hash_set<uint32_t> used;
  for (PolicySet& set : sets) {
    uint32_t tag = TagHash(set.key);
    for (int attempt = 1; tag == 0 || used.contains(tag); ++attempt) {
      tag = TagHash(absl::StrCat(set.key, "#", attempt));
    }
    used.insert(tag);
    set.tag = tag;
  }
}

}  // namespace nicflow::flowtables
