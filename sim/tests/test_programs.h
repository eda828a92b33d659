// Hand-built programs for the simulator tests: a small pipeline with the standard pipeline's
// shape (conntrack, ct_state, service, policy, snat, forward), independent of the compiler.
#pragma once

#include <string>
#include <vector>

#include "nicflow/flowtables/ir.h"
#include "nicflow/sim/classifier.h"
#include "nicflow/sim/packet.h"

namespace nicflow::sim::testing {

namespace ft = flowtables;

inline ft::IpAddr Ip(std::string_view s) { return *ft::IpAddr::Parse(s); }

inline ft::FieldMatch Exact(ft::Field f, uint64_t v) { return {f, ft::ExactMatch{U128::Of(v)}}; }
inline ft::FieldMatch ExactIp(ft::Field f, std::string_view ip) {
  return {f, ft::ExactMatch{U128::FromIp(Ip(ip))}};
}
inline ft::FieldMatch Lpm(ft::Field f, std::string_view cidr) {
  const ft::IpPrefix p = *ft::IpPrefix::Parse(cidr);
  return {f, ft::LpmMatch{U128::FromIp(p.addr), p.prefix_len_bits}};
}
inline ft::FieldMatch Ternary(ft::Field f, uint64_t v, uint64_t m) {
  return {f, ft::TernaryMatch{U128::Of(v & m), U128::Of(m)}};
}
inline ft::FieldMatch Range(ft::Field f, uint64_t lo, uint64_t hi) {
  return {f, ft::RangeMatch{U128::Of(lo), U128::Of(hi)}};
}

enum MiniTable : ft::TableId {
  kMiniCt = 0,
  kMiniCtState,
  kMiniService,
  kMiniPolicy,
  kMiniSnat,
  kMiniForward,
  kMiniTableCount
};

struct MiniPod {
  std::string name;  // "ns/pod"
  std::string ip;
};

inline ft::Entry MakeEntry(ft::TableId t, int32_t prio, std::vector<ft::FieldMatch> m,
                           std::vector<ft::Action> a, std::string origin_name = "test") {
  ft::Entry e{t, prio, std::move(m), std::move(a), {"Test", "", std::move(origin_name), ""}};
  ft::CanonicalizeMatch(e);
  return e;
}

/// The schemas of the mini pipeline.
inline std::vector<ft::TableSchema> MiniSchemas() {
  using F = ft::Field;
  using K = ft::MatchKind;
  std::vector<ft::TableSchema> t(kMiniTableCount);
  t[kMiniCt] = {kMiniCt,
                "conntrack",
                {{F::kInPort, K::kExact}},
                {ft::CtLookupAction{}, ft::GotoAction{kMiniCtState}},
                "ct lookup"};
  t[kMiniCtState] = {kMiniCtState,
                     "ct_state",
                     {{F::kCtState, K::kTernary}},
                     {ft::GotoAction{kMiniService}},
                     "skip known connections"};
  t[kMiniService] = {kMiniService,
                     "service",
                     {{F::kIpv4Dst, K::kExact}, {F::kIpProto, K::kExact}, {F::kL4Dst, K::kExact}},
                     {ft::GotoAction{kMiniPolicy}},
                     "service frontends"};
  t[kMiniPolicy] = {kMiniPolicy,
                    "policy",
                    {{F::kIpv4Src, K::kLpm}, {F::kIpv4Dst, K::kLpm}, {F::kL4Dst, K::kRange}},
                    {ft::GotoAction{kMiniSnat}},
                    "deny rules"};
  t[kMiniSnat] = {kMiniSnat,
                  "snat",
                  {{F::kIpv4Dst, K::kLpm}},
                  {ft::CtCommitAction{}, ft::GotoAction{kMiniForward}},
                  "masquerade"};
  t[kMiniForward] = {
      kMiniForward, "forward", {{F::kIpv4Dst, K::kLpm}}, {ft::DropAction{}}, "output"};
  return t;
}

/// A program: Service `vip:port/tcp` load-balanced over `backends` (pods, port 8080), pods
/// reachable through their VFs, other 10.0.0.0/8 traffic to the uplink, a policy dropping
/// `denied_src` -> anything, masquerade of traffic leaving 10.0.0.0/8 to `node_ip`.
inline ft::Program MiniProgram(const std::vector<MiniPod>& pods, const std::string& vip,
                               uint16_t port, const std::vector<std::string>& backends,
                               const std::string& denied_src = "",
                               std::optional<uint32_t> affinity_s = std::nullopt,
                               const std::string& node_ip = "192.168.0.2") {
  using F = ft::Field;
  ft::Program p;
  p.tables = MiniSchemas();
  p.entries.resize(kMiniTableCount);
  p.entries[kMiniCtState].push_back(MakeEntry(
      kMiniCtState, 20, {Ternary(F::kCtState, ft::kCtInv, ft::kCtInv)}, {ft::DropAction{}}));
  p.entries[kMiniCtState].push_back(MakeEntry(kMiniCtState, 10,
                                              {Ternary(F::kCtState, ft::kCtEst, ft::kCtEst)},
                                              {ft::GotoAction{kMiniForward}}));
  ft::SelectGroup g;
  g.name = "svc/test/web";
  g.hash_fields = {F::kIpv4Src, F::kIpv4Dst, F::kIpProto, F::kL4Src, F::kL4Dst};
  g.affinity_timeout_s = affinity_s;
  g.origin = {"Service", "test", "web", "port http"};
  for (const std::string& b : backends) {
    g.buckets.push_back({1, {ft::DnatAction{Ip(b), 8080}}, b + ":8080"});
  }
  if (!backends.empty()) {
    p.groups.push_back(g);
    p.entries[kMiniService].push_back(MakeEntry(
        kMiniService, 100,
        {ExactIp(F::kIpv4Dst, vip), Exact(F::kIpProto, kProtoTcp), Exact(F::kL4Dst, port)},
        {ft::GroupAction{g.name}, ft::GotoAction{kMiniPolicy}}, "web"));
  } else {
    p.entries[kMiniService].push_back(MakeEntry(
        kMiniService, 100,
        {ExactIp(F::kIpv4Dst, vip), Exact(F::kIpProto, kProtoTcp), Exact(F::kL4Dst, port)},
        {ft::RejectAction{}}, "web"));
  }
  if (!denied_src.empty()) {
    p.entries[kMiniPolicy].push_back(MakeEntry(
        kMiniPolicy, 100, {Lpm(F::kIpv4Src, denied_src + "/32")}, {ft::DropAction{}}, "deny"));
  }
  p.entries[kMiniSnat].push_back(MakeEntry(kMiniSnat, 8, {Lpm(F::kIpv4Dst, "10.0.0.0/8")},
                                           {ft::CtCommitAction{}, ft::GotoAction{kMiniForward}}));
  p.entries[kMiniSnat].push_back(MakeEntry(kMiniSnat, 0, {Lpm(F::kIpv4Dst, "0.0.0.0/0")},
                                           {ft::SnatAction{Ip(node_ip), 30000, 30009},
                                            ft::CtCommitAction{}, ft::GotoAction{kMiniForward}}));
  for (const MiniPod& pod : pods) {
    ft::PortRef ref{ft::PortRef::Kind::kPod, pod.name};
    p.ports.push_back({ref, {Ip(pod.ip)}});
    p.entries[kMiniForward].push_back(MakeEntry(
        kMiniForward, 32, {Lpm(F::kIpv4Dst, pod.ip + "/32")}, {ft::OutputAction{ref}}, pod.name));
  }
  p.entries[kMiniForward].push_back(MakeEntry(kMiniForward, 0, {Lpm(F::kIpv4Dst, "0.0.0.0/0")},
                                              {ft::OutputAction{{ft::PortRef::Kind::kUplink, ""}}},
                                              "default route"));
  return p;
}

}  // namespace nicflow::sim::testing
