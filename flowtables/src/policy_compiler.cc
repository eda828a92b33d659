// NetworkPolicy (networking.k8s.io/v1) -> the six policy tables of the standard pipeline.
//
// Where policy sits
// -----------------
// Policy runs after Service DNAT, so it sees the endpoint a packet really goes to. A new
// connection from a local pod walks egress_pod -> egress_peer -> egress_rule (the sender's
// egress policy), then ingress_pod -> ingress_peer -> ingress_rule (the receiver's ingress
// policy, when the receiver is a local pod), then snat. Established and reply packets never get
// here: the ct_state stage sends them past policy, as every conntrack-based CNI does.
// Egress is enforced for local senders only and ingress for local receivers only; remote pods are
// enforced by their own node. A pod no policy isolates in a direction has no *_pod entry, so the
// default actions let it through: egress_pod misses to ingress_pod, ingress_pod misses to snat.
// The API docs say traffic to and from the node where a pod runs is always allowed: traffic the
// node sends to a local pod (meta.flags FromHost: kubelet probes) bypasses ingress policy (one
// ingress_pod entry), and every egress set carries a built-in rule "to the node's own addresses,
// any port" (the peer list with key "!node", which always takes bit 0). Likewise "a pod cannot
// block access to itself": a pod reaching itself through a Service carries meta.flags Hairpin
// (set by masq_mark, which matches source == destination) and bypasses both *_pod tables.
//
// The naive design, and why not
// -----------------------------
// One entry per (selected pod, peer address, port) is what a direct translation gives: a rule
// with P peers and Q ports selecting S pods costs S x P x Q entries, which no NIC holds. Instead
// the compiler factors the three dimensions apart, as Antrea does with OVS `conjunction` and
// Cilium with security identities:
//
// 1. Policy sets (the pod dimension). Local pods are grouped by the exact list of policies that
//    select them in a direction (for ingress, plus the numbers their named ports resolve to,
//    since the destination pod resolves them). Each set gets a 32-bit tag, a hash of its key
//    (direction, namespace, policy names, named-port numbers): the tag depends on nothing else,
//    so unrelated changes never renumber it. Collisions re-hash with a counter in key order.
//    *_pod entries: (pod IP/32 or /128) -> meta.src_set|dst_set = tag.
// 2. Peer bits (the peer dimension). Within a set, each distinct peer list (`from`/`to` of a
//    rule; equal lists share) gets one bit of meta.peer_bits, in key order. *_peer entries:
//    (tag, peer prefix, LPM) -> peer_bits = OR of the bits of every peer list containing the
//    prefix. Nested prefixes and ipBlock `except` work by emitting the inner prefixes with their
//    own union (an except prefix gets the union of the lists that still contain it); the longest
//    match wins because an entry's priority is its prefix length (ComputePrefixBits). A peer list
//    with pod or namespace selectors resolves to the host prefixes of every pod in the cluster
//    (any node) that has IPs and is not hostNetwork. A miss writes 0.
// 3. Rules (the port dimension). *_rule entries: (tag, protocol, dst port range,
//    peer_bits & bit == bit) -> goto the next stage. A rule without peers matches any peer (mask
//    0); a rule without ports any protocol and port; a port without a number every port of its
//    protocol. Below them one entry per set, (tag) -> drop, carries the isolation as its origin,
//    and the table's default is drop too.
//
// So a rule with P peers and Q ports costs about P peer entries and Q rule entries. The cost the
// design does not remove: a rule whose policy selects pods of k different sets is emitted once per
// set (k x (P + Q)); sets are keyed by whole policies, so k stays small in namespaces where pods
// share their policies.
//
// Named ports. Ingress: resolved against the receiving pod, which is part of the set's key, so
// each set's rule entries carry plain numbers. Egress: resolved against the destination pod,
// which the rule table cannot see; the compiler splits the rule's peer list by the number each
// destination pod gives the name and gives each (peer list, number) its own bit. That costs one
// peer entry per peer pod address and one bit and rule entry per distinct number — the one place
// where peer resolution depends on ports. Addresses that are no pod never match a named port.
//
// More than 32 distinct peer lists in one set (31 plus the node's, for egress): lists past the
// last bit (in key order) get none; their rules become (tag, protocol, port range) -> punt
// entries, so the software datapath decides those packets with full policy. Reported in `notes`.
// It takes over 30 distinct `from`/`to` lists applying to one pod to get there.
//
// Priorities. Peer entries: the prefix length. Rule entries: allow entries never overlap at equal
// priority (the IR's rule): each peer bit has its own band, entries within a band are numbered in
// canonical order. Band order does not matter, since every allow entry does the same thing.
//
// Semantic choices where the API leaves room (docs/semantics.md, "NetworkPolicy"): ipBlock
// matches by address, pod addresses included; a named port matches a container port of the same
// name and protocol; traffic from the node to its pods is allowed; hostNetwork pods are never
// selected and never peers (their address is the node's).
//
// Invariants: every packet that enters egress_pod leaves the six tables by goto ingress_pod/snat,
// drop or punt; peer_bits is written before any rule table reads it (peer entries write all 32
// bits, peer misses write 0); tags of one direction are unique.
#include "policy_compiler.h"

