// The incremental compiler. Design, units and fallbacks: incremental.h.
#include "nicflow/flowtables/incremental.h"

#include <algorithm>
#include <array>
#include <map>
#include <set>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "incremental_objects.h"
#include "nat_compiler.h"
#include "nicflow/flowtables/pipeline.h"
#include "nicflow/flowtables/status.h"
#include "policy_compiler.h"
#include "policy_sets.h"
#include "service_compiler.h"

namespace nicflow::flowtables {

namespace {

constexpr std::string_view kNamespaceNameLabel = "kubernetes.io/metadata.name";

struct EntryRef {
  TableId table = 0;
  int32_t priority = 0;
  std::string key;
};

/// What one unit put into the program.
struct UnitRecord {
  std::vector<EntryRef> entries;
  std::vector<std::string> groups;
};

/// What one unit puts into the program after the change.
struct UnitOutput {
  std::vector<Entry> entries;
  std::vector<SelectGroup> groups;
};

/// Who holds a masq_mark hairpin address: local pods (by namespace, name) and local endpoints.
struct HairpinRefs {
  std::set<std::pair<std::string, std::string>> pods;
  int endpoints = 0;
  bool empty() const { return pods.empty() && endpoints == 0; }
};

bool UsablePod(const Pod& p) { return !p.ips.empty() && !p.host_network && !p.terminal; }

// Program tables are sorted by priority descending, then identity ascending.
bool EntryBefore(int32_t prio_a, const std::string& key_a, int32_t prio_b,
                 const std::string& key_b) {
  if (prio_a != prio_b) return prio_a > prio_b;
  return key_a < key_b;
}

// The position of the first entry not before (priority, key).
size_t LowerBound(const std::vector<Entry>& table, int32_t priority, const std::string& key) {
  size_t lo = 0, hi = table.size();
  while (lo < hi) {
    const size_t mid = lo + (hi - lo) / 2;
    const Entry& e = table[mid];
    const bool before = e.priority != priority ? e.priority > priority : EntryKey(e) < key;
    if (before) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo;
}

std::optional<size_t> FindEntry(const std::vector<Entry>& table, int32_t priority,
                                const std::string& key) {
  const size_t i = LowerBound(table, priority, key);
  if (i < table.size() && table[i].priority == priority && EntryKey(table[i]) == key) return i;
  return std::nullopt;
}

std::vector<SelectGroup>::iterator GroupPos(std::vector<SelectGroup>& groups,
                                            const std::string& name) {
  return std::lower_bound(groups.begin(), groups.end(), name,
                          [](const SelectGroup& g, const std::string& n) { return g.name < n; });
}

bool SameGroup(const SelectGroup& a, const SelectGroup& b) {
  return a.hash_fields == b.hash_fields && a.affinity_timeout_s == b.affinity_timeout_s &&
         a.buckets == b.buckets && a.origin == b.origin;
}

// Local endpoint addresses of a slice, as CompileMasqMark reads them.
std::vector<IpAddr> LocalEndpointAddrs(const EndpointSlice& s, const NodeFacts& node) {
  std::vector<IpAddr> out;
  if (!s.family || node.name.empty()) return out;
  for (const Endpoint& e : s.endpoints) {
    if (e.node_name == node.name && !e.addresses.empty()) out.push_back(e.addresses.front());
  }
  return out;
}

bool HasNamedPort(const NetworkPolicyRule& rule) {
  return std::any_of(rule.ports.begin(), rule.ports.end(), [](const NetworkPolicyPort& p) {
    return std::holds_alternative<std::string>(p.port);
  });
}

// Whether a selector peer of a policy in `policy_ns` can admit `pod`, whose namespace carries
// `ns_labels`.
bool PeerReaches(const NetworkPolicyPeer& peer, const std::string& policy_ns, const Pod& pod,
                 const Labels& ns_labels) {
  if (peer.ip_block) return false;
  if (!peer.namespace_selector) {
    if (pod.ns != policy_ns) return false;
  } else if (!peer.namespace_selector->Matches(ns_labels)) {
    return false;
  }
  return !peer.pod_selector || peer.pod_selector->Matches(pod.labels);
}

// One entry identity a change touches: where it sits now (if it does) and what it becomes.
struct EntryChange {
  int32_t priority = 0;
  std::string key;
  std::optional<size_t> old_pos;
  const Entry* now = nullptr;
};
using EntryChanges = std::vector<absl::flat_hash_map<std::string, EntryChange>>;
// Group name -> (the program's group, the new one); either may be null.
using GroupChanges = std::map<std::string, std::pair<const SelectGroup*, const SelectGroup*>>;

}  // namespace

struct IncrementalCompiler::Impl {
  ClusterState state;
  CompileOptions options;
  NodeFacts node;
  Program program;
  std::vector<std::string> notes;
  IncrementalStats stats;

