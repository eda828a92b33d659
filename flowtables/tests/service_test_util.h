// Test helpers for the service and NAT stages: build intent values directly, compile one stage,
// and look packets up in a table with a small reference matcher (highest-priority matching entry,
// a mentioned field the packet lacks never matches), so tests state behaviour per packet.
#pragma once

#include <algorithm>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gtest/gtest.h"
#include "nicflow/flowtables/compiler.h"
#include "nicflow/flowtables/ir.h"
#include "nicflow/flowtables/model.h"
#include "nicflow/flowtables/pipeline.h"

namespace nicflow::flowtables::testing {

inline IpAddr Ip(std::string_view s) {
  auto a = IpAddr::Parse(s);
  EXPECT_TRUE(a.ok()) << s;
  return a.ok() ? *a : IpAddr{};
}

inline IpPrefix Cidr(std::string_view s) {
  auto p = IpPrefix::Parse(s);
  EXPECT_TRUE(p.ok()) << s;
  return p.ok() ? *p : IpPrefix{};
}

/// node-a: 192.168.0.2 / 2001:db8::2, pods 10.244.1.0/24, cluster 10.244.0.0/16 (+ IPv6),
/// services 10.96.0.0/16 and fd00:96::/112.
inline NodeFacts TestNode() {
  NodeFacts n;
  n.name = "node-a";
  n.ips = {Ip("192.168.0.2"), Ip("2001:db8::2")};
  n.pod_cidrs = {Cidr("10.244.1.0/24"), Cidr("fd00:244:1::/64")};
  n.cluster_cidrs = {Cidr("10.244.0.0/16"), Cidr("fd00:244::/48")};
  n.service_cidrs = {Cidr("10.96.0.0/16"), Cidr("fd00:96::/112")};
  return n;
}

inline ServicePort Port(std::string name, uint16_t port, TargetPort target = uint16_t{0},
                        Protocol proto = Protocol::kTcp, uint16_t node_port = 0) {
  ServicePort p;
  p.name = std::move(name);
  p.port = port;
  p.target_port = std::move(target);
  p.protocol = proto;
  p.node_port = node_port;
  return p;
}

inline Service MakeService(std::string ns, std::string name, std::vector<std::string> cluster_ips,
                           std::vector<ServicePort> ports) {
  Service s;
  s.ns = std::move(ns);
  s.name = std::move(name);
  for (const auto& ip : cluster_ips) s.cluster_ips.push_back(Ip(ip));
  s.ports = std::move(ports);
  s.selector = Labels{{"app", s.name}};
  return s;
}

inline Endpoint Ep(std::string ip, std::string node, bool ready = true, bool serving = true,
                   bool terminating = false) {
  Endpoint e;
  e.addresses = {Ip(ip)};
  e.node_name = std::move(node);
  e.ready = ready;
  e.serving = serving;
  e.terminating = terminating;
  return e;
}

inline EndpointSlice MakeSlice(std::string ns, std::string name, std::string service,
                               std::vector<Endpoint> eps, std::vector<EndpointPort> ports,
                               IpFamily family = IpFamily::kV4) {
  EndpointSlice s;
  s.ns = std::move(ns);
  s.name = std::move(name);
  s.service_name = std::move(service);
  s.family = family;
  s.endpoints = std::move(eps);
  s.ports = std::move(ports);
  return s;
}

inline EndpointPort EpPort(std::string name, uint16_t port, Protocol proto = Protocol::kTcp) {
  return EndpointPort{std::move(name), proto, port};
}

inline Pod MakePod(std::string ns, std::string name, std::string node,
                   std::vector<std::string> ips) {
  Pod p;
  p.ns = std::move(ns);
  p.name = std::move(name);
  p.node_name = std::move(node);
  for (const auto& ip : ips) p.ips.push_back(Ip(ip));
  return p;
}

/// A packet as the stages see it: header fields and metadata.
struct Packet {
  IpAddr src;
  IpAddr dst;
  Protocol proto = Protocol::kTcp;
  uint16_t dport = 0;
  uint32_t flags = 0;
  PortClass port_class = PortClass::kUplink;
  uint8_t ct_state = 0;