#include <algorithm>
#include <map>
#include <optional>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nicflow/flowtables/status.h"
#include "policy_prefix.h"
#include "policy_sets.h"

namespace nicflow::flowtables {

namespace {

constexpr uint64_t kAllBits32 = 0xffffffffu;
constexpr int kPeerBitCount = 32;
// Bypass entries match flags only, above the pod entries; distinct so they never tie.
constexpr int32_t kPriorityHairpinBypass = 210;
constexpr int32_t kPriorityHostBypass = 200;
constexpr int32_t kPriorityPod = 100;
constexpr int32_t kPriorityIsolationDrop = 1;
constexpr int32_t kPriorityAllowBase = 1'000'000;
constexpr int32_t kBandWidth = 10'000;
constexpr int kBandAllPeers = kPeerBitCount;  // rules without peers
constexpr int kBandPunt = kPeerBitCount + 1;  // rules whose peer list got no bit
constexpr int kBandCount = kPeerBitCount + 2;

// The tables and fields of one direction.
struct Stage {
  PolicyDirection dir;
  TableId pod_table, peer_table, rule_table, next_table;
  Field set_field;
  bool peer_is_dst;  // egress peers are destinations, ingress peers sources
};

constexpr Stage kEgress{PolicyDirection::kEgress,
                        kTableEgressPod,
                        kTableEgressPeer,
                        kTableEgressRule,
                        kTableIngressPod,
                        Field::kMetaSrcSet,
                        true};
constexpr Stage kIngress{PolicyDirection::kIngress,
                         kTableIngressPod,
                         kTableIngressPeer,
                         kTableIngressRule,
                         kTableSnat,
                         Field::kMetaDstSet,
                         false};

// One port clause of a rule, resolved to numbers.
struct PortClause {
  std::optional<Protocol> proto;                       // nullopt: any protocol and port
  std::optional<std::pair<uint16_t, uint16_t>> range;  // nullopt: every port of `proto`
  std::string detail;                                  // "ingress[0] ports[1]"
};

struct NamedPort {
  std::string name;
  Protocol proto;
  std::string detail;
};

// What a rule compiles to independently of the set it lands in (computed once per rule).
struct RuleParts {
  std::string detail;                  // "ingress[0]"
  std::optional<PeerCondition> peers;  // nullopt: every peer
  std::vector<PortClause> plain;       // numeric ports, protocol-only ports, or "any"
  std::vector<NamedPort> named;
  // Egress only: per named port, the peer list split by the number each pod gives the name.
  std::vector<std::map<uint16_t, PeerCondition>> named_peers;
};

// Peers AND any of the port clauses: the unit that becomes rule entries.
struct Conjunction {
  const PeerCondition* peers = nullptr;  // null: every peer
  std::vector<PortClause> ports;
  const NetworkPolicy* policy = nullptr;  // null: the node exception (origin in `peers`)
};

// Key of the node exception's peer list: sorts before every policy's ("<ns>;..."), so it always
// gets bit 0 and never overflows.
constexpr std::string_view kNodeConditionKey = "!node";

// "Traffic to and from the node where a Pod is running is always allowed" (NetworkPolicy API
// docs): egress to the node's own addresses is a rule every egress set carries. (From the node
// is the host bypass in ingress_pod.)
std::optional<PeerCondition> NodeCondition(const NodeFacts& node) {
  if (node.ips.empty()) return std::nullopt;
  PeerCondition cond;
  cond.key = std::string(kNodeConditionKey);
  cond.origins.push_back(
      Origin{"Node", "", node.name, "egress to the pod's own node is always allowed"});
  for (const IpAddr& ip : node.ips) {
    cond.items.push_back(PrefixBitsItem{IpPrefix::Host(ip), {}, 0});
    cond.item_origin.push_back(0);
  }
  return cond;
}

std::string SpecPath(const NetworkPolicy& p, std::string_view detail) {
  return absl::StrCat("NetworkPolicy ", p.ns, "/", p.name, ": spec.", Sv(detail));
}

absl::StatusOr<PortClause> ResolvePlainPort(const NetworkPolicy& policy,
                                            const NetworkPolicyPort& port,
                                            const std::string& detail) {
  PortClause clause{port.protocol, std::nullopt, detail};
  if (const auto* number = std::get_if<uint16_t>(&port.port)) {
    const uint16_t end = port.end_port.value_or(*number);
    if (end < *number) {
      return absl::InvalidArgumentError(
          absl::StrCat(SpecPath(policy, detail), ".endPort: ", end, " is below port ", *number));
    }
    clause.range = std::make_pair(*number, end);
  } else if (port.end_port) {
    return absl::InvalidArgumentError(
        absl::StrCat(SpecPath(policy, detail), ".endPort: needs a numeric port"));
  }
  return clause;
}

// Splits the rule's peers by the number each destination pod gives a named port (egress).
std::map<uint16_t, PeerCondition> SplitByNamedPort(const PolicyIndex& index,
                                                   const NetworkPolicy& policy,
                                                   const NetworkPolicyRule& rule,
                                                   const RuleParts& parts, const NamedPort& np) {
  std::map<uint16_t, PeerCondition> out;
  const std::string base = parts.peers ? parts.peers->key : absl::StrCat(policy.ns, ";*");
  for (const PeerPodAddr& a : PeerPodAddrs(index, policy, rule)) {
    const std::optional<uint16_t> n = ResolveNamedPort(*a.pod, np.name, np.proto);
    if (!n) continue;
    PeerCondition& cond = out[*n];
    if (cond.key.empty()) {
      cond.key = absl::StrCat(base, "|", np.name, "/", static_cast<int>(np.proto), "=", *n);
      cond.origins.push_back(Origin{"NetworkPolicy", policy.ns, policy.name,
                                    absl::StrCat(np.detail, " (", np.name, " = ", *n, ")")});
    }
    cond.items.push_back(PrefixBitsItem{IpPrefix::Host(a.ip), {}, 0});
    cond.item_origin.push_back(0);
  }
  return out;
}

absl::StatusOr<RuleParts> BuildRuleParts(const PolicyIndex& index, const NetworkPolicy& policy,
                                         PolicyDirection dir, int r) {
  const NetworkPolicyRule& rule =
      dir == PolicyDirection::kIngress ? policy.ingress[r] : policy.egress[r];
  RuleParts parts;
  parts.detail = absl::StrCat(DirectionName(dir), "[", r, "]");
  if (!rule.peers.empty()) {
    NICFLOW_ASSIGN_OR_RETURN(parts.peers, ResolvePeerCondition(index, policy, dir, r));
  }
  if (rule.ports.empty())
    parts.plain.push_back(PortClause{std::nullopt, std::nullopt, parts.detail});
  for (size_t q = 0; q < rule.ports.size(); ++q) {
    const NetworkPolicyPort& port = rule.ports[q];
    std::string detail = absl::StrCat(parts.detail, " ports[", q, "]");
    if (const auto* name = std::get_if<std::string>(&port.port)) {
      if (port.end_port) {
        return absl::InvalidArgumentError(
            absl::StrCat(SpecPath(policy, detail), ".endPort: needs a numeric port"));
      }
      parts.named.push_back(NamedPort{*name, port.protocol, std::move(detail)});
      continue;
    }
    NICFLOW_ASSIGN_OR_RETURN(PortClause clause, ResolvePlainPort(policy, port, detail));
    parts.plain.push_back(std::move(clause));
  }
  if (dir == PolicyDirection::kEgress) {
    for (const NamedPort& np : parts.named) {
      parts.named_peers.push_back(SplitByNamedPort(index, policy, rule, parts, np));
    }
  }
  return parts;
}

// Compile-wide: the parts of every rule of every policy that selects a local pod, built once.
class RuleCache {
 public:
  RuleCache(const PolicyIndex& index, PolicyDirection dir) : index_(index), dir_(dir) {}

