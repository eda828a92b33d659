// Private to flowtables: the plumbing and NAT stages of the compiler.
//
//   classify   port class + source CIDR -> meta.flags LocalSrc (kube-proxy's detect-local) and
//              FromHost (fib saddr type local)
//   ct_state   established/related/reply -> forward (conntrack already applied their NAT),
//              invalid -> drop, new -> service (the schema default)
//   masq_mark  kube-proxy's mark-for-masquerade jumps that depend on the packet after DNAT:
//              hairpin (an endpoint reaching itself), masqueradeAll, off-cluster -> ClusterIP
//   snat       Masq -> masquerade to the node's primary IP of the family; egress SNAT of pod
//              traffic leaving the cluster (ip-masq-agent's nonMasqueradeCIDRs); commit
//   forward    local pod IP -> its VF, node IP -> host, anything else -> uplink
//
// The service stage (service_compiler.h) sits between ct_state and masq_mark and sets the flags
// masq_mark and snat read: ServiceHit|Translated on every DNAT, ClusterIp on ClusterIP hits, Masq
// where kube-proxy masquerades unconditionally (eTP=Cluster external traffic, host -> eTP=Local).
//
// Families: entries that must apply to one IP family only mention that family's address field
// with an all-wildcard value (LPM /0 or ternary mask 0). Per ir.h a packet that does not carry a
// field never matches an entry that mentions it, so such a match selects the family.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "nicflow/flowtables/compiler.h"
#include "nicflow/flowtables/model.h"
#include "program_builder.h"

namespace nicflow::flowtables {

// Priorities, by stage (docs/pipeline.md lists them). `+ prefix length` keeps overlapping
// prefixes of one stage at distinct priorities, longest first.
inline constexpr int32_t kPrioClassifyHostLocal = 300;  ///< + prefix length
inline constexpr int32_t kPrioClassifyHost = 200;
inline constexpr int32_t kPrioClassifyPodPort = 150;
inline constexpr int32_t kPrioClassifyLocal = 0;  ///< + prefix length (<= 128)
inline constexpr int32_t kPrioCtInvalid = 400;
inline constexpr int32_t kPrioCtReply = 300;
inline constexpr int32_t kPrioCtEstablished = 200;
inline constexpr int32_t kPrioCtRelated = 100;
inline constexpr int32_t kPrioMasqHairpin = 300;
inline constexpr int32_t kPrioMasqAll = 200;
inline constexpr int32_t kPrioMasqNonLocal = 100;
inline constexpr int32_t kPrioSnatMasq = 1000;
inline constexpr int32_t kPrioSnatExempt = 500;  ///< + prefix length
inline constexpr int32_t kPrioSnatEgress = 100;  ///< + prefix length
inline constexpr int32_t kPrioForward = 100;

/// "IPv4" / "IPv6".
const char* FamilyName(IpFamily f);
/// The node's first address of `family`: the masquerade source and kube-proxy's "node IP".
std::optional<IpAddr> PrimaryNodeIp(const NodeFacts& node, IpFamily family);
/// The source CIDRs kube-proxy's detect-local treats as local for `family` (ClusterCIDR and
/// NodeCIDR modes); empty for the interface modes.
std::vector<IpPrefix> LocalSourceCidrs(const NodeFacts& node, IpFamily family);
/// Whether kube-proxy's local-traffic detector works for `family`: the interface modes always
/// do; the CIDR modes need a CIDR of that family (kube-proxy's "no-op detector" otherwise).
bool LocalDetectorImplemented(const NodeFacts& node, IpFamily family);
/// Whether `pod` runs on this node and holds IPs (not hostNetwork, not terminal): it gets a VF.
bool IsLocalPod(const Pod& pod, const NodeFacts& node);
/// Pods that run on this node and hold IPs (not hostNetwork, not terminal), sorted by ns/name.
std::vector<const Pod*> LocalPods(const ClusterState& state, const NodeFacts& node);

/// Match helpers shared by the stages.
FieldMatch MatchFlags(uint32_t value, uint32_t mask);
FieldMatch MatchIpProto(Protocol p);
FieldMatch MatchL4DstPort(uint16_t port);
/// Ternary match of one whole address on the source or destination field.
FieldMatch MatchSrcAddrTernary(const IpAddr& a);
FieldMatch MatchDstAddrTernary(const IpAddr& a);
/// Selects packets of `family` in a table whose source key is ternary / LPM.
FieldMatch MatchFamilyTernary(IpFamily family);
FieldMatch MatchFamilyLpm(IpFamily family);
SetFieldAction SetFlags(uint32_t flags);

/// Origin of the node-wide entries: {"Node", "", node name, detail}.
Origin NodeOrigin(const NodeFacts& node, std::string detail);

void CompileClassify(const NodeFacts& node, ProgramBuilder& builder);
void CompileConntrackState(ProgramBuilder& builder);
void CompileMasqMark(const ClusterState& state, const NodeFacts& node, ProgramBuilder& builder,
                     std::vector<std::string>& notes);
/// The masq_mark entry of one hairpin address (a local pod or local endpoint address).
Entry HairpinMasqEntry(const IpAddr& addr, Origin origin);
/// The origin CompileMasqMark gives the hairpin entry of a local endpoint no local pod holds.
Origin LocalEndpointHairpinOrigin();
/// The forward entries of one local pod (one per IP, to its VF) and its port.
std::vector<Entry> PodForwardEntries(const Pod& pod);
PortDecl PodPortDecl(const Pod& pod);

void CompileSnat(const NodeFacts& node, ProgramBuilder& builder, std::vector<std::string>& notes);
/// Forward entries and the ports they output to. Errors: InvalidArgument when two local pods hold
/// the same IP (unless `options.skip_bad_objects`, then the later pod is skipped and noted).
absl::Status CompileForward(const ClusterState& state, const NodeFacts& node,
                            const CompileOptions& options, ProgramBuilder& builder,
                            std::vector<std::string>& notes);

}  // namespace nicflow::flowtables
