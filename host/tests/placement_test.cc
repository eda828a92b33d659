// Placement: what goes to the device and what stays in software, and the proof that a program
// split by placement gives every packet the same fate as the program unsplit.
#include "nicflow/host/placement.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "nicflow/host/sim_device.h"
#include "nicflow/host/software_path.h"
#include "test_programs.h"

namespace nicflow::host {
namespace {

namespace ft = ::nicflow::flowtables;
using testing::ClusterPackets;
using testing::ClusterProgram;
using ::testing::HasSubstr;

const TablePlacement& TableOf(const PlacementReport& r, std::string_view name) {
  for (const auto& t : r.tables) {
    if (t.name == name) return t;
  }
  static TablePlacement none;
  return none;
}

TEST(Placement, UnlimitedDeviceHoldsEverythingAsIs) {
  const ft::Program p = ClusterProgram(1);
  auto placed = Place(Capabilities::Unlimited(), p, "big");
  ASSERT_TRUE(placed.ok()) << placed.status();
  EXPECT_EQ(placed->report.EntriesOnDevice(), p.EntryCount());
  EXPECT_EQ(placed->report.EntriesInSoftware(), 0u);
  EXPECT_TRUE(ft::Diff(p, placed->device)->empty());
  for (const auto& t : placed->report.tables) EXPECT_EQ(t.where, Where::kDevice);
}

TEST(Placement, MissingActionsBecomePuntEntriesWithTheSameMatch) {
  Capabilities caps = Capabilities::Unlimited();
  caps.actions[static_cast<size_t>(ft::ActionKind::kReject)] = false;
  const ft::Program p = ClusterProgram(1);
  auto placed = Place(caps, p);
  ASSERT_TRUE(placed.ok());
  const auto& svc = TableOf(placed->report, "service");
  EXPECT_EQ(svc.where, Where::kSplit);
  EXPECT_EQ(svc.punt_entries, 1u);
  EXPECT_THAT(svc.reasons, ::testing::Contains(HasSubstr("no reject action")));
  size_t punts = 0;
  for (const auto& e : placed->device.entries[ft::kTableService]) {
    punts += std::holds_alternative<ft::PuntAction>(e.actions[0]);
  }
  EXPECT_EQ(punts, 1u);
}

TEST(Placement, CapacityCutsATableAtAPriorityBoundaryWithACatchAllPunt) {
  Capabilities caps = Capabilities::Unlimited();
  caps.table_capacity["service"] = 2;  // 3 entries: one fits, plus the catch-all
  auto placed = Place(caps, ClusterProgram(1));
  ASSERT_TRUE(placed.ok());
  const auto& svc = TableOf(placed->report, "service");
  EXPECT_EQ(svc.on_device, 1u);
  EXPECT_EQ(svc.in_software, 2u);
  EXPECT_TRUE(svc.catch_all_punt);
  EXPECT_THAT(svc.reasons, ::testing::Contains(HasSubstr("capacity 2")));
  const auto& dev = placed->device.entries[ft::kTableService];
  ASSERT_EQ(dev.size(), 2u);
  EXPECT_EQ(dev.back().priority, kCatchAllPuntPriority);
  EXPECT_TRUE(dev.back().match.empty());
}

TEST(Placement, UnsupportedMatchKindCutsTheTableThere) {
  Capabilities caps = Capabilities::Unlimited();
  caps.match_kinds[static_cast<size_t>(ft::MatchKind::kRange)] = false;
  auto placed = Place(caps, ClusterProgram(1));
  ASSERT_TRUE(placed.ok());
  const auto& rule = TableOf(placed->report, "egress_rule");
  EXPECT_EQ(rule.where, Where::kSoftware);
  EXPECT_THAT(rule.reasons, ::testing::Contains(HasSubstr("no range match")));
}

TEST(Placement, GroupsTheDeviceCannotSelectStayInSoftware) {
  Capabilities caps = Capabilities::Unlimited();
  caps.max_group_buckets = 2;
  auto placed = Place(caps, ClusterProgram(2));  // svc/shop/web has 3 buckets
  ASSERT_TRUE(placed.ok());
  bool found = false;
  for (const auto& g : placed->report.groups) {
    if (g.name == "svc/shop/web") {
      EXPECT_EQ(g.where, Where::kSoftware);
      EXPECT_THAT(g.reason, HasSubstr("3 buckets > device maximum 2"));
      found = true;
    }
  }
  EXPECT_TRUE(found);
  EXPECT_EQ(placed->device.FindGroup("svc/shop/web"), nullptr);
  EXPECT_NE(placed->device.FindGroup("svc/shop/db"), nullptr);
}

TEST(Placement, ReportReadsAsTextAndJson) {
  auto placed =
      Place(CapabilitiesFromProfile(*sim::BuiltinProfile("e810")), ClusterProgram(1), "sim:e810");
  ASSERT_TRUE(placed.ok());
  const std::string text = placed->report.ToText();
  EXPECT_THAT(text, HasSubstr("placement on sim:e810"));
  EXPECT_THAT(text, HasSubstr("conntrack"));
  EXPECT_THAT(text, HasSubstr("no ct_lookup action"));
  const auto j = placed->report.ToJson();
  EXPECT_EQ(j["device"], "sim:e810");
  EXPECT_EQ(j["tables"].size(), ft::kStandardTableCount);
}

// The device cannot report src_set/dst_set/peer_bits of a punted trace path (sim::TracePath
// carries ct_state and meta.flags only), so they are replayed from the entries the path hit.
PuntRegisters RegistersOf(const ft::Program& device, const sim::TracePath& path) {
  PuntRegisters regs{path.meta_flags, 0, 0, 0, path.ct_state};
  for (const sim::TraceStep& st : path.steps) {
    const std::vector<ft::Action>* actions = &device.tables[st.table_id].default_actions;
    for (const ft::Entry& e : device.entries[st.table_id]) {
      if (!st.miss && e.priority == st.priority && ft::MatchesToString(e.match) == st.match) {
        actions = &e.actions;
      }
    }
    for (const ft::Action& a : *actions) {
      const auto* s = std::get_if<ft::SetFieldAction>(&a);
      if (s == nullptr) continue;
      uint32_t* reg = s->field == ft::Field::kMetaSrcSet     ? &regs.src_set
                      : s->field == ft::Field::kMetaDstSet   ? &regs.dst_set
                      : s->field == ft::Field::kMetaPeerBits ? &regs.peer_bits
                                                             : nullptr;
      if (reg != nullptr) {
        *reg = static_cast<uint32_t>((*reg & ~s->mask.lo) | (s->value.lo & s->mask.lo));
      }
    }
  }
  return regs;
}

std::string SplitFate(SimDevice& dev, const ft::Program& full, SoftwarePath& sw,
                      sim::TraceRequest req) {
  auto t = dev.nic().Trace(req);
  if (!t.ok()) return std::string(t.status().message());
  std::vector<std::string> fates;
  for (const sim::TracePath& path : t->paths) {
    if (path.verdict != sim::Verdict::kPunt) {
      fates.push_back(absl::StrCat(Sv(sim::VerdictName(path.verdict)), " ",
                                   ft::FormatEndpoint(path.dst, path.dst_port), " ",
                                   path.out_port_name, path.masquerade ? " masq" : ""));
      continue;
    }
    const ft::TableId table = path.steps.back().table_id;
    sim::TraceRequest resumed = req;
    resumed.src = path.src;
    resumed.dst = path.dst;
    resumed.src_port = path.src_port;
    resumed.dst_port = path.dst_port;
    auto sw_result = sw.Resume(table, RegistersOf(*dev.ReadBack(), path), resumed);
    if (!sw_result.ok()) return std::string(sw_result.status().message());
    for (const sim::TracePath& sp : sw_result->paths) {
      fates.push_back(absl::StrCat(Sv(sim::VerdictName(sp.verdict)), " ",
                                   ft::FormatEndpoint(sp.dst, sp.dst_port), " ", sp.out_port_name,
                                   sp.masquerade ? " masq" : ""));
    }
  }
  std::sort(fates.begin(), fates.end());
  fates.erase(std::unique(fates.begin(), fates.end()), fates.end());
  (void)full;
  return absl::StrJoin(fates, " | ");
}

struct SplitCase {
  std::string name;
  Capabilities caps;
};

std::vector<SplitCase> SplitCases() {
  std::vector<SplitCase> out;
  out.push_back({"e810", CapabilitiesFromProfile(*sim::BuiltinProfile("e810"))});
  Capabilities tight = Capabilities::Unlimited();
  tight.table_capacity["service"] = 2;
  tight.table_capacity["forward"] = 2;
  tight.actions[static_cast<size_t>(ft::ActionKind::kReject)] = false;
  out.push_back({"tight", tight});
  Capabilities no_range = Capabilities::Unlimited();
  no_range.match_kinds[static_cast<size_t>(ft::MatchKind::kRange)] = false;
  no_range.max_group_buckets = 2;
  out.push_back({"no-range-two-buckets", no_range});
  return out;
}

TEST(Placement, SplitProgramGivesTheSameFatesAsUnsplit) {
  for (const SplitCase& c : SplitCases()) {
    for (int version : {1, 2}) {
      SCOPED_TRACE(absl::StrCat(c.name, " v", version));
      const ft::Program full = ClusterProgram(version);
      auto placed = Place(c.caps, full, c.name);
      ASSERT_TRUE(placed.ok()) << placed.status();
      ASSERT_GT(placed->report.EntriesInSoftware(), 0u) << "the case must split something";
      SimDevice dev(*sim::BuiltinProfile("unlimited"));
      ASSERT_TRUE(dev.Install(placed->device).ok());
      SimDevice whole(*sim::BuiltinProfile("unlimited"));
      ASSERT_TRUE(whole.Install(full).ok());
      SoftwarePath sw(full);
      SoftwarePath unsplit_sw(full);
      for (sim::TraceRequest r : ClusterPackets()) {
        if (r.in_port == sim::kInvalidPort) r.in_port = *dev.nic().FindPortByName("vf:shop/pod1");
        EXPECT_EQ(SplitFate(dev, full, sw, r), SplitFate(whole, full, unsplit_sw, r))
            << r.src.ToString() << " -> " << r.dst.ToString() << ":" << r.dst_port;
      }
    }
  }
}

}  // namespace
}  // namespace nicflow::host