  absl::StatusOr<const std::vector<RuleParts>*> Get(const NetworkPolicy& policy) {
    auto it = cache_.find(&policy);
    if (it != cache_.end()) return &it->second;
    const auto& rules = dir_ == PolicyDirection::kIngress ? policy.ingress : policy.egress;
    std::vector<RuleParts> parts;
    for (int r = 0; r < static_cast<int>(rules.size()); ++r) {
      NICFLOW_ASSIGN_OR_RETURN(RuleParts p, BuildRuleParts(index_, policy, dir_, r));
      parts.push_back(std::move(p));
    }
    return &cache_.emplace(&policy, std::move(parts)).first->second;
  }

 private:
  const PolicyIndex& index_;
  PolicyDirection dir_;
  std::map<const NetworkPolicy*, std::vector<RuleParts>> cache_;
};

// The conjunctions of one set: rules of every policy, named ports resolved for the set.
std::vector<Conjunction> SetConjunctions(const PolicySet& set, const NetworkPolicy& policy,
                                         const std::vector<RuleParts>& rules) {
  std::vector<Conjunction> out;
  for (const RuleParts& rule : rules) {
    const PeerCondition* peers = rule.peers ? &*rule.peers : nullptr;
    Conjunction main{peers, rule.plain, &policy};
    for (size_t i = 0; i < rule.named.size(); ++i) {
      const NamedPort& np = rule.named[i];
      if (set.dir == PolicyDirection::kIngress) {
        // Every pod of an ingress set resolves its named ports alike (part of the set's key).
        const std::optional<uint16_t> n = ResolveNamedPort(*set.pods.front(), np.name, np.proto);
        if (n) main.ports.push_back(PortClause{np.proto, std::make_pair(*n, *n), np.detail});
        continue;
      }
      for (const auto& [n, cond] : rule.named_peers[i]) {
        out.push_back(
            Conjunction{&cond, {PortClause{np.proto, std::make_pair(n, n), np.detail}}, &policy});
      }
    }
    if (!main.ports.empty()) out.push_back(std::move(main));
  }
  return out;
}

std::string PolicyNames(const PolicySet& set) {
  std::vector<std::string> names;
  for (const NetworkPolicy* p : set.policies) names.push_back(p->name);
  return absl::StrJoin(names, ",");
}

FieldMatch MatchPeer(const Stage& stage, const IpPrefix& p) {
  return stage.peer_is_dst ? MatchDstPrefix(p) : MatchSrcPrefix(p);
}

FieldMatch MatchOwnPod(const Stage& stage, const IpPrefix& p) {
  return stage.peer_is_dst ? MatchSrcPrefix(p) : MatchDstPrefix(p);
}

// (pod address) -> set tag. Addresses already claimed by another local pod are skipped.
void EmitPodEntries(const Stage& stage, const PolicySet& set, ProgramBuilder& builder,
                    std::map<IpAddr, const Pod*>& claimed, std::vector<std::string>& notes) {
  const std::string detail = absl::StrCat(DirectionName(stage.dir), " isolated by NetworkPolicy ",
                                          set.ns, "/", PolicyNames(set));
  for (const Pod* pod : set.pods) {
    for (const IpAddr& ip : pod->ips) {
      auto [it, inserted] = claimed.emplace(ip, pod);
      if (!inserted) {
        notes.push_back(absl::StrCat("NetworkPolicy: pod ", pod->ns, "/", pod->name, " shares ",
                                     ip.ToString(), " with pod ", it->second->ns, "/",
                                     it->second->name, "; ", DirectionName(stage.dir),
                                     " policy follows the latter"));
        continue;
      }
      builder.AddEntry(
          stage.pod_table, kPriorityPod, {MatchOwnPod(stage, IpPrefix::Host(ip))},
          {SetBits(stage.set_field, set.tag, kAllBits32), GotoAction{stage.peer_table}},
          Origin{"Pod", pod->ns, pod->name, detail});
    }
  }
}

// Distinct peer lists of the set in key order; the first 32 get bits 0..31, the rest none (-1).
std::map<std::string, std::pair<const PeerCondition*, int>> AssignBits(
    const std::vector<Conjunction>& conjunctions) {
  std::map<std::string, std::pair<const PeerCondition*, int>> bits;
  for (const Conjunction& c : conjunctions) {
    if (c.peers) bits.emplace(c.peers->key, std::make_pair(c.peers, -1));
  }
  int next = 0;
  for (auto& [key, cond_bit] : bits) {
    if (next < kPeerBitCount) cond_bit.second = next++;
  }
  return bits;
}

void EmitPeerEntries(const Stage& stage, const PolicySet& set,
                     const std::map<std::string, std::pair<const PeerCondition*, int>>& bits,
                     ProgramBuilder& builder) {
  std::vector<PrefixBitsItem> items;
  std::vector<const Origin*> origins;
  for (const auto& [key, cond_bit] : bits) {
    const auto& [cond, bit] = cond_bit;
    if (bit < 0) continue;
    for (size_t i = 0; i < cond->items.size(); ++i) {
      items.push_back(cond->items[i]);
      items.back().bits = uint32_t{1} << bit;
      origins.push_back(&cond->origins[cond->item_origin[i]]);
    }
  }
  for (const PrefixBits& pb : ComputePrefixBits(items)) {
    builder.AddEntry(
        stage.peer_table, pb.prefix.prefix_len_bits,
        {MatchExact(stage.set_field, set.tag), MatchPeer(stage, pb.prefix)},
        {SetBits(Field::kMetaPeerBits, pb.bits, kAllBits32), GotoAction{stage.rule_table}},
        *origins[pb.item]);
  }
}

struct RuleEntry {
  int band;
  std::optional<Protocol> proto;
  std::optional<std::pair<uint16_t, uint16_t>> range;
  uint32_t bit_mask;
  Origin origin;

