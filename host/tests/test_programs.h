// Realistic programs for host tests, built with the compiler's ProgramBuilder: two versions of a
// small cluster whose delta touches groups and entries in several tables (endpoints added,
// a Service removed, one added, a Service gaining endpoints, a policy port range narrowed, a
// new pod), and the packets that exercise them.
#pragma once

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nicflow/flowtables/ir.h"
#include "nicflow/flowtables/pipeline.h"
#include "nicflow/flowtables/status.h"
#include "nicflow/sim/device.h"
#include "program_builder.h"

namespace nicflow::host::testing {

namespace ft = ::nicflow::flowtables;

inline ft::IpAddr Ip(std::string_view s) { return *ft::IpAddr::Parse(s); }
inline ft::IpPrefix Pfx(std::string_view s) { return *ft::IpPrefix::Parse(s); }
inline ft::Origin Svc(std::string name) { return {"Service", "shop", std::move(name), "port p"}; }

inline ft::SelectGroup Group(std::string name, std::vector<std::string> endpoints) {
  ft::SelectGroup g;
  g.name = std::move(name);
  g.hash_fields = {ft::Field::kIpv4Src, ft::Field::kIpv4Dst, ft::Field::kIpProto, ft::Field::kL4Src,
                   ft::Field::kL4Dst};
  g.origin = Svc(g.name);
  for (const auto& ep : endpoints) {
    auto [addr, port] = *ft::ParseEndpoint(ep);
    g.buckets.push_back({1, {ft::DnatAction{addr, port}}, ep});
  }
  return g;
}

inline void AddService(ft::ProgramBuilder& b, std::string_view vip, uint16_t port,
                       const std::string& group) {
  b.AddEntry(ft::kTableService, 100,
             {ft::MatchDstPrefix(Pfx(vip)), ft::MatchTernary(ft::Field::kIpProto, 6, 0xff),
              ft::MatchTernary(ft::Field::kL4Dst, port, 0xffff)},
             {ft::SetBits(ft::Field::kMetaFlags, ft::kFlagTranslated | ft::kFlagServiceHit,
                          ft::kFlagTranslated | ft::kFlagServiceHit),
              ft::GroupAction{group}, ft::GotoAction{ft::kTableMasqMark}},
             Svc(group));
}

/// version 1 or 2 of the cluster.
inline ft::Program ClusterProgram(int version) {
  ft::ProgramBuilder b;
  const ft::PortRef pod1{ft::PortRef::Kind::kPod, "shop/pod1"};
  const ft::PortRef pod2{ft::PortRef::Kind::kPod, "shop/pod2"};
  b.AddPort({pod1, {Ip("10.244.1.5")}});
  b.AddPort({{ft::PortRef::Kind::kHost, ""}, {Ip("192.168.0.2")}});
  b.AddPort({{ft::PortRef::Kind::kUplink, ""}, {}});
  // classify: pods are local traffic.
  b.AddEntry(ft::kTableClassify, 100,
             {ft::MatchTernary(ft::Field::kMetaPortClass,
                               static_cast<uint64_t>(ft::PortClass::kPod), 0xff)},
             {ft::SetBits(ft::Field::kMetaFlags, ft::kFlagLocalSrc, ft::kFlagLocalSrc),
              ft::GotoAction{ft::kTableConntrack}},
             {"nicflow", "", "classify", "local pods"});
  // Services.
  b.AddGroup(Group("svc/shop/web",
                   version == 1 ? std::vector<std::string>{"10.244.1.10:8080", "10.244.2.10:8080"}
                                : std::vector<std::string>{"10.244.1.10:8080", "10.244.2.10:8080",
                                                           "10.244.2.11:8080"}));
  AddService(b, "10.96.0.10/32", 80, "svc/shop/web");
  if (version == 1) {
    b.AddGroup(Group("svc/shop/api", {"10.244.2.20:9000"}));
    AddService(b, "10.96.0.20/32", 443, "svc/shop/api");
    b.AddEntry(
        ft::kTableService, 100,
        {ft::MatchDstPrefix(Pfx("10.96.0.30/32")), ft::MatchTernary(ft::Field::kIpProto, 6, 0xff),
         ft::MatchTernary(ft::Field::kL4Dst, 80, 0xffff)},
        {ft::RejectAction{}}, Svc("svc/shop/cart"));
  } else {
    b.AddGroup(Group("svc/shop/cart", {"10.244.1.30:8000"}));
    AddService(b, "10.96.0.30/32", 80, "svc/shop/cart");
    b.AddGroup(Group("svc/shop/db", {"10.244.2.40:5432", "10.244.1.40:5432"}));
    AddService(b, "10.96.0.40/32", 5432, "svc/shop/db");
  }
  // Egress policy of pod1: TCP to 10.244.2.0/24 on a port range.
  b.AddEntry(
      ft::kTableEgressPod, 100, {ft::MatchSrcPrefix(Pfx("10.244.1.5/32"))},
      {ft::SetBits(ft::Field::kMetaSrcSet, 7, 0xffffffff), ft::GotoAction{ft::kTableEgressPeer}},
      {"NetworkPolicy", "shop", "egress", "podSelector"});
  b.AddEntry(ft::kTableEgressPeer, 100,
             {ft::MatchExact(ft::Field::kMetaSrcSet, 7), ft::MatchDstPrefix(Pfx("10.244.2.0/24"))},
             {ft::SetBits(ft::Field::kMetaPeerBits, 1, 1), ft::GotoAction{ft::kTableEgressRule}},
             {"NetworkPolicy", "shop", "egress", "egress[0] to[0]"});
  b.AddEntry(
      ft::kTableEgressRule, 100,
      {ft::MatchExact(ft::Field::kMetaSrcSet, 7), ft::MatchTernary(ft::Field::kIpProto, 6, 0xff),
       ft::MatchRange(ft::Field::kL4Dst, 8000, version == 1 ? 9000 : 8080),
       ft::MatchTernary(ft::Field::kMetaPeerBits, 1, 1)},
      {ft::GotoAction{ft::kTableIngressPod}},
      {"NetworkPolicy", "shop", "egress", "egress[0] ports"});
  // Forwarding.
  b.AddEntry(ft::kTableForward, 24, {ft::MatchDstPrefix(Pfx("10.244.1.0/24"))},
             {ft::OutputAction{pod1}}, {"Pod", "shop", "pod1", ""});
  if (version == 2) {
    b.AddPort({pod2, {Ip("10.244.1.6")}});
    b.AddEntry(ft::kTableForward, 32, {ft::MatchDstPrefix(Pfx("10.244.1.6/32"))},
               {ft::OutputAction{pod2}}, {"Pod", "shop", "pod2", ""});
  }
  b.AddEntry(ft::kTableForward, 32, {ft::MatchDstPrefix(Pfx("192.168.0.2/32"))},
             {ft::OutputAction{{ft::PortRef::Kind::kHost, ""}}}, {"Node", "", "node-a", ""});
  auto p = std::move(b).Finish();
  if (!p.ok()) return {};
  return *std::move(p);
}

/// Packets that cross every changed part of the delta, from a pod and from the uplink.
inline std::vector<sim::TraceRequest> ClusterPackets() {
  std::vector<sim::TraceRequest> out;
  const std::vector<std::pair<std::string, uint16_t>> dsts = {
      {"10.96.0.10", 80},   {"10.96.0.20", 443},   {"10.96.0.30", 80},
      {"10.96.0.40", 5432}, {"10.244.2.10", 8080}, {"10.244.2.10", 8500},
      {"10.244.1.6", 80},   {"192.168.0.2", 22},   {"10.244.1.30", 8000}};
  for (const auto& [dst, port] : dsts) {
    for (const char* src : {"10.244.1.5", "203.0.113.7"}) {
      sim::TraceRequest r;
      r.in_port = std::string_view(src) == "10.244.1.5" ? sim::kInvalidPort : sim::kUplinkPort;
      r.src = Ip(src);
      r.src_port = 40000;
      r.dst = Ip(dst);
      r.dst_port = port;
      out.push_back(r);
    }
  }
  return out;
}

/// A packet's fate as one comparable string: verdict, every destination, ports, masquerade.
inline std::string Verdict(const sim::TraceResult& r) {
  return absl::StrCat(nicflow::Sv(sim::VerdictName(r.verdict)), " -> [",
                      absl::StrJoin(r.destinations, ","), "] via [",
                      absl::StrJoin(r.out_ports, ","), "]", r.masquerade ? " masq" : "");
}

/// Traces every packet through `nic`; pod-sourced packets enter on the VF of shop/pod1.
inline std::vector<std::string> Verdicts(const sim::SimNic& nic,
                                         const std::vector<sim::TraceRequest>& packets) {
  std::vector<std::string> out;
  for (sim::TraceRequest r : packets) {
    if (r.in_port == sim::kInvalidPort) {
      auto port = nic.FindPortByName("vf:shop/pod1");
      r.in_port = port.ok() ? *port : sim::kUplinkPort;
    }
    auto t = nic.Trace(r);
    out.push_back(t.ok() ? Verdict(*t) : std::string(t.status().message()));
  }
  return out;
}

}  // namespace nicflow::host::testing
