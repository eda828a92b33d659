// The standard pipeline the compiler emits: which tables, in which order, with which keys.
//
// Stages (see docs/pipeline.md for the user-facing description):
//
//   classify      port class, source CIDRs      -> meta.flags LocalSrc/FromHost (detect-local)
//   conntrack     -                             -> CtLookup (applies NAT of known connections)
//   ct_state      ct_state                      -> established/reply skip to forward; invalid drop
//   service       dst IP/proto/port, src CIDR,  -> Service frontends: select group (DNAT bucket),
//                 meta.flags                       REJECT (no endpoints), DROP (Local without
//                                                  local endpoints, unallocated ServiceCIDR IP)
//   masq_mark     meta.flags, src/dst IP        -> kube-proxy's masquerade marks (non-local to
//                                                  ClusterIP, masqueradeAll, hairpin)
//   egress_pod    src IP (local pod)            -> meta.src_set: the pod's egress policy set
//   egress_peer   src_set, dst IP               -> meta.peer_bits: rules whose `to` matched
//   egress_rule   src_set, proto, dst port,     -> allow (goto ingress_pod), else drop
//                 peer_bits
//   ingress_pod   dst IP (local pod), flags     -> meta.dst_set: the pod's ingress policy set
//   ingress_peer  dst_set, src IP               -> meta.peer_bits: rules whose `from` matched
//   ingress_rule  dst_set, proto, dst port,     -> allow (goto snat), else drop
//                 peer_bits
//   snat          meta.flags, src/dst IP        -> masquerade to a node IP; egress SNAT of pod
//                                                  traffic leaving the cluster; CtCommit
//   forward       dst IP                        -> output: local pod VF, host, or uplink
//
// Policies compile through per-pod *policy sets* (the pods a set of rules selects, identified by
// a stable 32-bit tag) and per-rule bits: a rule with P peers and Q ports costs P peer entries
// and Q rule entries, not P x Q (the conjunctive-match idea of Antrea's OVS `conjunction`).
#pragma once

#include "nicflow/flowtables/ir.h"

namespace nicflow::flowtables {

enum StandardTable : TableId {
  kTableClassify = 0,
  kTableConntrack,
  kTableCtState,
  kTableService,
  kTableMasqMark,
  kTableEgressPod,
  kTableEgressPeer,
  kTableEgressRule,
  kTableIngressPod,
  kTableIngressPeer,
  kTableIngressRule,
  kTableSnat,
  kTableForward,
  kStandardTableCount,
};

/// The schemas of the standard pipeline, in order (ids equal indices).
std::vector<TableSchema> StandardTableSchemas();

/// Conventional priorities, so stages read alike in dumps.
inline constexpr int32_t kPriorityDefault = 0;

}  // namespace nicflow::flowtables
