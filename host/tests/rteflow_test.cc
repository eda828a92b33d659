// The rte_flow lowering, executed: rule arrays run in RteFlowSim must give every packet the same
// fate as the program run directly in the simulator.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>

#include "absl/strings/str_join.h"
#include "nicflow/host/rteflow.h"
#include "nicflow/host/software_path.h"
#include "rteflow_lower.h"
#include "rteflow_sim.h"
#include "test_programs.h"

namespace nicflow::host {
namespace {

namespace ft = ::nicflow::flowtables;
using testing::ClusterPackets;
using testing::ClusterProgram;
using ::testing::HasSubstr;
using testing::Ip;

std::vector<std::string> Sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

// The comparable fate of a simulator trace and of an rte_flow trace.
std::string Fate(const sim::TraceResult& r) {
  return absl::StrCat(Sv(sim::VerdictName(r.verdict)), " [",
                      absl::StrJoin(Sorted(r.destinations), ","), "] [",
                      absl::StrJoin(Sorted(r.out_ports), ","), "]", r.masquerade ? " masq" : "");
}
std::string Fate(const RteFlowTraceResult& r) {
  return absl::StrCat(r.verdict, " [", absl::StrJoin(Sorted(r.destinations), ","), "] [",
                      absl::StrJoin(Sorted(r.out_ports), ","), "]", r.masquerade ? " masq" : "");
}

absl::StatusOr<rteflow::RuleSet> LowerPlaced(const ft::Program& p,
                                             const rteflow::LowerOptions& lo = {}) {
  auto placed = Place(RteFlowCapabilities(), p, "rteflow");
  if (!placed.ok()) return placed.status();
  return rteflow::Lower(placed->device, lo);
}

// Runs `req` both ways and expects the same fate.
void ExpectSameFate(const ft::Program& p, sim::TraceRequest req, const std::string& what) {
  SoftwarePath sw(p);
  auto nic = sw.Plain();
  ASSERT_TRUE(nic.ok()) << nic.status();
  auto direct = (*nic)->Trace(req);
  ASSERT_TRUE(direct.ok()) << what << ": " << direct.status();
  auto lowered = TraceRteFlow(p, req);
  ASSERT_TRUE(lowered.ok()) << what << ": " << lowered.status();
  EXPECT_EQ(Fate(*lowered), Fate(*direct)) << what << "\n" << lowered->ToText();
}

TEST(RteFlowLowering, ClusterPacketsHaveTheSameFateAsInTheSimulator) {
  for (int version : {1, 2}) {
    const ft::Program p = ClusterProgram(version);
    ASSERT_FALSE(p.tables.empty());
    SoftwarePath sw(p);
    auto nic = sw.Plain();
    ASSERT_TRUE(nic.ok());
    for (sim::TraceRequest r : ClusterPackets()) {
      if (r.in_port == sim::kInvalidPort) r.in_port = *(*nic)->FindPortByName("vf:shop/pod1");
      ExpectSameFate(p, r,
                     absl::StrCat("v", version, " ", r.src.ToString(), " -> ", r.dst.ToString(),
                                  ":", r.dst_port));
    }
  }
}

TEST(RteFlowLowering, TablesAreGroupsAndHigherIrPriorityIsLowerRteFlowPriority) {
  const ft::Program p = ClusterProgram(1);
  auto rs = LowerPlaced(p);
  ASSERT_TRUE(rs.ok()) << rs.status();
  EXPECT_EQ(rs->table_groups, p.tables.size());
  // forward: /32 host route (IR 32) above the /24 (IR 24), default catch-all below both.
  std::map<int32_t, uint32_t> prio;
  uint32_t default_prio = 0;
  for (const auto& r : rs->rules) {
    if (r.attr.group != ft::kTableForward) continue;
    if (r.role == rteflow::RuleRole::kDefault) default_prio = r.attr.priority;
    if (r.role == rteflow::RuleRole::kEntry) prio[r.ir_priority] = r.attr.priority;
  }
  EXPECT_LT(prio.at(32), prio.at(24));
  EXPECT_GT(default_prio, prio.at(24));
}

TEST(RteFlowLowering, SelectGroupBecomesWeightedHashBuckets) {
  ft::ProgramBuilder b;
  ft::SelectGroup g = testing::Group("svc/w", {"10.244.1.1:80", "10.244.1.2:80"});
  g.buckets[0].weight = 3;
  g.buckets[1].weight = 1;
  b.AddGroup(g);
  testing::AddService(b, "10.96.0.1/32", 80, "svc/w");
  auto p = std::move(b).Finish();
  ASSERT_TRUE(p.ok()) << p.status();
  rteflow::LowerOptions lo;
  lo.select_extra_bits = 2;
  auto rs = rteflow::Lower(*p, lo);
  ASSERT_TRUE(rs.ok()) << rs.status();
  std::vector<std::string> notes;
  for (const auto& r : rs->rules) {
    if (r.role != rteflow::RuleRole::kSelectBucket) continue;
    notes.push_back(r.note);
    // Buckets match the low bits of the TCP source port, as aligned blocks of slots.
    EXPECT_THAT(rteflow::PatternToString(r), HasSubstr("tcp src spec"));
  }
  // 3/4 of 2^3 slots: [0,4) and [4,6) for the first endpoint, [6,8) for the second.
  EXPECT_THAT(notes, ::testing::ElementsAre(HasSubstr("slots 0-3 of 8 -> 10.244.1.1:80"),
                                            HasSubstr("slots 4-5 of 8 -> 10.244.1.1:80"),
                                            HasSubstr("slots 6-7 of 8 -> 10.244.1.2:80")));
  // And the model spreads source ports 3:1.
  auto model = rteflow::RteFlowSim::Create(*rs);
  ASSERT_TRUE(model.ok()) << model.status();
  std::map<std::string, int> hits;
  for (uint16_t sport = 1000; sport < 1800; ++sport) {
    sim::PacketSpec spec;
    spec.src = Ip("203.0.113.1");
    spec.dst = Ip("10.96.0.1");
    spec.src_port = sport;
    spec.dst_port = 80;
    auto frame = sim::BuildPacket(spec);
    sim::ParsedPacket parsed;
    ASSERT_EQ(sim::ParsePacket(*frame, parsed), sim::ParseError::kNone);
    auto res = model->Run(rteflow::PacketFromParsed(parsed));
    hits[sim::AddrFromU128(res.packet.fields.get(ft::Field::kIpv4Dst), false).ToString()]++;
  }
  EXPECT_EQ(hits["10.244.1.1"], 600);
  EXPECT_EQ(hits["10.244.1.2"], 200);
}

TEST(RteFlowLowering, RangeMatchUsesLastAndTheModelHonoursIt) {
  const ft::Program p = ClusterProgram(1);
  auto rs = LowerPlaced(p);
  ASSERT_TRUE(rs.ok());
  bool found = false;
  for (const auto& r : rs->rules) {
    if (r.attr.group == ft::kTableEgressRule && r.role == rteflow::RuleRole::kEntry) {
      EXPECT_THAT(rteflow::PatternToString(r), HasSubstr("dst spec 8000 dst last 9000"));
      found = true;
    }
  }
  EXPECT_TRUE(found);
}

TEST(RteFlowLowering, RejectAndSnatAreRefusedUnlessPlacedAsPunts) {
  ft::Program p = ClusterProgram(1);  // has a REJECT Service
  auto direct = rteflow::Lower(p, {});
  ASSERT_FALSE(direct.ok());
  EXPECT_EQ(direct.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(std::string(direct.status().message()), HasSubstr("reject"));
  auto placed = Place(RteFlowCapabilities(), p, "rteflow");
  ASSERT_TRUE(placed.ok());
  EXPECT_TRUE(rteflow::Lower(placed->device, {}).ok());
}

TEST(RteFlowLowering, PortClassMatchesAreDecidedPerIngressPort) {
  const ft::Program p = ClusterProgram(1);
  auto Count = [&](ft::PortClass c) {
    rteflow::LowerOptions lo;
    lo.port_class = c;
    auto rs = LowerPlaced(p, lo);
    size_t n = 0;
    for (const auto& r : rs->rules) n += r.attr.group == ft::kTableClassify;
    return n;
  };
  EXPECT_EQ(Count(ft::PortClass::kPod), 2u);  // the pod entry and the default
  EXPECT_EQ(Count(ft::PortClass::kUplink), 1u);
}

TEST(RteFlowSimModel, RefusesMasksOnFieldsItDoesNotModel) {
  rteflow::RuleSet rs;
  rteflow::Rule r;
  auto* spec = rs.arena->New<rte_flow_item_ipv4>();
  auto* mask = rs.arena->New<rte_flow_item_ipv4>();
  mask->hdr.time_to_live = 0xff;
  r.pattern = {{RTE_FLOW_ITEM_TYPE_IPV4, spec, nullptr, mask},
               {RTE_FLOW_ITEM_TYPE_END, nullptr, nullptr, nullptr}};
  r.actions = {{RTE_FLOW_ACTION_TYPE_DROP, nullptr}, {RTE_FLOW_ACTION_TYPE_END, nullptr}};
  rs.rules.push_back(std::move(r));
  auto model = rteflow::RteFlowSim::Create(rs);
  ASSERT_FALSE(model.ok());
  EXPECT_THAT(std::string(model.status().message()), HasSubstr("not modelled"));
}

TEST(RteFlowTrace, ReportsRulesHitAndSoftwareContinuation) {
  const ft::Program p = ClusterProgram(1);
  sim::TraceRequest req;
  req.in_port = sim::kUplinkPort;
  req.src = Ip("203.0.113.7");
  req.src_port = 40000;
  req.dst = Ip("10.96.0.30");  // REJECT: punted, finished in software
  req.dst_port = 80;
  auto t = TraceRteFlow(p, req);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->verdict, "reject");
  ASSERT_FALSE(t->paths.empty());
  EXPECT_TRUE(t->paths[0].punted);
  EXPECT_EQ(t->paths[0].punt_table, "service");
  EXPECT_FALSE(t->paths[0].rules.empty());
  EXPECT_EQ(t->paths[0].rules[0].group, 0u);
  const auto j = t->ToJson();
  EXPECT_EQ(j["verdict"], "reject");
  EXPECT_THAT(t->ToText(), HasSubstr("punted to software at table service"));

  req.dst = Ip("10.96.0.10");  // load balanced in hardware
  auto lb = TraceRteFlow(p, req);
  ASSERT_TRUE(lb.ok());
  EXPECT_EQ(lb->verdict, "forward");
  EXPECT_EQ(Sorted(lb->destinations),
            (std::vector<std::string>{"10.244.1.10:8080", "10.244.2.10:8080"}));
  EXPECT_FALSE(lb->paths[0].punted);
}

// The ethdev port each pod's forward rule outputs to, from the testpmd form of the rules.
std::string PodOutputs(const rteflow::RuleSet& rs) {
  std::vector<std::string> out;
  for (const rteflow::Rule& r : rs.rules) {
    if (r.origin.rfind("Pod ", 0) != 0) continue;
    const std::string line = rteflow::RuleToTestpmd(r, 0);
    const size_t at = line.find("represented_port ethdev_port_id ");
    if (at == std::string::npos) continue;
    out.push_back(
        absl::StrCat(r.origin, "->", line.substr(at + 32, line.find(' ', at + 32) - at - 32)));
  }
  return absl::StrJoin(Sorted(out), ",");
}

TEST(RteFlowLowering, PodsOutputToTheRepresentorOfTheirVf) {
  auto placed = Place(RteFlowCapabilities(), ClusterProgram(2), "rteflow");
  ASSERT_TRUE(placed.ok()) << placed.status();
  const ft::PortRef pod1{ft::PortRef::Kind::kPod, "shop/pod1"};
  const ft::PortRef pod2{ft::PortRef::Kind::kPod, "shop/pod2"};
  const std::map<std::string, uint16_t> vf_ports = {
      {"0000:3b:00.2", 7}, {"0000:3b:00.3", 9}, {"0000:3b:00.4", 11}};
  rteflow::LowerOptions lo;
  lo.outputs = rteflow::DefaultOutputs(placed->device);
  rteflow::BindVfOutputs({{pod1, {}, "0000:3b:00.2"}, {pod2, {}, "0000:3b:00.3"}}, vf_ports,
                         lo.outputs);
  auto rs = rteflow::Lower(placed->device, lo);
  ASSERT_TRUE(rs.ok()) << rs.status();
  EXPECT_EQ(PodOutputs(*rs), "Pod shop/pod1->7,Pod shop/pod2->9");

  // pod1 moved to VF .4: its rule outputs to that VF's representor, pod2's is unchanged.
  rteflow::BindVfOutputs({{pod1, {}, "0000:3b:00.4"}, {pod2, {}, "0000:3b:00.3"}}, vf_ports,
                         lo.outputs);
  rs = rteflow::Lower(placed->device, lo);
  ASSERT_TRUE(rs.ok()) << rs.status();
  EXPECT_EQ(PodOutputs(*rs), "Pod shop/pod1->11,Pod shop/pod2->9");

  // A pod whose VF has no representor gets no guessed port.
  rteflow::BindVfOutputs({{pod1, {}, "0000:3b:00.4"}, {pod2, {}, "0000:3b:00.9"}}, vf_ports,
                         lo.outputs);
  rs = rteflow::Lower(placed->device, lo);
  ASSERT_FALSE(rs.ok());
  EXPECT_THAT(rs.status().message(), HasSubstr("output port vf:shop/pod2 has no ethdev port"));
}

TEST(RteFlowExport, PrintsTestpmdFlowCreateLines) {
  RteFlowLowerOptions o;
  o.ethdev_port_id = 3;
  auto lines = ExportTestpmd(ClusterProgram(2), o);
  ASSERT_TRUE(lines.ok()) << lines.status();
  ASSERT_GT(lines->size(), 20u);
  EXPECT_THAT((*lines)[0], HasSubstr("set sample_actions 0"));
  for (size_t i = 1; i < lines->size(); ++i) {
    EXPECT_THAT((*lines)[i], ::testing::StartsWith("flow create 3 group "));
    EXPECT_THAT((*lines)[i], ::testing::EndsWith("/ end"));
  }
  const std::string all = absl::StrJoin(*lines, "\n");
  EXPECT_THAT(all, HasSubstr("set_ipv4_dst ipv4_addr 10.244.2.11"));
  EXPECT_THAT(all, HasSubstr("set_tp_dst port 8080"));
  EXPECT_THAT(all, HasSubstr("jump group 1"));
  EXPECT_THAT(all, HasSubstr("represented_port ethdev_port_id"));
  EXPECT_THAT(all, HasSubstr("tag data spec 0x7 data mask 0xffffffff index is 1"));
}

}  // namespace
}  // namespace nicflow::host
