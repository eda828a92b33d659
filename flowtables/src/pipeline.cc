#include "nicflow/flowtables/pipeline.h"

namespace nicflow::flowtables {

namespace {

TableSchema Schema(TableId id, std::string name, std::vector<KeyField> keys,
                   std::vector<Action> default_actions, std::string doc) {
  return TableSchema{id, std::move(name), std::move(keys), std::move(default_actions),
                     std::move(doc)};
}

constexpr KeyField Key(Field f, MatchKind k) { return KeyField{f, k}; }

}  // namespace

std::vector<TableSchema> StandardTableSchemas() {
  using F = Field;
  using K = MatchKind;
  std::vector<TableSchema> t;
  t.push_back(Schema(
      kTableClassify, "classify",
      {Key(F::kMetaPortClass, K::kTernary), Key(F::kIpv4Src, K::kLpm), Key(F::kIpv6Src, K::kLpm)},
      {GotoAction{kTableConntrack}}, "port class and local-traffic detection -> meta.flags"));
  t.push_back(Schema(kTableConntrack, "conntrack", {},
                     {CtLookupAction{}, GotoAction{kTableCtState}},
                     "connection tracking lookup; applies NAT of known connections"));
  t.push_back(Schema(kTableCtState, "ct_state", {Key(F::kCtState, K::kTernary)},
                     {GotoAction{kTableService}},
                     "established and reply traffic skip to forward; invalid is dropped"));
  t.push_back(
      Schema(kTableService, "service",
             {Key(F::kIpv4Dst, K::kLpm), Key(F::kIpv6Dst, K::kLpm), Key(F::kIpProto, K::kTernary),
              Key(F::kL4Dst, K::kTernary), Key(F::kIpv4Src, K::kLpm), Key(F::kIpv6Src, K::kLpm),
              Key(F::kMetaFlags, K::kTernary)},
             {GotoAction{kTableMasqMark}}, "Service frontends: load balance (DNAT), reject, drop"));
  t.push_back(Schema(
      kTableMasqMark, "masq_mark",
      {Key(F::kMetaFlags, K::kTernary), Key(F::kIpv4Src, K::kTernary),
       Key(F::kIpv4Dst, K::kTernary), Key(F::kIpv6Src, K::kTernary), Key(F::kIpv6Dst, K::kTernary)},
      {GotoAction{kTableEgressPod}},
      "kube-proxy masquerade marks: non-local to ClusterIP, hairpin"));
  t.push_back(Schema(
      kTableEgressPod, "egress_pod",
      {Key(F::kMetaFlags, K::kTernary), Key(F::kIpv4Src, K::kLpm), Key(F::kIpv6Src, K::kLpm)},
      {GotoAction{kTableIngressPod}}, "egress policy set of the sending local pod"));
  t.push_back(
      Schema(kTableEgressPeer, "egress_peer",
             {Key(F::kMetaSrcSet, K::kExact), Key(F::kIpv4Dst, K::kLpm), Key(F::kIpv6Dst, K::kLpm)},
             {GotoAction{kTableEgressRule}}, "egress rules whose `to` peers match"));
  t.push_back(Schema(kTableEgressRule, "egress_rule",
                     {Key(F::kMetaSrcSet, K::kExact), Key(F::kIpProto, K::kTernary),
                      Key(F::kL4Dst, K::kRange), Key(F::kMetaPeerBits, K::kTernary)},
                     {DropAction{}}, "egress rules: peers and ports together allow"));
  t.push_back(Schema(
      kTableIngressPod, "ingress_pod",
      {Key(F::kMetaFlags, K::kTernary), Key(F::kIpv4Dst, K::kLpm), Key(F::kIpv6Dst, K::kLpm)},
      {GotoAction{kTableSnat}}, "ingress policy set of the receiving local pod"));
  t.push_back(
      Schema(kTableIngressPeer, "ingress_peer",
             {Key(F::kMetaDstSet, K::kExact), Key(F::kIpv4Src, K::kLpm), Key(F::kIpv6Src, K::kLpm)},
             {GotoAction{kTableIngressRule}}, "ingress rules whose `from` peers match"));
  t.push_back(Schema(kTableIngressRule, "ingress_rule",
                     {Key(F::kMetaDstSet, K::kExact), Key(F::kIpProto, K::kTernary),
                      Key(F::kL4Dst, K::kRange), Key(F::kMetaPeerBits, K::kTernary)},
                     {DropAction{}}, "ingress rules: peers and ports together allow"));
  t.push_back(
      Schema(kTableSnat, "snat",
             {Key(F::kMetaFlags, K::kTernary), Key(F::kIpv4Src, K::kLpm), Key(F::kIpv4Dst, K::kLpm),
              Key(F::kIpv6Src, K::kLpm), Key(F::kIpv6Dst, K::kLpm)},
             {CtCommitAction{}, GotoAction{kTableForward}},
             "masquerade and egress SNAT; commit the connection"));
  t.push_back(Schema(kTableForward, "forward",
                     {Key(F::kIpv4Dst, K::kLpm), Key(F::kIpv6Dst, K::kLpm)},
                     {OutputAction{PortRef{PortRef::Kind::kUplink, ""}}},
                     "to a local pod's VF, the host, or the uplink"));
  return t;
}

}  // namespace nicflow::flowtables
