// The service stage. Design and the kube-proxy correspondence: service_compiler.h.
//
// Each Service is staged on its own (entries, groups, the frontends it claims) and committed only
// when it compiled and claims nothing another Service already holds, so a bad Service never
// leaves part of itself in the program: the compile fails, or with skip_bad_objects the Service
// is left out whole.
#include "service_compiler.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <tuple>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "nat_compiler.h"
#include "nicflow/flowtables/status.h"

namespace nicflow::flowtables {

namespace {

constexpr IpFamily kFamilies[] = {IpFamily::kV4, IpFamily::kV6};

const char* ProtoName(Protocol p) {
  switch (p) {
    case Protocol::kTcp:
      return "TCP";
    case Protocol::kUdp:
      return "UDP";
    case Protocol::kSctp:
      return "SCTP";
  }
  return "?";
}

/// What a Service answers on: destination address, protocol and port.
struct FrontendKey {
  IpAddr addr;
  Protocol proto = Protocol::kTcp;
  uint16_t port = 0;
  friend bool operator==(const FrontendKey&, const FrontendKey&) = default;
  template <typename H>
  friend H AbslHashValue(H h, const FrontendKey& k) {
    return H::combine(std::move(h), k.addr.bytes(), k.addr.family(), k.proto, k.port);
  }
  std::string ToString() const {
    return absl::StrCat(ProtoName(proto), " ", FormatEndpoint(addr, port));
  }
};

/// The actions of one frontend, by source class (kube-proxy's external chain distinguishes pod
/// and host sources for externalTrafficPolicy Local).
struct Verdicts {
  std::vector<Action> other;
  std::optional<std::vector<Action>> from_pod;
  std::optional<std::vector<Action>> from_host;
};

struct StagedEntry {
  int32_t priority = 0;
  std::vector<FieldMatch> match;
  std::vector<Action> actions;
  std::string detail;
};

struct StagedService {
  std::vector<StagedEntry> entries;
  std::map<std::string, SelectGroup> groups;
  std::vector<std::pair<FrontendKey, std::string>> frontends;  ///< key, field path
  std::vector<std::pair<IpAddr, std::string>> cluster_ips;     ///< address, field path
  std::vector<std::string> notes;
};

// Why a terminal frontend verdict was chosen, for the entry's provenance.
std::string VerdictReason(const std::vector<Action>& actions) {
  if (actions.size() == 1 && std::holds_alternative<RejectAction>(actions[0])) {
    return " (no endpoints)";
  }
  if (actions.size() == 1 && std::holds_alternative<DropAction>(actions[0])) {
    return " (no local endpoints)";
  }
  return "";
}

class ServiceStager {
 public:
  ServiceStager(const Service& svc, const NodeFacts& node,
                const std::vector<const EndpointSlice*>& slices)
      : svc_(svc), node_(node), slices_(slices) {}

  absl::Status Stage(StagedService& out);

 private:
  absl::Status Error(const std::string& field, const std::string& msg) const {
    return absl::InvalidArgumentError(
        absl::StrCat("Service ", svc_.ns, "/", svc_.name, ": ", field, ": ", msg));
  }
  absl::Status CheckClusterIps(std::map<IpFamily, IpAddr>& by_family, StagedService& out) const;
  absl::Status CheckPorts() const;
  /// One Service port in one family: what every frontend of it needs.
  struct PortContext {
    const ServicePort& port;
    IpFamily family;
    std::string field;  ///< "spec.ports[i]"
    std::string label;  ///< "port <name>"
    CategorizedEndpoints eps;
  };
  void StagePort(size_t index, IpFamily f, const IpAddr& cluster_ip, StagedService& out);
  void StageExternal(const PortContext& ctx, StagedService& out);
  Verdicts ExternalVerdicts(const ServicePort& port, IpFamily f, const CategorizedEndpoints& eps,
                            StagedService& out) const;
  std::vector<Action> Dnat(const ServicePort& port, IpFamily f, bool local,
                           const std::vector<ServiceEndpoint>& eps, uint32_t extra_flags,
                           StagedService& out) const;
  std::vector<IpPrefix> SourceRanges(IpFamily f) const;
  std::vector<IpAddr> NodePortAddresses(IpFamily f) const;
  void AddFrontend(const FrontendKey& key, std::string field, const std::string& detail,
                   const Verdicts& v, const std::vector<IpPrefix>& ranges,
                   StagedService& out) const;
  static void AddVariants(const std::vector<FieldMatch>& base, int32_t priority,
                          const std::string& detail, const Verdicts& v, StagedService& out);

