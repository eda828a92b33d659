#include "nicflow/sim/device.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "test_programs.h"

namespace nicflow::sim {
namespace {

namespace ft = flowtables;
using testing::Ip;
using testing::MiniPod;

const std::vector<MiniPod> kPods = {{"ns/a", "10.0.1.1"}, {"ns/b", "10.0.2.1"}};

ft::Program Base() { return testing::MiniProgram(kPods, "10.96.0.10", 80, {"10.0.2.1"}); }

std::vector<std::string> Keys(const ft::Program& p) {
  std::vector<std::string> k;
  for (const auto& es : p.entries) {
    for (const ft::Entry& e : es) k.push_back(ft::EntryKey(e));
  }
  for (const ft::SelectGroup& g : p.groups) k.push_back("group " + g.name);
  return k;
}

ft::DeltaOp AddForward(const std::string& cidr, int32_t prio = 24) {
  ft::DeltaOp op;
  op.kind = ft::DeltaOp::Kind::kAddEntry;
  op.entry = testing::MakeEntry(testing::kMiniForward, prio, {testing::Lpm(Field::kIpv4Dst, cidr)},
                                {ft::OutputAction{{ft::PortRef::Kind::kHost, ""}}});
  return op;
}

TEST(SimNic, ReadBackEqualsTheInstalledProgram) {
  auto nic = SimNic::Create(*BuiltinProfile("unlimited"));
  const ft::Program p = Base();
  ASSERT_TRUE(nic->Install(p).ok());
  auto d = ft::Diff(p, nic->installed());
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_TRUE(d->empty()) << d->ops.size() << " differences after install";
  EXPECT_EQ(nic->installed().ports.size(), 2u);
  EXPECT_EQ(*nic->FindPortByName("vf:ns/a"), 2u);
  EXPECT_EQ(*nic->FindPortByName("uplink"), kUplinkPort);
  EXPECT_EQ(nic->PortOwning(Ip("10.0.2.1")), nic->FindPort({ft::PortRef::Kind::kPod, "ns/b"}));
  EXPECT_FALSE(nic->PortOwning(Ip("8.8.8.8")));
}

TEST(SimNic, DeltaAppliesAndReadBackFollows) {
  auto nic = SimNic::Create(*BuiltinProfile("unlimited"));
  ft::Program from = Base();
  ASSERT_TRUE(nic->Install(from).ok());
  const ft::Program to =
      testing::MiniProgram(kPods, "10.96.0.10", 80, {"10.0.2.1", "10.0.1.1"}, "10.0.1.1");
  auto d = ft::Diff(from, to);
  ASSERT_TRUE(d.ok()) << d.status();
  ASSERT_FALSE(d->empty());
  ASSERT_TRUE(nic->Apply(*d).ok()) << nic->Apply(*d);
  auto back = ft::Diff(to, nic->installed());
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(back->empty());
}

TEST(SimNic, ApplyIsAllOrNothingWhenATableFills) {
  DeviceProfile prof = *BuiltinProfile("unlimited");
  prof.table_capacity["forward"] = 5;  // 3 entries installed: room for 2 more
  auto nic = SimNic::Create(prof);
  ASSERT_TRUE(nic->Install(Base()).ok());
  const auto before = Keys(nic->installed());
  ft::Delta d;
  d.ops = {AddForward("172.16.0.0/16"), AddForward("172.17.0.0/16"), AddForward("172.18.0.0/16")};
  const absl::Status st = nic->Apply(d);
  EXPECT_EQ(st.code(), absl::StatusCode::kResourceExhausted) << st;
  EXPECT_NE(st.message().find("table forward"), std::string::npos) << st;
  EXPECT_NE(st.message().find("172.18.0.0/16"), std::string::npos) << st;
  EXPECT_EQ(Keys(nic->installed()), before) << "nothing of the failed delta is installed";
  d.ops.pop_back();
  EXPECT_TRUE(nic->Apply(d).ok());
  EXPECT_EQ(nic->installed().entries[testing::kMiniForward].size(), 5u);
}

TEST(SimNic, ProfilesRefuseWhatTheDeviceCannotDo) {
  auto e810 = SimNic::Create(*BuiltinProfile("e810"));
  absl::Status st = e810->Install(Base());
  EXPECT_EQ(st.code(), absl::StatusCode::kUnimplemented) << st;
  auto cx = SimNic::Create(*BuiltinProfile("connectx6dx"));
  st = cx->Install(Base());
  EXPECT_EQ(st.code(), absl::StatusCode::kUnimplemented) << "range match on l4_dst: " << st;
  EXPECT_FALSE(cx->has_program());
  auto alveo = SimNic::Create(*BuiltinProfile("alveo-u280"));
  EXPECT_TRUE(alveo->Install(Base()).ok());
  // A reject entry on a profile without reject names table and entry.
  DeviceProfile no_reject = *BuiltinProfile("unlimited");
  no_reject.actions[static_cast<size_t>(ft::ActionKind::kReject)] = false;
  auto nic = SimNic::Create(no_reject);
  ASSERT_TRUE(nic->Install(Base()).ok());
  ft::DeltaOp op = AddForward("172.16.0.0/12");
  op.entry.actions = {ft::RejectAction{}};
  st = nic->ApplyOp(op);
  EXPECT_EQ(st.code(), absl::StatusCode::kUnimplemented);
  EXPECT_NE(st.message().find("table forward"), std::string::npos) << st;
  EXPECT_NE(st.message().find("reject"), std::string::npos) << st;
  EXPECT_EQ(BuiltinProfile("nope").status().code(), absl::StatusCode::kNotFound);
}

TEST(SimNic, InjectedFaultFailsTheNthOperationAndChangesNothing) {
  auto nic = SimNic::Create(*BuiltinProfile("unlimited"));
  ASSERT_TRUE(nic->Install(Base()).ok());
  const auto before = Keys(nic->installed());
  nic->InjectFault(2, absl::UnavailableError("firmware busy"));
  ft::Delta d;
  d.ops = {AddForward("172.16.0.0/16"), AddForward("172.17.0.0/16"), AddForward("172.18.0.0/16")};
  const absl::Status st = nic->Apply(d);
  EXPECT_EQ(st.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(st.message().find("op 1"), std::string::npos) << st;
  EXPECT_EQ(Keys(nic->installed()), before);
  EXPECT_TRUE(nic->Apply(d).ok()) << "the fault fires once";
  nic->InjectFault(1, absl::InternalError("boom"));
  EXPECT_EQ(nic->Install(Base()).code(), absl::StatusCode::kInternal);
  EXPECT_EQ(nic->installed().entries[testing::kMiniForward].size(), 6u) << "install unchanged";
}

TEST(SimNic, DeltaOpsThatDoNotFitAreFailedPreconditions) {
  auto nic = SimNic::Create(*BuiltinProfile("unlimited"));
  EXPECT_EQ(nic->ApplyOp(AddForward("1.0.0.0/8")).code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(nic->Install(Base()).ok());
  ASSERT_TRUE(nic->ApplyOp(AddForward("1.0.0.0/8")).ok());
  EXPECT_EQ(nic->ApplyOp(AddForward("1.0.0.0/8")).code(), absl::StatusCode::kFailedPrecondition);
  ft::DeltaOp del = AddForward("2.0.0.0/8");
  del.kind = ft::DeltaOp::Kind::kDeleteEntry;
  EXPECT_EQ(nic->ApplyOp(del).code(), absl::StatusCode::kFailedPrecondition);
  ft::DeltaOp dg;
  dg.kind = ft::DeltaOp::Kind::kDeleteGroup;
  dg.group.name = "svc/test/web";
  const absl::Status st = nic->ApplyOp(dg);
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition) << "still referenced: " << st;
  ft::DeltaOp back = AddForward("3.0.0.0/8");
  back.entry.actions = {ft::GotoAction{testing::kMiniCt}};
  EXPECT_EQ(nic->ApplyOp(back).code(), absl::StatusCode::kInvalidArgument) << "goto backwards";
  ft::DeltaOp bad = AddForward("4.0.0.0/8");
  bad.entry.match.push_back(testing::Exact(Field::kL4Src, 1));
  EXPECT_EQ(nic->ApplyOp(bad).code(), absl::StatusCode::kInvalidArgument) << "not a key";
}

// Staging resolves the slots of installed groups for commit; a group the delta itself adds is
// looked up at commit. Both must count references, so deleting a referenced group still fails.
TEST(SimNic, EntriesReferenceGroupsInstalledOrAddedInTheSameDelta) {
  auto nic = SimNic::Create(*BuiltinProfile("unlimited"));
  ASSERT_TRUE(nic->Install(Base()).ok());
  ASSERT_FALSE(nic->installed().groups.empty());
  ft::DeltaOp add_group{ft::DeltaOp::Kind::kAddGroup, {}, nic->installed().groups[0]};
  add_group.group.name = "svc/test/web2";
  ft::DeltaOp to_new = AddForward("172.20.0.0/16");
  to_new.entry.actions = {ft::GroupAction{"svc/test/web2"}};
  ft::DeltaOp to_old = AddForward("172.21.0.0/16");
  to_old.entry.actions = {ft::GroupAction{"svc/test/web"}};
  ft::Delta d;
  d.ops = {to_old, add_group, to_new};
  ASSERT_TRUE(nic->Apply(d).ok());
  ft::DeltaOp del_group{ft::DeltaOp::Kind::kDeleteGroup, {}, add_group.group};
  EXPECT_EQ(nic->ApplyOp(del_group).code(), absl::StatusCode::kFailedPrecondition);
  ft::DeltaOp del_entry = to_new;
  del_entry.kind = ft::DeltaOp::Kind::kDeleteEntry;
  ft::Delta both;
  both.ops = {del_entry, del_group};
  EXPECT_TRUE(nic->Apply(both).ok());
  ft::DeltaOp del_web{ft::DeltaOp::Kind::kDeleteGroup, {}, nic->installed().groups[0]};
  EXPECT_EQ(nic->ApplyOp(del_web).code(), absl::StatusCode::kFailedPrecondition)
      << "still referenced by the base program and the added entry";
}

TEST(SimNic, ModifyKeepsCountersAndChangesBehaviour) {
  auto nic = SimNic::Create(*BuiltinProfile("unlimited"));
  ASSERT_TRUE(nic->Install(Base()).ok());
  ft::DeltaOp op = AddForward("8.8.8.0/24");
  ASSERT_TRUE(nic->ApplyOp(op).ok());
  PacketSpec s;
  s.src = Ip("10.0.1.1");
  s.dst = Ip("8.8.8.8");
  s.dst_port = 53;
  auto frame = *BuildPacket(s);
  std::vector<uint8_t> buf(2048);
  auto send = [&] {
    std::copy(frame.begin(), frame.end(), buf.begin());
    size_t len = frame.size();
    return nic->ProcessFrame(buf, len, *nic->FindPortByName("vf:ns/a"));
  };
  EXPECT_EQ(send().out_port, kHostPort);
  op.kind = ft::DeltaOp::Kind::kModifyEntry;
  op.entry.actions = {ft::DropAction{}};
  ASSERT_TRUE(nic->ApplyOp(op).ok());
  nic->ClearConntrack();
  EXPECT_EQ(send().verdict, Verdict::kDrop);
  EXPECT_EQ(nic->GetEntryCounters(ft::EntryKey(op.entry))->packets, 2u);
  EXPECT_EQ(nic->GetEntryCounters("nope").status().code(), absl::StatusCode::kNotFound);
}

// Entries are indexed by identity (table, priority, canonical match) without a stored key: the
// same entry listed with its fields in another order is found, counted and deleted.
TEST(SimNic, AnEntryIsFoundWhateverOrderItsFieldsAreListedIn) {
  auto nic = SimNic::Create(*BuiltinProfile("unlimited"));
  ASSERT_TRUE(nic->Install(Base()).ok());
  ft::DeltaOp add;
  add.kind = ft::DeltaOp::Kind::kAddEntry;
  add.entry = testing::MakeEntry(
      testing::kMiniPolicy, 50,
      {testing::Lpm(Field::kIpv4Dst, "8.8.8.0/24"), testing::Lpm(Field::kIpv4Src, "10.0.1.0/24")},
      {ft::DropAction{}});
  auto by_field = [](const ft::FieldMatch& a, const ft::FieldMatch& b) {
    return a.field < b.field;
  };
  std::sort(add.entry.match.rbegin(), add.entry.match.rend(), by_field);  // descending
  ASSERT_FALSE(std::is_sorted(add.entry.match.begin(), add.entry.match.end(), by_field))
      << "the test needs an unsorted match";
  ft::DeltaOp twice = add;
  std::reverse(twice.entry.match.begin(), twice.entry.match.end());
  ft::Delta dup;
  dup.ops = {add, twice};
  EXPECT_EQ(nic->Apply(dup).code(), absl::StatusCode::kFailedPrecondition) << "the same entry";
  ASSERT_TRUE(nic->ApplyOp(add).ok());
  EXPECT_EQ(nic->ApplyOp(twice).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(nic->GetEntryCounters(ft::EntryKey(twice.entry)).ok());
  twice.kind = ft::DeltaOp::Kind::kDeleteEntry;
  ASSERT_TRUE(nic->ApplyOp(twice).ok());
  EXPECT_EQ(nic->GetEntryCounters(ft::EntryKey(twice.entry)).status().code(),
            absl::StatusCode::kNotFound);
  auto back = ft::Diff(Base(), nic->installed());
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(back->empty());
}

// Group names are packed in an arena that is compacted once deleted names outweigh live ones;
// lookups, references and read-back must not notice.
TEST(SimNic, GroupsStayAddressableByNameAcrossManyDeletes) {
  auto nic = SimNic::Create(*BuiltinProfile("unlimited"));
  ASSERT_TRUE(nic->Install(Base()).ok());
  const ft::SelectGroup web = nic->installed().groups.at(0);
  auto name = [](int i) {
    return "svc/test/a-name-long-enough-to-leave-the-string/" + std::to_string(i);
  };
  ft::Delta add, del;
  for (int i = 0; i < 3000; ++i) {
    ft::SelectGroup g = web;
    g.name = name(i);
    add.ops.push_back({ft::DeltaOp::Kind::kAddGroup, {}, g});
    if (i % 100 != 7) del.ops.push_back({ft::DeltaOp::Kind::kDeleteGroup, {}, g});
  }
  ASSERT_TRUE(nic->Apply(add).ok());
  ASSERT_TRUE(nic->Apply(del).ok());
  ASSERT_EQ(nic->installed().groups.size(), 31u);
  ft::DeltaOp to_kept = AddForward("172.20.0.0/16");
  to_kept.entry.actions = {ft::GroupAction{name(2907)}};
  ASSERT_TRUE(nic->ApplyOp(to_kept).ok());
  ft::DeltaOp to_deleted = AddForward("172.21.0.0/16");
  to_deleted.entry.actions = {ft::GroupAction{name(2906)}};
  EXPECT_EQ(nic->ApplyOp(to_deleted).code(), absl::StatusCode::kFailedPrecondition);
  ft::SelectGroup kept = web;
  kept.name = name(2907);
  EXPECT_EQ(nic->ApplyOp({ft::DeltaOp::Kind::kDeleteGroup, {}, kept}).code(),
            absl::StatusCode::kFailedPrecondition)
      << "still referenced";
  kept.name = name(7);
  EXPECT_TRUE(nic->ApplyOp({ft::DeltaOp::Kind::kDeleteGroup, {}, kept}).ok());
  EXPECT_TRUE(nic->ApplyOp(add.ops[6]).ok()) << "a deleted name can be added again";
  std::vector<std::string> names;
  for (const ft::SelectGroup& g : nic->installed().groups) names.push_back(g.name);
  EXPECT_EQ(names.size(), 31u);
  EXPECT_NE(std::find(names.begin(), names.end(), name(6)), names.end());
  EXPECT_EQ(std::find(names.begin(), names.end(), name(7)), names.end());
}

}  // namespace
}  // namespace nicflow::sim
