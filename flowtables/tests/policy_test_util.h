// Test-only helpers for the NetworkPolicy compiler: cluster builders and a small interpreter of
// the six policy tables (the simulator in sim/ is the real reference; this one follows ir.h's
// semantics for the fields the policy tables use, and fails the test on equal-priority ties).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "nicflow/flowtables/ir.h"
#include "nicflow/flowtables/model.h"
#include "nicflow/flowtables/pipeline.h"
#include "policy_compiler.h"
#include "program_builder.h"

namespace nicflow::flowtables::testing_policy {

inline IpAddr Ip(std::string_view s) { return IpAddr::Parse(s).value(); }
inline IpPrefix Cidr(std::string_view s) { return IpPrefix::Parse(s).value(); }

inline constexpr std::string_view kNode = "n1";

inline Namespace MakeNamespace(std::string name, Labels labels = {}) {
  labels.emplace("kubernetes.io/metadata.name", name);
  return Namespace{std::move(name), std::move(labels), {}};
}

inline Pod MakePod(std::string ns, std::string name, Labels labels, std::vector<std::string> ips,
                   std::string node = std::string(kNode), std::vector<ContainerPort> ports = {}) {
  Pod p;
  p.ns = std::move(ns);
  p.name = std::move(name);
  p.labels = std::move(labels);
  p.node_name = std::move(node);
  for (const auto& ip : ips) p.ips.push_back(Ip(ip));
  p.ports = std::move(ports);
  return p;
}

inline LabelSelector Sel(Labels match_labels = {}) {
  LabelSelector s;
  s.match_labels = std::move(match_labels);
  return s;
}

inline NetworkPolicyPeer PodPeer(LabelSelector pods) { return {std::move(pods), {}, {}}; }
inline NetworkPolicyPeer NsPeer(LabelSelector ns) { return {{}, std::move(ns), {}}; }
inline NetworkPolicyPeer NsPodPeer(LabelSelector ns, LabelSelector pods) {
  return {std::move(pods), std::move(ns), {}};
}
inline NetworkPolicyPeer BlockPeer(std::string_view cidr,
                                   std::vector<std::string_view> except = {}) {
  IpBlock b{Cidr(cidr), {}};
  for (auto e : except) b.except.push_back(Cidr(e));
  return {{}, {}, b};
}

inline NetworkPolicyPort Port(uint16_t port, Protocol proto = Protocol::kTcp,
                              std::optional<uint16_t> end = std::nullopt) {
  return {proto, port, end};
}
inline NetworkPolicyPort NamedPort(std::string name, Protocol proto = Protocol::kTcp) {
  return {proto, std::move(name), std::nullopt};
}
inline NetworkPolicyPort AllPortsOf(Protocol proto) { return {proto, std::monostate{}, {}}; }

inline NetworkPolicy IngressPolicy(std::string ns, std::string name, LabelSelector pods,
                                   std::vector<NetworkPolicyRule> rules) {
  NetworkPolicy p;
  p.ns = std::move(ns);
  p.name = std::move(name);
  p.pod_selector = std::move(pods);
  p.affects_ingress = true;
  p.ingress = std::move(rules);
  return p;
}

inline NetworkPolicy EgressPolicy(std::string ns, std::string name, LabelSelector pods,
                                  std::vector<NetworkPolicyRule> rules) {
  NetworkPolicy p;
  p.ns = std::move(ns);
  p.name = std::move(name);
  p.pod_selector = std::move(pods);
  p.affects_egress = true;
  p.egress = std::move(rules);
  return p;
}

inline constexpr std::string_view kNodeIp = "192.168.0.2", kNodeIpV6 = "fd00:ffff::2";

inline NodeFacts Node1() {
  NodeFacts n;
  n.name = std::string(kNode);
  n.ips = {Ip(kNodeIp), Ip(kNodeIpV6)};
  return n;
}

struct Compiled {
  Program program;
  std::vector<std::string> notes;
};

/// Compiles only the policy stage for node n1; fails the test on an error.
inline Compiled CompileOrDie(const ClusterState& state) {
  ProgramBuilder builder;
  Compiled out;
  absl::Status st = CompilePolicies(state, Node1(), builder, out.notes);
  EXPECT_TRUE(st.ok()) << st;
  auto program = std::move(builder).Finish();
  EXPECT_TRUE(program.ok()) << program.status();
  if (program.ok()) out.program = *std::move(program);
  return out;
}

struct Packet {
  IpAddr src;
  IpAddr dst;
  Protocol proto = Protocol::kTcp;
  uint16_t dport = 80;
  uint32_t flags = 0;
};

enum class Fate { kAllow, kDrop, kPunt, kError };

struct Walk {
  Fate fate = Fate::kError;
  std::vector<const Entry*> path;  ///< winning entries (misses are not listed)
  std::string error;
};

namespace internal {

inline std::optional<U128> FieldOf(const Packet& p, const U128 (&meta)[3], Field f) {
  const bool v4 = p.src.is_v4();
  switch (f) {
    case Field::kIpv4Src:
      return v4 ? std::optional(U128::FromIp(p.src)) : std::nullopt;
    case Field::kIpv4Dst:
      return v4 ? std::optional(U128::FromIp(p.dst)) : std::nullopt;
    case Field::kIpv6Src:
      return v4 ? std::nullopt : std::optional(U128::FromIp(p.src));
    case Field::kIpv6Dst:
      return v4 ? std::nullopt : std::optional(U128::FromIp(p.dst));
    case Field::kIpProto:
      return U128::Of(static_cast<uint8_t>(p.proto));
    case Field::kL4Dst:
      return U128::Of(p.dport);
    case Field::kMetaFlags:
      return U128::Of(p.flags);
    case Field::kMetaSrcSet:
      return meta[0];
    case Field::kMetaDstSet:
      return meta[1];
    case Field::kMetaPeerBits:
      return meta[2];
    default:
      return std::nullopt;
  }
}

inline bool Matches(const FieldMatch& m, const std::optional<U128>& v) {
  if (!v) return false;
  const int width = GetFieldInfo(m.field).width_bits;
  if (const auto* e = std::get_if<ExactMatch>(&m.value)) return *v == e->value;
  if (const auto* t = std::get_if<TernaryMatch>(&m.value)) return (*v & t->mask) == t->value;
  if (const auto* l = std::get_if<LpmMatch>(&m.value)) {
    return (*v & U128::PrefixMask(width, l->prefix_len_bits)) == l->value;
  }
  const auto& r = std::get<RangeMatch>(m.value);
  return r.lo <= *v && *v <= r.hi;
}

}  // namespace internal

/// Runs `p` through the policy tables, from egress_pod to the first goto snat (allow).
inline Walk Trace(const Program& prog, const Packet& p) {
  Walk w;
  U128 meta[3] = {};  // src_set, dst_set, peer_bits
  TableId table = kTableEgressPod;
  for (int steps = 0; steps < 16; ++steps) {
    if (table == kTableSnat) {
      w.fate = Fate::kAllow;
      return w;
    }
    const Entry* best = nullptr;
    for (const Entry& e : prog.entries[table]) {
      bool all = true;
      for (const FieldMatch& m : e.match)
        all &= internal::Matches(m, internal::FieldOf(p, meta, m.field));
      if (!all) continue;
      if (best && best->priority == e.priority) {
        w.error = "equal-priority overlap: " + EntryKey(*best) + " / " + EntryKey(e);
        return w;
      }
      if (!best || e.priority > best->priority) best = &e;
    }
    const std::vector<Action>& actions = best ? best->actions : prog.tables[table].default_actions;
    if (best) w.path.push_back(best);
    std::optional<TableId> next;
    for (const Action& a : actions) {
      if (const auto* s = std::get_if<SetFieldAction>(&a)) {
        const int idx = s->field == Field::kMetaSrcSet ? 0 : s->field == Field::kMetaDstSet ? 1 : 2;
        meta[idx] = (meta[idx] & ~s->mask) | (s->value & s->mask);
      } else if (const auto* g = std::get_if<GotoAction>(&a)) {
        next = g->table;
        break;
      } else if (std::holds_alternative<DropAction>(a)) {
        w.fate = Fate::kDrop;
        return w;
      } else if (std::holds_alternative<PuntAction>(a)) {
        w.fate = Fate::kPunt;
        return w;
      }
    }
    if (!next || *next <= table) {
      w.error = "no forward goto in table " + prog.tables[table].name;
      return w;
    }
    table = *next;
  }
  w.error = "too many steps";
  return w;
}

/// The fate alone; a walk error fails the test.
inline Fate FateOf(const Program& prog, const Packet& p) {
  Walk w = Trace(prog, p);
  EXPECT_EQ(w.error, "") << p.src.ToString() << " -> " << p.dst.ToString();
  return w.fate;
}

/// Allowed unless dropped or punted.
inline bool Allowed(const Program& prog, std::string_view src, std::string_view dst,
                    uint16_t port = 80, Protocol proto = Protocol::kTcp, uint32_t flags = 0) {
  return FateOf(prog, Packet{Ip(src), Ip(dst), proto, port, flags}) == Fate::kAllow;
}

/// Entries of the six policy tables.
inline size_t PolicyEntryCount(const Program& p) {
  size_t n = 0;
  for (TableId t = kTableEgressPod; t <= kTableIngressRule; ++t) n += p.entries[t].size();
  return n;
}

}  // namespace nicflow::flowtables::testing_policy