  const Service& svc_;
  const NodeFacts& node_;
  const std::vector<const EndpointSlice*>& slices_;
};

absl::Status ServiceStager::Stage(StagedService& out) {
  std::map<IpFamily, IpAddr> by_family;
  if (auto st = CheckClusterIps(by_family, out); !st.ok()) return st;
  if (auto st = CheckPorts(); !st.ok()) return st;
  for (IpFamily f : kFamilies) {
    auto it = by_family.find(f);
    if (it == by_family.end()) continue;
    for (size_t i = 0; i < svc_.ports.size(); ++i) StagePort(i, f, it->second, out);
    // kube-proxy's cluster-ips-check: other ports of a live ClusterIP are rejected.
    out.entries.push_back(StagedEntry{
        kPrioClusterIpOtherPort,
        {MatchDstPrefix(IpPrefix::Host(it->second))},
        {RejectAction{}},
        absl::StrCat("clusterIP ", it->second.ToString(), ": ports the Service does not have")});
  }
  return absl::OkStatus();
}

absl::Status ServiceStager::CheckClusterIps(std::map<IpFamily, IpAddr>& by_family,
                                            StagedService& out) const {
  for (size_t i = 0; i < svc_.cluster_ips.size(); ++i) {
    const IpAddr& ip = svc_.cluster_ips[i];
    const std::string field = absl::StrCat("spec.clusterIPs[", i, "]");
    auto [it, inserted] = by_family.emplace(ip.family(), ip);
    if (!inserted) {
      return Error(field, absl::StrCat("second ", FamilyName(ip.family()), " address ",
                                       ip.ToString(), " (already ", it->second.ToString(), ")"));
    }
    bool family_known = false;
    bool inside = false;
    for (const IpPrefix& p : node_.service_cidrs) {
      family_known |= p.family() == ip.family();
      inside |= p.Contains(ip);
    }
    if (!node_.service_cidrs.empty() && !family_known) {
      return Error(field,
                   absl::StrCat(ip.ToString(), " is ", FamilyName(ip.family()),
                                " but no ServiceCIDR has an ", FamilyName(ip.family()), " range"));
    }
    if (!node_.service_cidrs.empty() && !inside) {
      out.notes.push_back(absl::StrCat("Service ", svc_.ns, "/", svc_.name, ": ", field, ": ",
                                       ip.ToString(), " is outside every ServiceCIDR"));
    }
    out.cluster_ips.emplace_back(ip, field);
  }
  return absl::OkStatus();
}

absl::Status ServiceStager::CheckPorts() const {
  std::map<std::pair<Protocol, uint16_t>, size_t> seen;
  for (size_t i = 0; i < svc_.ports.size(); ++i) {
    const ServicePort& p = svc_.ports[i];
    const std::string field = absl::StrCat("spec.ports[", i, "]");
    if (p.port == 0) return Error(field + ".port", "0 is not a valid port");
    auto [it, inserted] = seen.emplace(std::make_pair(p.protocol, p.port), i);
    if (!inserted) {
      return Error(field, absl::StrCat("duplicate ", ProtoName(p.protocol), " port ", p.port,
                                       " (also spec.ports[", it->second, "])"));
    }
  }
  return absl::OkStatus();
}

void ServiceStager::StagePort(size_t index, IpFamily f, const IpAddr& cluster_ip,
                              StagedService& out) {
  const ServicePort& port = svc_.ports[index];
  const PortContext ctx{
      port, f, absl::StrCat("spec.ports[", index, "]"),
      absl::StrCat("port ", port.name.empty() ? absl::StrCat(port.port) : port.name),
      CategorizeEndpoints(CollectEndpoints(port, f, slices_, node_.name))};
  // Internal traffic (ClusterIP), kube-proxy's internalTrafficChain / no-endpoint-services.
  Verdicts internal;
  if (!ctx.eps.has_any) {
    internal.other = {RejectAction{}};
  } else if (svc_.internal_traffic_local) {
    internal.other = ctx.eps.local.empty()
                         ? std::vector<Action>{DropAction{}}
                         : Dnat(port, f, /*local=*/true, ctx.eps.local, kFlagClusterIp, out);
  } else {
    internal.other = Dnat(port, f, /*local=*/false, ctx.eps.cluster, kFlagClusterIp, out);
  }
  AddFrontend({cluster_ip, port.protocol, port.port}, ctx.field, ctx.label, internal, {}, out);
  StageExternal(ctx, out);
}

// NodePorts, LoadBalancer ingress IPs and externalIPs: kube-proxy's external chain.
void ServiceStager::StageExternal(const PortContext& ctx, StagedService& out) {
  const ServicePort& port = ctx.port;
  const std::vector<IpAddr> node_ips =
      port.node_port == 0 ? std::vector<IpAddr>{} : NodePortAddresses(ctx.family);
  const bool lb_type = svc_.type == ServiceType::kLoadBalancer;
  auto of_family = [&](const IpAddr& a) { return a.family() == ctx.family; };
  const bool any_external =
      !node_ips.empty() ||
      std::any_of(svc_.external_ips.begin(), svc_.external_ips.end(), of_family) ||
      (lb_type &&
       std::any_of(svc_.load_balancer_ips.begin(), svc_.load_balancer_ips.end(), of_family));
  if (!any_external) return;  // no external frontend: create no external groups either

  const Verdicts external = ExternalVerdicts(port, ctx.family, ctx.eps, out);
  for (size_t j = 0; j < svc_.external_ips.size(); ++j) {
    const IpAddr& a = svc_.external_ips[j];
    if (!of_family(a)) continue;
    AddFrontend({a, port.protocol, port.port}, absl::StrCat("spec.externalIPs[", j, "]"),
                absl::StrCat(ctx.label, " externalIP ", a.ToString()), external, {}, out);
  }
  const std::vector<IpPrefix> ranges = SourceRanges(ctx.family);
  for (size_t j = 0; lb_type && j < svc_.load_balancer_ips.size(); ++j) {
    const IpAddr& a = svc_.load_balancer_ips[j];
    if (!of_family(a)) continue;
    AddFrontend({a, port.protocol, port.port}, absl::StrCat("status.loadBalancer.ingress[", j, "]"),
                absl::StrCat(ctx.label, " loadBalancer ", a.ToString()), external, ranges, out);
  }
  for (const IpAddr& a : node_ips) {
    AddFrontend({a, port.protocol, port.node_port}, ctx.field + ".nodePort",
                absl::StrCat(ctx.label, " nodePort ", port.node_port, " on ", a.ToString()),
                external, {}, out);
  }
}

// kube-proxy's external chain: eTP=Cluster masquerades everything (the endpoint may be on
// another node); eTP=Local keeps the client address and only uses local endpoints, except that
// pods short-circuit to all endpoints and the host, whose source would be the VIP itself, is
// masqueraded to all endpoints.
Verdicts ServiceStager::ExternalVerdicts(const ServicePort& port, IpFamily f,
                                         const CategorizedEndpoints& eps,
                                         StagedService& out) const {
  Verdicts v;
  if (!eps.has_any) {
    v.other = {RejectAction{}};
    return v;
  }
  if (!svc_.external_traffic_local) {
    v.other = Dnat(port, f, /*local=*/false, eps.cluster, kFlagMasq, out);
    return v;
  }
  v.other = eps.local.empty() ? std::vector<Action>{DropAction{}}
                              : Dnat(port, f, /*local=*/true, eps.local, 0, out);
  if (LocalDetectorImplemented(node_, f)) {
    v.from_pod = Dnat(port, f, /*local=*/false, eps.cluster, 0, out);
  }
  v.from_host = Dnat(port, f, /*local=*/false, eps.cluster, kFlagMasq, out);
  return v;
}

std::vector<Action> ServiceStager::Dnat(const ServicePort& port, IpFamily f, bool local,
                                        const std::vector<ServiceEndpoint>& eps,
                                        uint32_t extra_flags, StagedService& out) const {
  std::string name = ServiceGroupName(svc_, port, f, local);
  if (!out.groups.contains(name)) {
    SelectGroup g;
    g.name = name;
    if (svc_.affinity_timeout_s) {
      g.hash_fields = {SrcField(f)};
      g.affinity_timeout_s = svc_.affinity_timeout_s;
    } else {
      g.hash_fields = {Field::kIpProto, SrcField(f), DstField(f), Field::kL4Src, Field::kL4Dst};
    }
    for (const ServiceEndpoint& e : eps) {
      g.buckets.push_back(Bucket{1, {DnatAction{e.addr, e.port}}, FormatEndpoint(e.addr, e.port)});
    }
    g.origin = Origin{"Service", svc_.ns, svc_.name,
                      absl::StrCat("port ", port.name.empty() ? absl::StrCat(port.port) : port.name,
                                   local ? " local endpoints" : " cluster endpoints")};
    out.groups.emplace(name, std::move(g));
  }
  return {SetFlags(kFlagServiceHit | kFlagTranslated | extra_flags), GroupAction{std::move(name)},
          GotoAction{kTableMasqMark}};
}

// loadBalancerSourceRanges of one family, plus the LB VIPs themselves when a range holds the
// node's IP (kube-proxy's allowFromNode: VIP-like LBs loop node traffic back from the VIP).
// Empty when every source is allowed.
std::vector<IpPrefix> ServiceStager::SourceRanges(IpFamily f) const {
  std::set<IpPrefix> ranges;
  bool allow_from_node = false;
  std::optional<IpAddr> node_ip = PrimaryNodeIp(node_, f);
  for (const IpPrefix& p : svc_.load_balancer_source_ranges) {
    if (p.family() != f) continue;
    if (p.prefix_len_bits == 0) return {};
    ranges.insert(p);
    allow_from_node |= node_ip && p.Contains(*node_ip);
  }
  if (allow_from_node) {
    for (const IpAddr& a : svc_.load_balancer_ips) {
      if (a.family() == f) ranges.insert(IpPrefix::Host(a));
    }
  }
  return {ranges.begin(), ranges.end()};
}

// kube-proxy's NodePortAddresses: node addresses inside the listed CIDRs; a family without a
// listed CIDR (or with a zero CIDR) takes NodePorts on every address of that family.
std::vector<IpAddr> ServiceStager::NodePortAddresses(IpFamily f) const {
  std::vector<IpPrefix> cidrs;
  for (const IpPrefix& p : node_.node_port_addresses) {
    if (p.family() == f) cidrs.push_back(p);
  }
  std::vector<IpAddr> out;
  for (const IpAddr& a : node_.ips) {
    if (a.family() != f) continue;
    bool listed = cidrs.empty() || std::any_of(cidrs.begin(), cidrs.end(),
                                               [&](const IpPrefix& p) { return p.Contains(a); });
    if (listed && std::find(out.begin(), out.end(), a) == out.end()) out.push_back(a);
  }
  return out;
}

void ServiceStager::AddFrontend(const FrontendKey& key, std::string field,
                                const std::string& detail, const Verdicts& v,
                                const std::vector<IpPrefix>& ranges, StagedService& out) const {
  out.frontends.emplace_back(key, std::move(field));
  const std::vector<FieldMatch> base = {MatchDstPrefix(IpPrefix::Host(key.addr)),
                                        MatchIpProto(key.proto), MatchL4DstPort(key.port)};
  if (ranges.empty()) {
    AddVariants(base, kPrioFrontend, detail, v, out);
    return;
  }
  for (const IpPrefix& r : ranges) {
    std::vector<FieldMatch> m = base;
    m.push_back(MatchSrcPrefix(r));
    AddVariants(m, kPrioFrontend + 4 * (r.prefix_len_bits + 1), detail, v, out);
  }
  out.entries.push_back(StagedEntry{
      kPrioFrontend, base, {DropAction{}}, detail + " (source outside loadBalancerSourceRanges)"});
}

void ServiceStager::AddVariants(const std::vector<FieldMatch>& base, int32_t priority,
                                const std::string& detail, const Verdicts& v, StagedService& out) {
  out.entries.push_back(StagedEntry{priority, base, v.other, detail + VerdictReason(v.other)});
  auto variant = [&](const std::optional<std::vector<Action>>& acts, uint32_t flag, int32_t bump,
                     const char* who) {
    if (!acts || *acts == v.other) return;
    std::vector<FieldMatch> m = base;
    m.push_back(MatchFlags(flag, flag));
    out.entries.push_back(
        StagedEntry{priority + bump, std::move(m), *acts, absl::StrCat(detail, " from ", who)});
  };
  variant(v.from_host, kFlagFromHost, 1, "host");
  variant(v.from_pod, kFlagLocalSrc, 2, "pods");
}

/// Who holds a frontend or clusterIP: the Service and the field that claims it.
struct Claimant {
  const Service* svc = nullptr;
  std::string field;
  std::string ToString() const {
    return absl::StrCat("Service ", svc->ns, "/", svc->name, " (", field, ")");
  }
};

/// An address as a hash key (IpAddr itself has no hash).
struct AddrKey {
  IpAddr addr;
  friend bool operator==(const AddrKey&, const AddrKey&) = default;
  template <typename H>
  friend H AbslHashValue(H h, const AddrKey& k) {
    return H::combine(std::move(h), k.addr.bytes(), k.addr.family());
  }
};

using FrontendClaims = absl::flat_hash_map<FrontendKey, Claimant>;
using ClusterIpClaims = absl::flat_hash_map<AddrKey, Claimant>;

// Checks what `staged` claims against what committed Services hold; on success records the
// claims. Errors name both Services. A Service has a handful of frontends, so its own duplicates
// are found by a linear scan.
absl::Status Claim(const Service& svc, StagedService& staged, FrontendClaims& frontends,
                   ClusterIpClaims& cluster_ips) {
  auto error = [&](const std::string& field, const std::string& what, const std::string& owner) {
    return absl::InvalidArgumentError(
        absl::StrCat("Service ", svc.ns, "/", svc.name, ": ", field, ": ", what, owner));
  };
  for (size_t i = 0; i < staged.frontends.size(); ++i) {
    const auto& [key, field] = staged.frontends[i];
    const std::string what = key.ToString() + " is already a frontend of ";
    if (auto f = frontends.find(key); f != frontends.end()) {
      return error(field, what, f->second.ToString());
    }
    for (size_t j = 0; j < i; ++j) {
      if (staged.frontends[j].first == key) {
        return error(field, what, Claimant{&svc, staged.frontends[j].second}.ToString());
      }
    }
  }
  for (const auto& [ip, field] : staged.cluster_ips) {
    if (auto it = cluster_ips.find(AddrKey{ip}); it != cluster_ips.end()) {
      return error(field, ip.ToString() + " is already the clusterIP of ", it->second.ToString());
    }
  }
  for (auto& [ip, field] : staged.cluster_ips) {
    cluster_ips.emplace(AddrKey{ip}, Claimant{&svc, std::move(field)});
  }
  for (auto& [key, field] : staged.frontends) {
    frontends.emplace(key, Claimant{&svc, std::move(field)});
  }
  return absl::OkStatus();
}

void Commit(const Service& svc, StagedService& staged, ProgramBuilder& builder,
            std::vector<std::string>& notes) {
  for (StagedEntry& e : staged.entries) {
    builder.AddEntry(kTableService, e.priority, std::move(e.match), std::move(e.actions),
                     Origin{"Service", svc.ns, svc.name, std::move(e.detail)});
  }
  for (auto& [name, g] : staged.groups) builder.AddGroup(std::move(g));
  for (std::string& n : staged.notes) notes.push_back(std::move(n));
}

// kube-proxy's cluster-ips-check "drop traffic to unallocated ClusterIPs".
void AddUnallocatedDrops(const ClusterState& state, const NodeFacts& node,
                         ProgramBuilder& builder) {
  std::set<IpPrefix> done;
  for (const IpPrefix& p : node.service_cidrs) {
    if (!done.insert(p).second) continue;
    Origin origin = NodeOrigin(node, absl::StrCat("serviceCIDR ", p.ToString(), ": unallocated"));
    for (const ServiceCidr& sc : state.service_cidrs) {
      if (std::find(sc.cidrs.begin(), sc.cidrs.end(), p) != sc.cidrs.end()) {
        origin = Origin{"ServiceCIDR", "", sc.name, absl::StrCat(p.ToString(), ": unallocated")};
        break;
      }
    }
    builder.AddEntry(kTableService, kPrioUnallocated, {MatchDstPrefix(p)}, {DropAction{}},
                     std::move(origin));
  }
}

bool SkippedByKubeProxy(const Service& svc) {
  return svc.type == ServiceType::kExternalName || svc.headless || svc.cluster_ips.empty();
}

}  // namespace

absl::Status CompileOneService(const Service& svc, const NodeFacts& node,
                               const std::vector<const EndpointSlice*>& slices,
                               ServiceUnitOutput& out) {
  if (SkippedByKubeProxy(svc)) return absl::OkStatus();
  StagedService staged;
  NICFLOW_RETURN_IF_ERROR(ServiceStager(svc, node, slices).Stage(staged));
  FrontendClaims frontends;
  ClusterIpClaims cluster_ips;
  NICFLOW_RETURN_IF_ERROR(Claim(svc, staged, frontends, cluster_ips));
  for (const auto& [key, claimant] : frontends) out.claims.push_back("frontend " + key.ToString());
  for (const auto& [key, claimant] : cluster_ips) {
    out.claims.push_back("clusterIP " + key.addr.ToString());
  }
  for (StagedEntry& e : staged.entries) {
    Entry entry{kTableService, e.priority, std::move(e.match), std::move(e.actions),
                Origin{"Service", svc.ns, svc.name, std::move(e.detail)}};
    CanonicalizeMatch(entry);
    out.entries.push_back(std::move(entry));
  }
  for (auto& [name, g] : staged.groups) out.groups.push_back(std::move(g));
  out.notes = std::move(staged.notes);
  return absl::OkStatus();
}

absl::Status CompileServices(const ClusterState& state, const NodeFacts& node,
                             const CompileOptions& options, ProgramBuilder& builder,
                             std::vector<std::string>& notes) {
  // Slices by Service, in name order, so the result never depends on load order.
  absl::flat_hash_map<std::pair<std::string, std::string>, std::vector<const EndpointSlice*>>
      slices;
  for (const EndpointSlice& s : state.endpoint_slices) {
    slices[{s.ns, s.service_name}].push_back(&s);
  }
  for (auto& [key, v] : slices) {
    std::sort(v.begin(), v.end(),
              [](const EndpointSlice* a, const EndpointSlice* b) { return a->name < b->name; });
  }
  std::vector<const Service*> services;
  for (const Service& s : state.services) services.push_back(&s);
  std::sort(services.begin(), services.end(), [](const Service* a, const Service* b) {
    return std::tie(a->ns, a->name) < std::tie(b->ns, b->name);
  });

  static const std::vector<const EndpointSlice*> kNoSlices;
  FrontendClaims frontends;
  ClusterIpClaims cluster_ips;
  for (const Service* svc : services) {
    // kube-proxy's ShouldSkipService: no virtual IP, nothing to program.
    if (SkippedByKubeProxy(*svc)) continue;
    auto it = slices.find({svc->ns, svc->name});
    StagedService staged;
    absl::Status st =
        ServiceStager(*svc, node, it == slices.end() ? kNoSlices : it->second).Stage(staged);
    if (st.ok()) st = Claim(*svc, staged, frontends, cluster_ips);
    if (!st.ok()) {
      if (!options.skip_bad_objects) return st;
      notes.push_back(absl::StrCat("skipped: ", st.message()));
      continue;
    }
    Commit(*svc, staged, builder, notes);
  }
  AddUnallocatedDrops(state, node, builder);
  return absl::OkStatus();
}

}  // namespace nicflow::flowtables