  auto Key() const { return std::tie(band, proto, range); }
};

void AddRuleEntry(const Stage& stage, const PolicySet& set, const RuleEntry& e, int ordinal,
                  ProgramBuilder& builder) {
  std::vector<FieldMatch> match{MatchExact(stage.set_field, set.tag)};
  if (e.proto) match.push_back(MatchTernary(Field::kIpProto, static_cast<uint8_t>(*e.proto), 0xff));
  if (e.range) match.push_back(MatchRange(Field::kL4Dst, e.range->first, e.range->second));
  if (e.bit_mask != 0) match.push_back(MatchTernary(Field::kMetaPeerBits, e.bit_mask, e.bit_mask));
  const int32_t priority = kPriorityAllowBase + (kBandCount - e.band) * kBandWidth +
                           (kBandWidth - 1 - std::min(ordinal, kBandWidth - 1));
  std::vector<Action> actions;
  if (e.band == kBandPunt) {
    actions.push_back(PuntAction{});
  } else {
    actions.push_back(GotoAction{stage.next_table});
  }
  builder.AddEntry(stage.rule_table, priority, std::move(match), std::move(actions), e.origin);
}

void EmitRuleEntries(const Stage& stage, const PolicySet& set,
                     const std::vector<Conjunction>& conjunctions,
                     const std::map<std::string, std::pair<const PeerCondition*, int>>& bits,
                     ProgramBuilder& builder, std::vector<std::string>& notes) {
  std::vector<RuleEntry> entries;
  bool punted = false;
  for (const Conjunction& c : conjunctions) {
    int band = kBandAllPeers;
    uint32_t mask = 0;
    if (c.peers) {
      const int bit = bits.at(c.peers->key).second;
      band = bit < 0 ? kBandPunt : bit;
      mask = bit < 0 ? 0 : uint32_t{1} << bit;
    }
    punted |= band == kBandPunt;
    for (const PortClause& p : c.ports) {
      entries.push_back(
          RuleEntry{band, p.proto, p.range, mask,
                    c.policy ? Origin{"NetworkPolicy", c.policy->ns, c.policy->name, p.detail}
                             : c.peers->origins.front()});
    }
  }
  // Canonical order; equal (band, protocol, range) entries are one entry (first origin kept).
  std::stable_sort(entries.begin(), entries.end(),
                   [](const RuleEntry& a, const RuleEntry& b) { return a.Key() < b.Key(); });
  int ordinal = 0;
  for (size_t i = 0; i < entries.size(); ++i) {
    if (i > 0 && entries[i].Key() == entries[i - 1].Key()) continue;
    ordinal = (i > 0 && entries[i].band == entries[i - 1].band) ? ordinal + 1 : 0;
    AddRuleEntry(stage, set, entries[i], ordinal, builder);
  }
  if (punted) {
    notes.push_back(absl::StrCat("NetworkPolicy ", set.ns, "/", PolicyNames(set), ": ",
                                 DirectionName(stage.dir), " rules use more than ", kPeerBitCount,
                                 " distinct peer lists; the rest are punted to "
                                 "software"));
  }
  builder.AddEntry(
      stage.rule_table, kPriorityIsolationDrop, {MatchExact(stage.set_field, set.tag)},
      {DropAction{}},
      Origin{"NetworkPolicy", set.ns, PolicyNames(set),
             absl::StrCat(DirectionName(stage.dir), " isolation (default deny): no rule allows")});
}

// The structural checks the API server makes and the compiler relies on (cheap: no resolution).
absl::Status ValidatePolicy(const NetworkPolicy& policy) {
  for (PolicyDirection dir : {PolicyDirection::kIngress, PolicyDirection::kEgress}) {
    const auto& rules = dir == PolicyDirection::kIngress ? policy.ingress : policy.egress;
    const char* list = dir == PolicyDirection::kIngress ? "from" : "to";
    for (size_t r = 0; r < rules.size(); ++r) {
      for (size_t j = 0; j < rules[r].peers.size(); ++j) {
        const NetworkPolicyPeer& peer = rules[r].peers[j];
        const bool has_selector = peer.pod_selector || peer.namespace_selector;
        if (peer.ip_block.has_value() != has_selector) continue;
        return absl::InvalidArgumentError(absl::StrCat(
            SpecPath(policy, absl::StrCat(DirectionName(dir), "[", r, "].", list, "[", j, "]")),
            has_selector ? ": ipBlock cannot be combined with selectors"
                         : ": a peer needs podSelector, namespaceSelector or ipBlock"));
      }
      for (size_t q = 0; q < rules[r].ports.size(); ++q) {
        const std::string detail = absl::StrCat(DirectionName(dir), "[", r, "].ports[", q, "]");
        NICFLOW_RETURN_IF_ERROR(ResolvePlainPort(policy, rules[r].ports[q], detail).status());
      }
    }
  }
  return absl::OkStatus();
}

void SetDefaults(ProgramBuilder& builder) {
  builder.SetDefaultActions(kTableEgressPod, {GotoAction{kTableIngressPod}});
  builder.SetDefaultActions(kTableEgressPeer, {SetBits(Field::kMetaPeerBits, 0, kAllBits32),
                                               GotoAction{kTableEgressRule}});
  builder.SetDefaultActions(kTableEgressRule, {DropAction{}});
  builder.SetDefaultActions(kTableIngressPod, {GotoAction{kTableSnat}});
  builder.SetDefaultActions(kTableIngressPeer, {SetBits(Field::kMetaPeerBits, 0, kAllBits32),
                                                GotoAction{kTableIngressRule}});
  builder.SetDefaultActions(kTableIngressRule, {DropAction{}});
}

// The entries of `sets` (one direction), without the bypass entries.
absl::Status CompileSets(const Stage& stage, const PolicyIndex& index, const NodeFacts& node,
                         const std::vector<PolicySet>& sets, ProgramBuilder& builder,
                         std::vector<std::string>& notes) {
  RuleCache cache(index, stage.dir);
  const std::optional<PeerCondition> node_cond =
      stage.dir == PolicyDirection::kEgress ? NodeCondition(node) : std::nullopt;
  std::map<IpAddr, const Pod*> claimed;
  for (const PolicySet& set : sets) {
    std::vector<Conjunction> conjunctions;
    if (node_cond) {
      conjunctions.push_back(
          Conjunction{&*node_cond, {PortClause{std::nullopt, std::nullopt, ""}}, nullptr});
    }
    for (const NetworkPolicy* policy : set.policies) {
      NICFLOW_ASSIGN_OR_RETURN(const std::vector<RuleParts>* rules, cache.Get(*policy));
      std::vector<Conjunction> c = SetConjunctions(set, *policy, *rules);
      std::move(c.begin(), c.end(), std::back_inserter(conjunctions));
    }
    const auto bits = AssignBits(conjunctions);
    EmitPodEntries(stage, set, builder, claimed, notes);
    EmitPeerEntries(stage, set, bits, builder);
    EmitRuleEntries(stage, set, conjunctions, bits, builder, notes);
  }
  return absl::OkStatus();
}

const Stage& StageOf(PolicyDirection dir) {
  return dir == PolicyDirection::kEgress ? kEgress : kIngress;
}

}  // namespace

void AddPolicyBypassEntries(PolicyDirection dir, ProgramBuilder& builder) {
  const Stage& stage = StageOf(dir);
  builder.AddEntry(
      stage.pod_table, kPriorityHairpinBypass,
      {MatchTernary(Field::kMetaFlags, kFlagHairpin, kFlagHairpin)},
      {GotoAction{stage.dir == PolicyDirection::kEgress ? kTableIngressPod : kTableSnat}},
      Origin{"nicflow", "", "hairpin", "a pod cannot block access to itself"});
  if (stage.dir == PolicyDirection::kIngress) {
    builder.AddEntry(kTableIngressPod, kPriorityHostBypass,
                     {MatchTernary(Field::kMetaFlags, kFlagFromHost, kFlagFromHost)},
                     {GotoAction{kTableSnat}},
                     Origin{"nicflow", "", "host-to-pod",
                            "traffic from the node to its pods bypasses ingress policy"});
  }
}

absl::Status ValidateNetworkPolicy(const NetworkPolicy& policy) { return ValidatePolicy(policy); }

absl::Status CompileNamespacePolicies(const PolicyIndex& index, const NodeFacts& node,
                                      std::string_view ns, ProgramBuilder& builder,
                                      std::vector<std::string>& notes, NamespacePolicyTags& tags) {
  std::vector<const Pod*> local_pods;
  for (const Pod* pod : index.PodsIn(ns)) {
    if (pod->node_name == node.name) local_pods.push_back(pod);
  }
  for (PolicyDirection dir : {PolicyDirection::kEgress, PolicyDirection::kIngress}) {
    const std::vector<PolicySet> sets = BuildPolicySets(index, local_pods, dir);
    std::vector<uint32_t>& out = dir == PolicyDirection::kEgress ? tags.egress : tags.ingress;
    out.clear();
    for (const PolicySet& set : sets) out.push_back(set.tag);
    NICFLOW_RETURN_IF_ERROR(CompileSets(StageOf(dir), index, node, sets, builder, notes));
  }
  return absl::OkStatus();
}

namespace {

absl::Status CompileDirection(const Stage& stage, const PolicyIndex& index, const NodeFacts& node,
                              const std::vector<const Pod*>& local_pods, ProgramBuilder& builder,
                              std::vector<std::string>& notes) {
  const std::vector<PolicySet> sets = BuildPolicySets(index, local_pods, stage.dir);
  NICFLOW_RETURN_IF_ERROR(CompileSets(stage, index, node, sets, builder, notes));
  if (!sets.empty()) AddPolicyBypassEntries(stage.dir, builder);
  return absl::OkStatus();
}

}  // namespace

absl::Status CompilePolicies(const ClusterState& state, const NodeFacts& node,
                             ProgramBuilder& builder, std::vector<std::string>& notes) {
  SetDefaults(builder);
  const PolicyIndex index(state);
  std::vector<const Pod*> local_pods;
  for (const Pod* pod : index.AllPods()) {
    if (pod->node_name == node.name) local_pods.push_back(pod);
  }
  // Validate every policy first, so an error leaves no entries behind.
  for (const NetworkPolicy& p : state.network_policies) NICFLOW_RETURN_IF_ERROR(ValidatePolicy(p));
  NICFLOW_RETURN_IF_ERROR(CompileDirection(kEgress, index, node, local_pods, builder, notes));
  return CompileDirection(kIngress, index, node, local_pods, builder, notes);
}

}  // namespace nicflow::flowtables
