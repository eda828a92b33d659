#include "nat_compiler.h"

#include <algorithm>
#include <map>
#include <set>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "nicflow/flowtables/status.h"

namespace nicflow::flowtables {

namespace {

constexpr IpFamily kFamilies[] = {IpFamily::kV4, IpFamily::kV6};

std::set<IpPrefix> OfFamily(const std::vector<IpPrefix>& ps, IpFamily f) {
  std::set<IpPrefix> out;
  for (const IpPrefix& p : ps) {
    if (p.family() == f) out.insert(p);
  }
  return out;
}

std::vector<Action> SetAndGoto(uint32_t flags, TableId next) {
  return {SetFlags(flags), GotoAction{next}};
}

FieldMatch MatchPortClass(PortClass c) {
  return MatchTernary(Field::kMetaPortClass, static_cast<uint8_t>(c), 0xff);
}

std::string DetectLocalName(DetectLocalMode m) {
  switch (m) {
    case DetectLocalMode::kClusterCidr:
      return "ClusterCIDR";
    case DetectLocalMode::kNodeCidr:
      return "NodeCIDR";
    case DetectLocalMode::kInterfaceNamePrefix:
      return "InterfaceNamePrefix";
    case DetectLocalMode::kBridge:
      return "BridgeInterface";
  }
  return "?";
}

// The link-local range ip-masq-agent leaves alone unless masqLinkLocal is set.
IpPrefix LinkLocal(IpFamily f) {
  return f == IpFamily::kV4 ? IpPrefix{IpAddr::V4(0xa9fe0000), 16}
                            : IpPrefix{IpAddr::V6({0xfe, 0x80}), 10};
}

}  // namespace

const char* FamilyName(IpFamily f) { return f == IpFamily::kV4 ? "IPv4" : "IPv6"; }

std::optional<IpAddr> PrimaryNodeIp(const NodeFacts& node, IpFamily family) {
  for (const IpAddr& a : node.ips) {
    if (a.family() == family) return a;
  }
  return std::nullopt;
}

std::vector<IpPrefix> LocalSourceCidrs(const NodeFacts& node, IpFamily family) {
  const std::vector<IpPrefix>* src = nullptr;
  if (node.detect_local == DetectLocalMode::kClusterCidr) src = &node.cluster_cidrs;
  if (node.detect_local == DetectLocalMode::kNodeCidr) src = &node.pod_cidrs;
  if (src == nullptr) return {};
  std::set<IpPrefix> s = OfFamily(*src, family);
  return {s.begin(), s.end()};
}

bool LocalDetectorImplemented(const NodeFacts& node, IpFamily family) {
  if (node.detect_local == DetectLocalMode::kInterfaceNamePrefix ||
      node.detect_local == DetectLocalMode::kBridge) {
    return true;
  }
  return !LocalSourceCidrs(node, family).empty();
}

bool IsLocalPod(const Pod& p, const NodeFacts& node) {
  return !node.name.empty() && p.node_name == node.name && !p.host_network && !p.terminal &&
         !p.ips.empty();
}

Entry HairpinMasqEntry(const IpAddr& addr, Origin origin) {
  // Hairpin also tells the policy stages, which let it through: a pod cannot block itself.
  Entry e{kTableMasqMark,
          kPrioMasqHairpin,
          {MatchFlags(kFlagTranslated, kFlagTranslated), MatchSrcAddrTernary(addr),
           MatchDstAddrTernary(addr)},
          SetAndGoto(kFlagMasq | kFlagHairpin, kTableEgressPod),
          std::move(origin)};
  CanonicalizeMatch(e);
  return e;
}

Origin LocalEndpointHairpinOrigin() { return Origin{"nicflow", "", "hairpin", "local endpoint"}; }

std::vector<Entry> PodForwardEntries(const Pod& p) {
  const PortRef vf{PortRef::Kind::kPod, absl::StrCat(p.ns, "/", p.name)};
  std::vector<Entry> out;
  for (const IpAddr& a : p.ips) {
    Entry e{kTableForward,
            kPrioForward,
            {MatchDstPrefix(IpPrefix::Host(a))},
            {OutputAction{vf}},
            Origin{"Pod", p.ns, p.name, "VF"}};
    CanonicalizeMatch(e);
    out.push_back(std::move(e));
  }
  return out;
}

PortDecl PodPortDecl(const Pod& p) {
  return PortDecl{PortRef{PortRef::Kind::kPod, absl::StrCat(p.ns, "/", p.name)}, p.ips};
}

std::vector<const Pod*> LocalPods(const ClusterState& state, const NodeFacts& node) {
  std::vector<const Pod*> out;
  if (node.name.empty()) return out;  // a pod without nodeName is not on this node
  for (const Pod& p : state.pods) {
    if (IsLocalPod(p, node)) out.push_back(&p);
  }
  std::sort(out.begin(), out.end(), [](const Pod* a, const Pod* b) {
    return std::tie(a->ns, a->name) < std::tie(b->ns, b->name);
  });
  return out;
}

FieldMatch MatchFlags(uint32_t value, uint32_t mask) {
  return MatchTernary(Field::kMetaFlags, value, mask);
}

FieldMatch MatchIpProto(Protocol p) {
  return MatchTernary(Field::kIpProto, static_cast<uint8_t>(p), 0xff);
}

FieldMatch MatchL4DstPort(uint16_t port) { return MatchTernary(Field::kL4Dst, port, 0xffff); }

FieldMatch MatchSrcAddrTernary(const IpAddr& a) {
  return {SrcField(a.family()), TernaryMatch{U128::FromIp(a), U128::Ones(a.width_bits())}};
}

FieldMatch MatchDstAddrTernary(const IpAddr& a) {
  return {DstField(a.family()), TernaryMatch{U128::FromIp(a), U128::Ones(a.width_bits())}};
}

FieldMatch MatchFamilyTernary(IpFamily family) {
  return {SrcField(family), TernaryMatch{U128{}, U128{}}};
}

FieldMatch MatchFamilyLpm(IpFamily family) { return {SrcField(family), LpmMatch{U128{}, 0}}; }

SetFieldAction SetFlags(uint32_t flags) { return SetBits(Field::kMetaFlags, flags, flags); }

Origin NodeOrigin(const NodeFacts& node, std::string detail) {
  return Origin{"Node", "", node.name, std::move(detail)};
}

// classify: kube-proxy's local-traffic detector (pkg/proxy/util/localdetector.go) as flags, so
// later stages test one bit instead of repeating the CIDRs.
void CompileClassify(const NodeFacts& node, ProgramBuilder& builder) {
  const std::string mode = DetectLocalName(node.detect_local);
  builder.AddEntry(kTableClassify, kPrioClassifyHost, {MatchPortClass(PortClass::kHost)},
                   SetAndGoto(kFlagFromHost, kTableConntrack), NodeOrigin(node, "from host"));
  if (node.detect_local == DetectLocalMode::kInterfaceNamePrefix ||
      node.detect_local == DetectLocalMode::kBridge) {
    builder.AddEntry(kTableClassify, kPrioClassifyPodPort, {MatchPortClass(PortClass::kPod)},
                     SetAndGoto(kFlagLocalSrc, kTableConntrack),
                     NodeOrigin(node, absl::StrCat("detect-local ", mode, ": pod port")));
    return;
  }
  for (IpFamily f : kFamilies) {
    for (const IpPrefix& p : LocalSourceCidrs(node, f)) {
      std::string detail = absl::StrCat("detect-local ", mode, " ", p.ToString());
      builder.AddEntry(kTableClassify, kPrioClassifyHostLocal + p.prefix_len_bits,
                       {MatchPortClass(PortClass::kHost), MatchSrcPrefix(p)},
                       SetAndGoto(kFlagFromHost | kFlagLocalSrc, kTableConntrack),
                       NodeOrigin(node, absl::StrCat(detail, " from host")));
      builder.AddEntry(kTableClassify, kPrioClassifyLocal + p.prefix_len_bits, {MatchSrcPrefix(p)},
                       SetAndGoto(kFlagLocalSrc, kTableConntrack),
                       NodeOrigin(node, std::move(detail)));
    }
  }
}

// ct_state: only a connection's first packet walks the service and policy stages, as netfilter
// only consults the nat table for new connections and NetworkPolicy implementations only
// evaluate new ones.
void CompileConntrackState(ProgramBuilder& builder) {
  auto ct = [](uint8_t bit) { return MatchTernary(Field::kCtState, bit, bit); };
  Origin origin{"nicflow", "", "conntrack", ""};
  auto with = [&](std::string detail) {
    Origin o = origin;
    o.detail = std::move(detail);
    return o;
  };
  builder.AddEntry(kTableCtState, kPrioCtInvalid, {ct(kCtInv)}, {DropAction{}}, with("invalid"));
  builder.AddEntry(kTableCtState, kPrioCtReply, {ct(kCtRpl)}, {GotoAction{kTableForward}},
                   with("reply"));
  builder.AddEntry(kTableCtState, kPrioCtEstablished, {ct(kCtEst)}, {GotoAction{kTableForward}},
                   with("established"));
  builder.AddEntry(kTableCtState, kPrioCtRelated, {ct(kCtRel)}, {GotoAction{kTableForward}},
                   with("related"));
}

// masq_mark: the mark-for-masquerade jumps of kube-proxy's service and endpoint chains that need
// the packet's source, which the service stage cannot key on without multiplying entries.
void CompileMasqMark(const ClusterState& state, const NodeFacts& node, ProgramBuilder& builder,
                     std::vector<std::string>& notes) {
  const std::vector<Action> masq = SetAndGoto(kFlagMasq, kTableEgressPod);
  // Hairpin: kube-proxy's endpoint chain "ip saddr <ep> jump mark-for-masquerade"; only a local
  // address can arrive here as a source, so one entry per local pod / local endpoint address.
  std::map<IpAddr, Origin> hairpin;
  for (const Pod* p : LocalPods(state, node)) {
    for (const IpAddr& a : p->ips) hairpin.emplace(a, Origin{"Pod", p->ns, p->name, "hairpin"});
  }
  for (const EndpointSlice& s : state.endpoint_slices) {
    if (!s.family) continue;
    for (const Endpoint& e : s.endpoints) {
      if (node.name.empty() || e.node_name != node.name || e.addresses.empty()) continue;
      hairpin.emplace(e.addresses.front(), LocalEndpointHairpinOrigin());
    }
  }
  for (auto& [addr, origin] : hairpin) {
    Entry e = HairpinMasqEntry(addr, std::move(origin));
    builder.AddEntry(e.table, e.priority, std::move(e.match), std::move(e.actions),
                     std::move(e.origin));
  }
  if (node.masquerade_all) {
    builder.AddEntry(kTableMasqMark, kPrioMasqAll, {MatchFlags(kFlagClusterIp, kFlagClusterIp)},
                     masq, NodeOrigin(node, "masqueradeAll"));
    return;
  }
  // "ip saddr != <clusterCIDR> jump mark-for-masquerade" on ClusterIP traffic.
  for (IpFamily f : kFamilies) {
    if (!LocalDetectorImplemented(node, f)) {
      if (!PrimaryNodeIp(node, f) && OfFamily(node.service_cidrs, f).empty()) continue;
      notes.push_back(absl::StrCat("node ", node.name, ": no ", FamilyName(f),
                                   " cluster CIDR for detect-local; off-cluster ", FamilyName(f),
                                   " traffic to ClusterIPs is not masqueraded (as kube-proxy)"));
      continue;
    }
    builder.AddEntry(
        kTableMasqMark, kPrioMasqNonLocal,
        {MatchFlags(kFlagClusterIp, kFlagClusterIp | kFlagLocalSrc), MatchFamilyTernary(f)}, masq,
        NodeOrigin(node, absl::StrCat("masquerade off-cluster ", FamilyName(f),
                                      " traffic to ClusterIPs")));
  }
}

// snat: kube-proxy's "masquerading" chain (mark -> masquerade) and ip-masq-agent's egress rule.
void CompileSnat(const NodeFacts& node, ProgramBuilder& builder, std::vector<std::string>& notes) {
  const std::vector<Action> commit = {CtCommitAction{}, GotoAction{kTableForward}};
  for (IpFamily f : kFamilies) {
    std::optional<IpAddr> primary = PrimaryNodeIp(node, f);
    std::set<IpPrefix> cluster = OfFamily(node.cluster_cidrs, f);
    if (!primary) {
      if (!cluster.empty() || !OfFamily(node.service_cidrs, f).empty()) {
        notes.push_back(absl::StrCat("node ", node.name, ": no ", FamilyName(f),
                                     " address; masquerade and egress SNAT of ", FamilyName(f),
                                     " traffic are off"));
      }
      continue;
    }
    std::vector<Action> snat = {SnatAction{*primary}, CtCommitAction{}, GotoAction{kTableForward}};
    builder.AddEntry(kTableSnat, kPrioSnatMasq,
                     {MatchFlags(kFlagMasq, kFlagMasq), MatchFamilyLpm(f)}, snat,
                     NodeOrigin(node, absl::StrCat("masquerade to ", primary->ToString())));
    if (cluster.empty()) continue;
    std::set<IpPrefix> exempt = node.masq.non_masquerade_cidrs.empty()
                                    ? cluster
                                    : OfFamily(node.masq.non_masquerade_cidrs, f);
    if (!node.masq.masq_link_local) exempt.insert(LinkLocal(f));
    // Traffic to the node itself is delivered locally, never through POSTROUTING masquerade.
    for (const IpAddr& a : node.ips) {
      if (a.family() == f) exempt.insert(IpPrefix::Host(a));
    }
    for (const IpPrefix& p : exempt) {
      builder.AddEntry(kTableSnat, kPrioSnatExempt + p.prefix_len_bits, {MatchDstPrefix(p)}, commit,
                       NodeOrigin(node, absl::StrCat("nonMasqueradeCIDR ", p.ToString())));
    }
    for (const IpPrefix& p : cluster) {
      builder.AddEntry(kTableSnat, kPrioSnatEgress + p.prefix_len_bits, {MatchSrcPrefix(p)}, snat,
                       NodeOrigin(node, absl::StrCat("egress SNAT of pod traffic from ",
                                                     p.ToString(), " leaving the cluster")));
    }
  }
}

absl::Status CompileForward(const ClusterState& state, const NodeFacts& node,
                            const CompileOptions& options, ProgramBuilder& builder,
                            std::vector<std::string>& notes) {
  const std::vector<Action> to_host = {OutputAction{PortRef{PortRef::Kind::kHost, ""}}};
  std::map<IpAddr, std::string> owner;  // address -> who receives it
  for (const IpAddr& a : node.ips) {
    if (!owner.emplace(a, "the node").second) continue;
    builder.AddEntry(kTableForward, kPrioForward, {MatchDstPrefix(IpPrefix::Host(a))}, to_host,
                     NodeOrigin(node, absl::StrCat("node address ", a.ToString())));
  }
  builder.AddPort(PortDecl{PortRef{PortRef::Kind::kHost, ""}, node.ips});
  builder.AddPort(PortDecl{PortRef{PortRef::Kind::kUplink, ""}, {}});
  for (const Pod* p : LocalPods(state, node)) {
    const std::string name = absl::StrCat(p->ns, "/", p->name);
    bool clash = false;
    for (size_t i = 0; i < p->ips.size() && !clash; ++i) {
      auto it = owner.find(p->ips[i]);
      if (it == owner.end()) continue;
      clash = true;
      std::string msg = absl::StrCat("Pod ", name, ": status.podIPs[", i,
                                     "]: ", p->ips[i].ToString(), " is also held by ", it->second);
      if (!options.skip_bad_objects) return absl::InvalidArgumentError(msg);
      notes.push_back(absl::StrCat("skipped: ", msg));
    }
    if (clash) continue;
    for (const IpAddr& a : p->ips) owner.emplace(a, absl::StrCat("Pod ", name));
    for (Entry& e : PodForwardEntries(*p)) {
      builder.AddEntry(e.table, e.priority, std::move(e.match), std::move(e.actions),
                       std::move(e.origin));
    }
    builder.AddPort(PodPortDecl(*p));
  }
  return absl::OkStatus();
}

}  // namespace nicflow::flowtables