  // Object indexes: identity -> position in `state`.
  absl::flat_hash_map<std::string, size_t> ns_index, pod_index, svc_index, slice_index,
      policy_index, node_index, cidr_index;
  absl::flat_hash_map<std::string, std::set<std::string>> slices_by_service;  // ns/svc -> names

  // Units and the cross-unit facts the full compile resolves globally.
  absl::flat_hash_map<std::string, UnitRecord> units;
  absl::flat_hash_map<std::string, std::string> claim_owner;  // frontend/clusterIP -> ns/svc
  absl::flat_hash_map<std::string, std::vector<std::string>> service_claims;
  std::map<IpAddr, std::string> addr_owner;  // forward: address -> "" (node) or ns/pod
  std::map<IpAddr, HairpinRefs> hairpin;
  std::array<std::map<uint32_t, std::string>, 2> tag_owner;  // [egress, ingress] tag -> ns
  absl::flat_hash_map<std::string, NamespacePolicyTags> ns_tags;
  std::string degraded;  // why every unit change recompiles in full; empty when none

  // ---- indexes ----
  absl::flat_hash_map<std::string, size_t>& IndexOf(const Namespace*) { return ns_index; }
  absl::flat_hash_map<std::string, size_t>& IndexOf(const Pod*) { return pod_index; }
  absl::flat_hash_map<std::string, size_t>& IndexOf(const Service*) { return svc_index; }
  absl::flat_hash_map<std::string, size_t>& IndexOf(const EndpointSlice*) { return slice_index; }
  absl::flat_hash_map<std::string, size_t>& IndexOf(const NetworkPolicy*) { return policy_index; }
  absl::flat_hash_map<std::string, size_t>& IndexOf(const Node*) { return node_index; }
  absl::flat_hash_map<std::string, size_t>& IndexOf(const ServiceCidr*) { return cidr_index; }

  template <typename T>
  void IndexAll(absl::flat_hash_map<std::string, size_t>& index, const std::vector<T>& objects) {
    index.clear();
    for (size_t i = 0; i < objects.size(); ++i) index[ObjectKey(objects[i])] = i;
  }

  void IndexState() {
    IndexAll(ns_index, state.namespaces);
    IndexAll(pod_index, state.pods);
    IndexAll(svc_index, state.services);
    IndexAll(slice_index, state.endpoint_slices);
    IndexAll(policy_index, state.network_policies);
    IndexAll(node_index, state.nodes);
    IndexAll(cidr_index, state.service_cidrs);
    slices_by_service.clear();
    for (const EndpointSlice& s : state.endpoint_slices) IndexSlice(s, true);
  }

  void IndexSlice(const EndpointSlice& s, bool add) {
    const std::string svc = absl::StrCat(s.ns, "/", s.service_name);
    if (add) {
      slices_by_service[svc].insert(s.name);
      return;
    }
    auto it = slices_by_service.find(svc);
    if (it == slices_by_service.end()) return;
    it->second.erase(s.name);
    if (it->second.empty()) slices_by_service.erase(it);
  }

  template <typename T>
  const T* Find(const std::string& key) {
    auto& index = IndexOf(static_cast<const T*>(nullptr));
    auto it = index.find(key);
    if (it == index.end()) return nullptr;
    return &ObjectsOf(state, static_cast<const T*>(nullptr))[it->second];
  }

  // ---- units ----
  absl::Status ServiceOutput(const std::string& key, ServiceUnitOutput& out) {
    const Service* svc = Find<Service>(key);
    if (svc == nullptr) return absl::OkStatus();
    std::vector<const EndpointSlice*> slices;
    if (auto it = slices_by_service.find(key); it != slices_by_service.end()) {
      for (const std::string& name : it->second) {
        slices.push_back(Find<EndpointSlice>(absl::StrCat(svc->ns, "/", name)));
      }
    }
    return CompileOneService(*svc, node, slices, out);
  }

  Origin HairpinOrigin(const HairpinRefs& refs) const {
    if (!refs.pods.empty()) {
      const auto& [ns, name] = *refs.pods.begin();
      return Origin{"Pod", ns, name, "hairpin"};
    }
    return LocalEndpointHairpinOrigin();
  }

  static UnitRecord RecordOf(const UnitOutput& out) {
    UnitRecord r;
    for (const Entry& e : out.entries) r.entries.push_back({e.table, e.priority, EntryKey(e)});
    for (const SelectGroup& g : out.groups) r.groups.push_back(g.name);
    return r;
  }

  void SetUnit(const std::string& id, const UnitOutput& out) {
    if (out.entries.empty() && out.groups.empty()) {
      units.erase(id);
    } else {
      units[id] = RecordOf(out);
    }
  }

  static UnitOutput FromStaged(Program staged) {
    UnitOutput out;
    for (auto& table : staged.entries) {
      for (Entry& e : table) out.entries.push_back(std::move(e));
    }
    out.groups = std::move(staged.groups);
    return out;
  }

  static UnitOutput BypassOutput(PolicyDirection dir, bool any_sets) {
    ProgramBuilder builder;
    if (any_sets) AddPolicyBypassEntries(dir, builder);
    return FromStaged(std::move(builder).TakeStaged());
  }