  std::map<Field, U128> Fields() const {
    std::map<Field, U128> f;
    f[src.is_v4() ? Field::kIpv4Src : Field::kIpv6Src] = U128::FromIp(src);
    f[dst.is_v4() ? Field::kIpv4Dst : Field::kIpv6Dst] = U128::FromIp(dst);
    f[Field::kIpProto] = U128::Of(static_cast<uint8_t>(proto));
    f[Field::kL4Dst] = U128::Of(dport);
    f[Field::kMetaFlags] = U128::Of(flags);
    f[Field::kMetaPortClass] = U128::Of(static_cast<uint8_t>(port_class));
    f[Field::kCtState] = U128::Of(ct_state);
    return f;
  }
};

inline Packet Pkt(std::string_view src, std::string_view dst, uint16_t dport, uint32_t flags = 0,
                  Protocol proto = Protocol::kTcp) {
  Packet p;
  p.src = Ip(src);
  p.dst = Ip(dst);
  p.dport = dport;
  p.flags = flags;
  p.proto = proto;
  return p;
}

inline bool FieldMatches(const FieldMatch& m, const std::map<Field, U128>& fields) {
  auto it = fields.find(m.field);
  if (it == fields.end()) return false;
  const U128 v = it->second;
  const int width = GetFieldInfo(m.field).width_bits;
  return std::visit(
      [&](const auto& mv) {
        using T = std::decay_t<decltype(mv)>;
        if constexpr (std::is_same_v<T, ExactMatch>) {
          return v == mv.value;
        } else if constexpr (std::is_same_v<T, TernaryMatch>) {
          return (v & mv.mask) == mv.value;
        } else if constexpr (std::is_same_v<T, LpmMatch>) {
          return (v & U128::PrefixMask(width, mv.prefix_len_bits)) == mv.value;
        } else {
          return mv.lo <= v && v <= mv.hi;
        }
      },
      m.value);
}

/// The entry of `table` a packet hits, or nullptr on a miss. Fails the test on a priority tie.
inline const Entry* Lookup(const Program& p, TableId table, const Packet& pkt) {
  const auto fields = pkt.Fields();
  const Entry* best = nullptr;
  for (const Entry& e : p.entries[table]) {
    if (!std::all_of(e.match.begin(), e.match.end(),
                     [&](const FieldMatch& m) { return FieldMatches(m, fields); })) {
      continue;
    }
    if (best != nullptr && best->priority == e.priority) {
      ADD_FAILURE() << "overlapping entries at priority " << e.priority << ": "
                    << MatchesToString(best->match) << " and " << MatchesToString(e.match);
    }
    if (best == nullptr || e.priority > best->priority) best = &e;
  }
  return best;
}

template <typename A>
const A* FindAction(const std::vector<Action>& actions) {
  for (const Action& a : actions) {
    if (const A* x = std::get_if<A>(&a)) return x;
  }
  return nullptr;
}

template <typename A>
const A* FindAction(const Entry* e) {
  return e == nullptr ? nullptr : FindAction<A>(e->actions);
}

/// The flags an entry sets (0 when it sets none).
inline uint32_t FlagsSet(const Entry* e) {
  if (e == nullptr) return 0;
  uint32_t out = 0;
  for (const Action& a : e->actions) {
    if (const auto* s = std::get_if<SetFieldAction>(&a); s && s->field == Field::kMetaFlags) {
      out |= static_cast<uint32_t>(s->value.lo);
    }
  }
  return out;
}

inline bool IsReject(const Entry* e) { return FindAction<RejectAction>(e) != nullptr; }
inline bool IsDrop(const Entry* e) { return FindAction<DropAction>(e) != nullptr; }

/// The group an entry load-balances through, or nullptr.
inline const SelectGroup* GroupOf(const Program& p, const Entry* e) {
  const GroupAction* g = FindAction<GroupAction>(e);
  return g == nullptr ? nullptr : p.FindGroup(g->group);
}

/// "ip:port" labels of a group's buckets, sorted.
inline std::vector<std::string> Backends(const SelectGroup* g) {
  std::vector<std::string> out;
  if (g == nullptr) return out;
  for (const Bucket& b : g->buckets) out.push_back(b.label);
  std::sort(out.begin(), out.end());
  return out;
}

inline std::vector<std::string> Backends(const Program& p, const Entry* e) {
  return Backends(GroupOf(p, e));
}

}  // namespace nicflow::flowtables::testing