  static std::string BypassUnit(PolicyDirection dir) {
    return absl::StrCat("pol-bypass:", DirectionName(dir));
  }

  bool AnySets(int dir) const { return !tag_owner[dir].empty(); }

  absl::Status BuildUnits();
  absl::Status BuildServiceUnits();
  void BuildPodUnits();
  absl::Status BuildPolicyUnits();
  absl::Status CheckUnitsAgainstProgram() const;

  absl::StatusOr<Delta> FullRecompile(std::string reason);
  template <typename T>
  absl::StatusOr<Delta> ApplyTyped(ObjectChange::Kind kind, const T& obj);

  struct Plan;
  void PlanFor(const Namespace* old, const Namespace* now, Plan& plan);
  void PlanFor(const Pod* old, const Pod* now, Plan& plan);
  void PlanFor(const Service* old, const Service* now, Plan& plan);
  void PlanFor(const EndpointSlice* old, const EndpointSlice* now, Plan& plan);
  void PlanFor(const NetworkPolicy* old, const NetworkPolicy* now, Plan& plan);
  void PodReachingNamespaces(const Pod& pod, std::set<std::string>& out) const;
  Labels NamespaceLabels(const std::string& ns, const Namespace* obj) const;

  absl::StatusOr<std::optional<Delta>> Execute(Plan& plan, std::string& why);
  void CommitPod(const Plan& plan);
  Delta BuildDelta(const EntryChanges& changes, const GroupChanges& groups) const;
  void ApplyToProgram(const Delta& delta);
  absl::StatusOr<std::optional<Delta>> Reconcile(std::map<std::string, UnitOutput>& outputs,
                                                 std::string& why);
};

// What a change touches: the units to recompile and the cross-unit facts that move with it.
struct IncrementalCompiler::Impl::Plan {
  std::set<std::string> services;           // ns/name
  std::set<std::string> policy_namespaces;  // ns
  std::optional<Pod> old_local_pod, new_local_pod;
  std::vector<std::pair<IpAddr, int>> endpoint_refs;  // hairpin: address, +1 / -1
  bool policy_check_needed = false;
  const NetworkPolicy* changed_policy = nullptr;
};

// ---------------------------------------------------------------------------------------------
// Building the units from a full compile

absl::Status IncrementalCompiler::Impl::BuildServiceUnits() {
  for (const Service& svc : state.services) {
    const std::string key = ObjectKey(svc);
    ServiceUnitOutput out;
    if (auto st = ServiceOutput(key, out); !st.ok()) {
      degraded = absl::StrCat("Service ", key, " does not compile: ", st.message());
      continue;
    }
    for (const std::string& claim : out.claims) {
      auto [it, inserted] = claim_owner.emplace(claim, key);
      if (!inserted) degraded = absl::StrCat(claim, " is claimed by ", it->second, " and ", key);
    }
    service_claims[key] = std::move(out.claims);
    SetUnit("svc:" + key, UnitOutput{std::move(out.entries), std::move(out.groups)});
  }
  return absl::OkStatus();
}

void IncrementalCompiler::Impl::BuildPodUnits() {
  for (const IpAddr& a : node.ips) addr_owner.emplace(a, "");
  for (const Pod& pod : state.pods) {
    if (!IsLocalPod(pod, node)) continue;
    const std::string key = ObjectKey(pod);
    for (const IpAddr& a : pod.ips) {
      auto [it, inserted] = addr_owner.emplace(a, key);
      if (!inserted) degraded = absl::StrCat("Pod ", key, " shares ", a.ToString());
      hairpin[a].pods.emplace(pod.ns, pod.name);
    }
    SetUnit("fwd:" + key, UnitOutput{PodForwardEntries(pod), {}});
  }
  for (const EndpointSlice& s : state.endpoint_slices) {
    for (const IpAddr& a : LocalEndpointAddrs(s, node)) ++hairpin[a].endpoints;
  }
  for (const auto& [addr, refs] : hairpin) {
    SetUnit("hp:" + addr.ToString(), UnitOutput{{HairpinMasqEntry(addr, HairpinOrigin(refs))}, {}});
  }
}

absl::Status IncrementalCompiler::Impl::BuildPolicyUnits() {
  const PolicyIndex index(state);
  for (const auto& [ns, labels] : index.Namespaces()) {
    ProgramBuilder builder;
    std::vector<std::string> unused_notes;
    NamespacePolicyTags tags;
    NICFLOW_RETURN_IF_ERROR(CompileNamespacePolicies(index, node, ns, builder, unused_notes, tags));
    for (int dir = 0; dir < 2; ++dir) {
      for (uint32_t tag : dir == 0 ? tags.egress : tags.ingress) {
        auto [it, inserted] = tag_owner[dir].emplace(tag, ns);
        if (!inserted) degraded = absl::StrCat("policy set tags of ", it->second, " and ", ns);
      }
    }
    if (!tags.egress.empty() || !tags.ingress.empty()) ns_tags[ns] = std::move(tags);
    SetUnit("pol:" + ns, FromStaged(std::move(builder).TakeStaged()));
  }
  SetUnit(BypassUnit(PolicyDirection::kEgress), BypassOutput(PolicyDirection::kEgress, AnySets(0)));
  SetUnit(BypassUnit(PolicyDirection::kIngress),
          BypassOutput(PolicyDirection::kIngress, AnySets(1)));
  return absl::OkStatus();
}

// Every entry and group a unit recorded must be in the program: the units and the full compile
// are the same code, so a miss is a bug, reported rather than left to corrupt later deltas.
absl::Status IncrementalCompiler::Impl::CheckUnitsAgainstProgram() const {
  absl::flat_hash_set<std::string> keys;
  for (const auto& table : program.entries) {
    for (const Entry& e : table) keys.insert(EntryKey(e));
  }
  for (const auto& [id, rec] : units) {
    for (const EntryRef& r : rec.entries) {
      if (!keys.contains(r.key)) {
        return absl::InternalError(absl::StrCat("incremental compiler: unit ", id,
                                                " has an entry the full compile does not"));
      }
    }
    for (const std::string& g : rec.groups) {
      if (program.FindGroup(g) == nullptr) {
        return absl::InternalError(absl::StrCat("incremental compiler: unit ", id, " has group ", g,
                                                " the program lacks"));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status IncrementalCompiler::Impl::BuildUnits() {
  units.clear();
  claim_owner.clear();
  service_claims.clear();
  addr_owner.clear();
  hairpin.clear();
  tag_owner = {};
  ns_tags.clear();
  degraded.clear();
  IndexState();
  if (node.name.empty()) degraded = "the node has no name, so no pod is local";
  if (options.skip_bad_objects && std::any_of(notes.begin(), notes.end(), [](const std::string& n) {
        return n.starts_with("skipped:");
      })) {
    degraded = "the last full compile skipped objects";
  }
  if (!degraded.empty()) return absl::OkStatus();
  NICFLOW_RETURN_IF_ERROR(BuildServiceUnits());
  BuildPodUnits();
  NICFLOW_RETURN_IF_ERROR(BuildPolicyUnits());
  if (!degraded.empty()) return absl::OkStatus();
  return CheckUnitsAgainstProgram();
}

absl::StatusOr<Delta> IncrementalCompiler::Impl::FullRecompile(std::string reason) {
  NICFLOW_ASSIGN_OR_RETURN(CompileResult result, Compile(state, options));
  NICFLOW_ASSIGN_OR_RETURN(Delta delta, Diff(program, result.program));
  program = std::move(result.program);
  node = std::move(result.node);
  notes = std::move(result.notes);
  NICFLOW_RETURN_IF_ERROR(BuildUnits());
  ++stats.full_recompiles;
  stats.last_fallback_reason = std::move(reason);
  return delta;
}

// ---------------------------------------------------------------------------------------------
// Planning: which units a change touches

Labels IncrementalCompiler::Impl::NamespaceLabels(const std::string& ns,
                                                  const Namespace* obj) const {
  Labels labels;
  if (obj != nullptr) labels = obj->labels;
  labels.emplace(kNamespaceNameLabel, ns);
  return labels;
}

void IncrementalCompiler::Impl::PodReachingNamespaces(const Pod& pod,
                                                      std::set<std::string>& out) const {
  if (!UsablePod(pod)) return;
  auto ns_it = ns_index.find(pod.ns);
  const Labels ns_labels =
      NamespaceLabels(pod.ns, ns_it == ns_index.end() ? nullptr : &state.namespaces[ns_it->second]);
  for (const NetworkPolicy& p : state.network_policies) {
    if (out.contains(p.ns)) continue;
    bool reaches = false;
    for (const auto* rules : {&p.ingress, &p.egress}) {
      for (const NetworkPolicyRule& rule : *rules) {
        for (const NetworkPolicyPeer& peer : rule.peers) {
          reaches |= PeerReaches(peer, p.ns, pod, ns_labels);
        }
        // Egress named ports resolve against any destination pod an empty peer list or an
        // ipBlock admits.
        const bool any_pod = rule.peers.empty() ||
                             std::any_of(rule.peers.begin(), rule.peers.end(),
                                         [](const NetworkPolicyPeer& q) { return q.ip_block; });
        reaches |= rules == &p.egress && HasNamedPort(rule) && any_pod;
      }
    }
    if (reaches) out.insert(p.ns);
  }
}

void IncrementalCompiler::Impl::PlanFor(const Namespace* old, const Namespace* now, Plan& plan) {
  const std::string& name = old != nullptr ? old->name : now->name;
  const Labels before = NamespaceLabels(name, old);
  const Labels after = NamespaceLabels(name, now);
  if (before == after) return;
  for (const NetworkPolicy& p : state.network_policies) {
    for (const auto* rules : {&p.ingress, &p.egress}) {
      for (const NetworkPolicyRule& rule : *rules) {
        for (const NetworkPolicyPeer& peer : rule.peers) {
          if (peer.namespace_selector && (peer.namespace_selector->Matches(before) ||
                                          peer.namespace_selector->Matches(after))) {
            plan.policy_namespaces.insert(p.ns);
          }
        }
      }
    }
  }
}

void IncrementalCompiler::Impl::PlanFor(const Pod* old, const Pod* now, Plan& plan) {
  for (const Pod* p : {old, now}) {
    if (p == nullptr) continue;
    PodReachingNamespaces(*p, plan.policy_namespaces);
    if (IsLocalPod(*p, node)) plan.policy_namespaces.insert(p->ns);
  }
  if (old != nullptr && IsLocalPod(*old, node)) plan.old_local_pod = *old;
  if (now != nullptr && IsLocalPod(*now, node)) plan.new_local_pod = *now;
}

void IncrementalCompiler::Impl::PlanFor(const Service* old, const Service* now, Plan& plan) {
  plan.services.insert(ObjectKey(old != nullptr ? *old : *now));
}

void IncrementalCompiler::Impl::PlanFor(const EndpointSlice* old, const EndpointSlice* now,
                                        Plan& plan) {
  if (old != nullptr) {
    plan.services.insert(absl::StrCat(old->ns, "/", old->service_name));
    for (const IpAddr& a : LocalEndpointAddrs(*old, node)) plan.endpoint_refs.emplace_back(a, -1);
  }
  if (now != nullptr) {
    plan.services.insert(absl::StrCat(now->ns, "/", now->service_name));
    for (const IpAddr& a : LocalEndpointAddrs(*now, node)) plan.endpoint_refs.emplace_back(a, 1);
  }
}

void IncrementalCompiler::Impl::PlanFor(const NetworkPolicy* old, const NetworkPolicy* now,
                                        Plan& plan) {
  plan.policy_namespaces.insert(old != nullptr ? old->ns : now->ns);
  plan.changed_policy = now;
}

// ---------------------------------------------------------------------------------------------
// Executing a plan: recompile the touched units, reconcile them with the program

absl::StatusOr<std::optional<Delta>> IncrementalCompiler::Impl::Execute(Plan& plan,
                                                                        std::string& why) {
  std::map<std::string, UnitOutput> outputs;
  // Services, and the frontends and clusterIPs they claim.
  std::map<std::string, std::vector<std::string>> new_claims;
  for (const std::string& key : plan.services) {
    ServiceUnitOutput out;
    NICFLOW_RETURN_IF_ERROR(ServiceOutput(key, out));
    for (const std::string& claim : out.claims) {
      auto it = claim_owner.find(claim);
      if (it != claim_owner.end() && it->second != key) {
        why = absl::StrCat("Service ", key, ": ", claim, " is also claimed by ", it->second);
        return std::nullopt;
      }
    }
    new_claims[key] = std::move(out.claims);
    outputs["svc:" + key] = UnitOutput{std::move(out.entries), std::move(out.groups)};
  }
  // A local pod's forward entries, and the addresses it holds.
  const Pod* pod = plan.new_local_pod   ? &*plan.new_local_pod
                   : plan.old_local_pod ? &*plan.old_local_pod
                                        : nullptr;
  if (pod != nullptr) {
    const std::string key = ObjectKey(*pod);
    for (const IpAddr& a : plan.new_local_pod ? plan.new_local_pod->ips : std::vector<IpAddr>{}) {
      auto it = addr_owner.find(a);
      if (it != addr_owner.end() && it->second != key) {
        why = absl::StrCat("Pod ", key, " shares ", a.ToString());
        return std::nullopt;
      }
    }
    outputs["fwd:" + key] = UnitOutput{
        plan.new_local_pod ? PodForwardEntries(*plan.new_local_pod) : std::vector<Entry>{}, {}};
  }
  // Hairpin addresses: adjust copies of the touched references.
  std::map<IpAddr, HairpinRefs> touched;
  auto touch = [&](const IpAddr& a) -> HairpinRefs& {
    auto [it, inserted] = touched.try_emplace(a);
    if (inserted) {
      if (auto h = hairpin.find(a); h != hairpin.end()) it->second = h->second;
    }
    return it->second;
  };
  if (plan.old_local_pod) {
    for (const IpAddr& a : plan.old_local_pod->ips) {
      touch(a).pods.erase({plan.old_local_pod->ns, plan.old_local_pod->name});
    }
  }
  if (plan.new_local_pod) {
    for (const IpAddr& a : plan.new_local_pod->ips) {
      touch(a).pods.emplace(plan.new_local_pod->ns, plan.new_local_pod->name);
    }
  }
  for (const auto& [a, n] : plan.endpoint_refs) touch(a).endpoints += n;
  for (const auto& [a, refs] : touched) {
    UnitOutput out;
    if (!refs.empty()) out.entries.push_back(HairpinMasqEntry(a, HairpinOrigin(refs)));
    outputs["hp:" + a.ToString()] = std::move(out);
  }
  // Policy namespaces, their set tags and the bypass entries.
  std::map<std::string, NamespacePolicyTags> new_tags;
  if (plan.changed_policy != nullptr) {
    NICFLOW_RETURN_IF_ERROR(ValidateNetworkPolicy(*plan.changed_policy));
  }
  std::array<std::map<uint32_t, std::string>, 2> owners = tag_owner;
  if (!plan.policy_namespaces.empty()) {
    const PolicyIndex index(state);
    for (const std::string& ns : plan.policy_namespaces) {
      for (auto& o : owners) std::erase_if(o, [&](const auto& kv) { return kv.second == ns; });
    }
    for (const std::string& ns : plan.policy_namespaces) {
      ProgramBuilder builder;
      std::vector<std::string> unused_notes;
      NamespacePolicyTags& tags = new_tags[ns];
      NICFLOW_RETURN_IF_ERROR(
          CompileNamespacePolicies(index, node, ns, builder, unused_notes, tags));
      for (int dir = 0; dir < 2; ++dir) {
        for (uint32_t tag : dir == 0 ? tags.egress : tags.ingress) {
          auto [it, inserted] = owners[dir].emplace(tag, ns);
          if (!inserted) {
            why = absl::StrCat("policy set tags of namespaces ", it->second, " and ", ns);
            return std::nullopt;
          }
        }
      }
      outputs["pol:" + ns] = FromStaged(std::move(builder).TakeStaged());
    }
    for (int dir = 0; dir < 2; ++dir) {
      const auto d = dir == 0 ? PolicyDirection::kEgress : PolicyDirection::kIngress;
      if (owners[dir].empty() != tag_owner[dir].empty()) {
        outputs[BypassUnit(d)] = BypassOutput(d, !owners[dir].empty());
      }
    }
  }
  NICFLOW_ASSIGN_OR_RETURN(std::optional<Delta> delta, Reconcile(outputs, why));
  if (!delta) return std::nullopt;

  // Committed: the cross-unit facts follow the program.
  tag_owner = std::move(owners);
  for (auto& [ns, tags] : new_tags) {
    if (tags.egress.empty() && tags.ingress.empty()) {
      ns_tags.erase(ns);
    } else {
      ns_tags[ns] = std::move(tags);
    }
  }
  for (auto& [key, claims] : new_claims) {
    for (const std::string& c : service_claims[key]) claim_owner.erase(c);
    for (const std::string& c : claims) claim_owner[c] = key;
    if (claims.empty()) {
      service_claims.erase(key);
    } else {
      service_claims[key] = std::move(claims);
    }
  }
  for (auto& [a, refs] : touched) {
    if (refs.empty()) {
      hairpin.erase(a);
    } else {
      hairpin[a] = std::move(refs);
    }
  }
  if (pod != nullptr) CommitPod(plan);
  return delta;
}

void IncrementalCompiler::Impl::CommitPod(const Plan& plan) {
  const Pod& any = plan.new_local_pod ? *plan.new_local_pod : *plan.old_local_pod;
  const std::string key = ObjectKey(any);
  if (plan.old_local_pod) {
    for (const IpAddr& a : plan.old_local_pod->ips) {
      if (auto it = addr_owner.find(a); it != addr_owner.end() && it->second == key) {
        addr_owner.erase(it);
      }
    }
  }
  auto pos = std::lower_bound(
      program.ports.begin(), program.ports.end(), key, [](const PortDecl& p, const std::string& k) {
        return std::tie(p.ref.kind, p.ref.pod) <
               std::tuple<PortRef::Kind, const std::string&>(PortRef::Kind::kPod, k);
      });
  const bool present =
      pos != program.ports.end() && pos->ref.kind == PortRef::Kind::kPod && pos->ref.pod == key;
  if (!plan.new_local_pod) {
    if (present) program.ports.erase(pos);
    return;
  }
  for (const IpAddr& a : plan.new_local_pod->ips) addr_owner[a] = key;
  if (present) {
    *pos = PodPortDecl(*plan.new_local_pod);
  } else {
    program.ports.insert(pos, PodPortDecl(*plan.new_local_pod));
  }
}

// Compares the touched units' new outputs with what they recorded; applies the difference to
// the program and returns it as Diff would order it. nullopt (with `why`) when an output collides
// with an entry or group another unit holds.
absl::StatusOr<std::optional<Delta>> IncrementalCompiler::Impl::Reconcile(
    std::map<std::string, UnitOutput>& outputs, std::string& why) {
  using Change = EntryChange;
  std::vector<absl::flat_hash_map<std::string, Change>> changes(program.tables.size());
  GroupChanges groups;
  for (const auto& [id, out] : outputs) {
    auto rec = units.find(id);
    if (rec == units.end()) continue;
    for (const EntryRef& r : rec->second.entries) {
      const std::optional<size_t> pos = FindEntry(program.entries[r.table], r.priority, r.key);
      if (!pos) return absl::InternalError(absl::StrCat("unit ", id, " lost an entry"));
      changes[r.table][r.key] = Change{r.priority, r.key, pos, nullptr};
    }
    for (const std::string& g : rec->second.groups) groups[g].first = program.FindGroup(g);
  }
  std::map<std::string, UnitRecord> records;
  for (auto& [id, out] : outputs) {
    UnitRecord& rec = records[id];
    for (const Entry& e : out.entries) {
      std::string key = EntryKey(e);
      rec.entries.push_back({e.table, e.priority, key});
      Change& c = changes[e.table][key];
      if (c.now != nullptr) {
        why = absl::StrCat("two units emit one entry (", id, ")");
        return std::nullopt;
      }
      if (!c.old_pos && FindEntry(program.entries[e.table], e.priority, key)) {
        why = absl::StrCat("unit ", id, " emits an entry another unit holds");
        return std::nullopt;
      }
      c.priority = e.priority;
      c.key = std::move(key);
      c.now = &e;
    }
    for (const SelectGroup& g : out.groups) {
      rec.groups.push_back(g.name);
      auto& slot = groups[g.name];
      if (slot.second != nullptr || (slot.first == nullptr && program.FindGroup(g.name))) {
        why = absl::StrCat("unit ", id, " emits group ", g.name, " another unit holds");
        return std::nullopt;
      }
      slot.second = &g;
    }
  }
  Delta delta = BuildDelta(changes, groups);
  ApplyToProgram(delta);
  for (auto& [id, rec] : records) {
    if (rec.entries.empty() && rec.groups.empty()) {
      units.erase(id);
    } else {
      units[id] = std::move(rec);
    }
  }
  return delta;
}

// The ops in Diff's order: groups added/modified by name, entries upserted from the last table
// to the first, entries deleted from the first table to the last, groups deleted by name; within
// a table in program order.
Delta IncrementalCompiler::Impl::BuildDelta(const EntryChanges& changes,
                                            const GroupChanges& groups) const {
  Delta d;
  std::vector<DeltaOp> group_deletes;
  for (const auto& [name, pair] : groups) {
    const auto& [old, now] = pair;
    if (now == nullptr) {
      if (old != nullptr) group_deletes.push_back({DeltaOp::Kind::kDeleteGroup, {}, *old});
    } else if (old == nullptr) {
      d.ops.push_back({DeltaOp::Kind::kAddGroup, {}, *now});
    } else if (!SameGroup(*old, *now)) {
      d.ops.push_back({DeltaOp::Kind::kModifyGroup, {}, *now});
    }
  }
  std::vector<std::vector<const EntryChange*>> sorted(changes.size());
  for (size_t t = 0; t < changes.size(); ++t) {
    for (const auto& [key, c] : changes[t]) sorted[t].push_back(&c);
    std::sort(sorted[t].begin(), sorted[t].end(), [](const EntryChange* a, const EntryChange* b) {
      return EntryBefore(a->priority, a->key, b->priority, b->key);
    });
  }
  for (size_t t = changes.size(); t-- > 0;) {
    for (const EntryChange* c : sorted[t]) {
      if (c->now == nullptr) continue;
      if (!c->old_pos) {
        d.ops.push_back({DeltaOp::Kind::kAddEntry, *c->now, {}});
        continue;
      }
      const Entry& old = program.entries[t][*c->old_pos];
      if (old.actions != c->now->actions || old.origin != c->now->origin) {
        d.ops.push_back({DeltaOp::Kind::kModifyEntry, *c->now, {}});
      }
    }
  }
  for (size_t t = 0; t < changes.size(); ++t) {
    for (const EntryChange* c : sorted[t]) {
      if (c->now == nullptr && c->old_pos) {
        d.ops.push_back({DeltaOp::Kind::kDeleteEntry, program.entries[t][*c->old_pos], {}});
      }
    }
  }
  for (DeltaOp& op : group_deletes) d.ops.push_back(std::move(op));
  return d;
}

// Applies a delta built by BuildDelta: every op fits, so each is one binary search and one
// vector edit.
void IncrementalCompiler::Impl::ApplyToProgram(const Delta& delta) {
  for (const DeltaOp& op : delta.ops) {
    switch (op.kind) {
      case DeltaOp::Kind::kAddGroup:
        program.groups.insert(GroupPos(program.groups, op.group.name), op.group);
        continue;
      case DeltaOp::Kind::kModifyGroup:
        *GroupPos(program.groups, op.group.name) = op.group;
        continue;
      case DeltaOp::Kind::kDeleteGroup:
        program.groups.erase(GroupPos(program.groups, op.group.name));
        continue;
      default:
        break;
    }
    std::vector<Entry>& table = program.entries[op.entry.table];
    const std::string key = EntryKey(op.entry);
    const size_t pos = LowerBound(table, op.entry.priority, key);
    if (op.kind == DeltaOp::Kind::kAddEntry) {
      table.insert(table.begin() + static_cast<std::ptrdiff_t>(pos), op.entry);
    } else if (op.kind == DeltaOp::Kind::kModifyEntry) {
      table[pos] = op.entry;
    } else {
      table.erase(table.begin() + static_cast<std::ptrdiff_t>(pos));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// One change

template <typename T>
absl::StatusOr<Delta> IncrementalCompiler::Impl::ApplyTyped(ObjectChange::Kind kind, const T& obj) {
  if constexpr (kIsSingleton<T>) {
    std::optional<T>& slot = SingletonOf(state, static_cast<const T*>(nullptr));
    std::optional<T> old = slot;
    NICFLOW_RETURN_IF_ERROR(ApplyChange(state, ObjectChange{kind, obj}));
    auto delta = FullRecompile(absl::StrCat(ObjectKindName(obj), " changed: node-wide facts"));
    if (!delta.ok()) slot = std::move(old);
    return delta;
  } else {
    std::vector<T>& objects = ObjectsOf(state, static_cast<const T*>(nullptr));
    auto& index = IndexOf(static_cast<const T*>(nullptr));
    const std::string key = ObjectKey(obj);
    std::optional<size_t> at;
    if (auto it = index.find(key); it != index.end()) at = it->second;
    NICFLOW_RETURN_IF_ERROR(CheckChangeFits(kind, obj, at.has_value()));
    std::optional<T> old;
    if (at) old = objects[*at];
    if constexpr (std::is_same_v<T, EndpointSlice>) {
      if (old) IndexSlice(*old, false);
    }
    const std::optional<size_t> moved = EditObjects(objects, at, kind, obj);
    if (kind == ObjectChange::Kind::kAdded) index[key] = objects.size() - 1;
    if (kind == ObjectChange::Kind::kDeleted) index.erase(key);
    if (moved) index[ObjectKey(objects[*moved])] = *moved;
    if constexpr (std::is_same_v<T, EndpointSlice>) {
      if (kind != ObjectChange::Kind::kDeleted) IndexSlice(obj, true);
    }
    auto undo = [&] {
      if constexpr (std::is_same_v<T, EndpointSlice>) {
        if (kind != ObjectChange::Kind::kDeleted) IndexSlice(obj, false);
        if (old) IndexSlice(*old, true);
      }
      if (moved) index[ObjectKey(objects[*moved])] = objects.size();
      UndoEditObjects(objects, at, kind, old);
      if (kind == ObjectChange::Kind::kAdded) index.erase(key);
      if (at) index[key] = *at;
    };

    absl::StatusOr<Delta> result;
    if constexpr (std::is_same_v<T, Node> || std::is_same_v<T, ServiceCidr>) {
      result = FullRecompile(absl::StrCat(ObjectKindName(obj), " changed: node-wide facts"));
    } else if (!degraded.empty()) {
      result = FullRecompile(degraded);
    } else {
      Plan plan;
      const T* now = kind == ObjectChange::Kind::kDeleted ? nullptr : &objects[index[key]];
      PlanFor(old ? &*old : nullptr, now, plan);
      std::string why;
      absl::StatusOr<std::optional<Delta>> inc = Execute(plan, why);
      if (!inc.ok()) {
        result = inc.status();
      } else if (!*inc) {
        result = FullRecompile(why);
      } else {
        result = std::move(**inc);
        ++stats.incremental;
      }
    }
    if (!result.ok()) undo();
    return result;
  }
}

IncrementalCompiler::IncrementalCompiler(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
IncrementalCompiler::~IncrementalCompiler() = default;

absl::StatusOr<std::unique_ptr<IncrementalCompiler>> IncrementalCompiler::Create(
    ClusterState state, CompileOptions options) {
  auto impl = std::make_unique<Impl>();
  NICFLOW_ASSIGN_OR_RETURN(CompileResult result, Compile(state, options));
  impl->state = std::move(state);
  impl->options = std::move(options);
  impl->program = std::move(result.program);
  impl->node = std::move(result.node);
  impl->notes = std::move(result.notes);
  NICFLOW_RETURN_IF_ERROR(impl->BuildUnits());
  return std::unique_ptr<IncrementalCompiler>(new IncrementalCompiler(std::move(impl)));
}

absl::StatusOr<Delta> IncrementalCompiler::Apply(const ObjectChange& change) {
  absl::StatusOr<Delta> d =
      std::visit([&](const auto& o) { return impl_->ApplyTyped(change.kind, o); }, change.object);
  if (d.ok()) ++impl_->stats.changes;
  return d;
}

const Program& IncrementalCompiler::program() const { return impl_->program; }
const ClusterState& IncrementalCompiler::state() const { return impl_->state; }
const NodeFacts& IncrementalCompiler::node() const { return impl_->node; }
const std::vector<std::string>& IncrementalCompiler::notes() const { return impl_->notes; }
const IncrementalStats& IncrementalCompiler::stats() const { return impl_->stats; }

}  // namespace nicflow::flowtables
