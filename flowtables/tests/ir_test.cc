#include "nicflow/flowtables/ir.h"

#include <gtest/gtest.h>

#include "nicflow/flowtables/ip.h"
#include "nicflow/flowtables/pipeline.h"
#include "program_builder.h"

namespace nicflow::flowtables {
namespace {

IpAddr Ip(std::string_view s) { return *IpAddr::Parse(s); }
IpPrefix Cidr(std::string_view s) { return *IpPrefix::Parse(s); }

TEST(IpAddr, ParsesAndPrintsBothFamilies) {
  EXPECT_EQ(Ip("10.1.2.3").ToString(), "10.1.2.3");
  EXPECT_EQ(Ip("2001:DB8:0:0::1").ToString(), "2001:db8::1");
  EXPECT_FALSE(IpAddr::Parse("10.1.2").ok());
  EXPECT_FALSE(IpAddr::Parse("10.01.2.3").ok());  // leading zeros are ambiguous, Kubernetes too
  EXPECT_FALSE(IpAddr::Parse("256.1.1.1").ok());
  EXPECT_FALSE(IpAddr::Parse("fe80::1%eth0").ok());
  EXPECT_FALSE(IpAddr::Parse("").ok());
}

TEST(IpPrefix, RejectsHostBitsUnlessAskedToMask) {
  auto bad = IpPrefix::Parse("10.0.0.1/8");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("host bits set"), absl::string_view::npos);
  EXPECT_EQ(IpPrefix::Parse("10.0.0.1/8", true)->ToString(), "10.0.0.0/8");
  EXPECT_FALSE(IpPrefix::Parse("10.0.0.0/33").ok());
  EXPECT_FALSE(IpPrefix::Parse("10.0.0.0/").ok());
  EXPECT_TRUE(Cidr("10.0.0.0/8").Contains(Ip("10.200.1.1")));
  EXPECT_FALSE(Cidr("10.0.0.0/8").Contains(Ip("2001:db8::1")));
  EXPECT_TRUE(Cidr("2001:db8::/32").Contains(Cidr("2001:db8:1::/48")));
}

TEST(Endpoint, WritesIpv6InBrackets) {
  EXPECT_EQ(FormatEndpoint(Ip("2001:db8::1"), 80), "[2001:db8::1]:80");
  auto ep = ParseEndpoint("[2001:db8::1]:443");
  ASSERT_TRUE(ep.ok());
  EXPECT_EQ(ep->second, 443);
  EXPECT_FALSE(ParseEndpoint("10.0.0.1:0").ok());
  EXPECT_FALSE(ParseEndpoint("10.0.0.1:70000").ok());
  EXPECT_TRUE(ParseEndpoint("10.0.0.1", /*port_required=*/false).ok());
}

// A small program: one Service frontend with a two-endpoint group.
Program TwoEndpointProgram(bool third_endpoint) {
  ProgramBuilder b;
  SelectGroup g;
  g.name = "svc/ns/web/http/v4/cluster";
  g.hash_fields = {Field::kIpv4Src, Field::kIpv4Dst, Field::kIpProto, Field::kL4Src, Field::kL4Dst};
  for (const char* ep : {"10.0.0.1", "10.0.0.2", "10.0.0.3"}) {
    if (!third_endpoint && std::string_view(ep) == "10.0.0.3") continue;
    g.buckets.push_back({1, {DnatAction{Ip(ep), 8080}}, std::string(ep) + ":8080"});
  }
  b.AddGroup(g);
  b.AddEntry(kTableService, 100,
             {MatchDstPrefix(IpPrefix::Host(Ip("10.96.0.10"))),
              MatchTernary(Field::kIpProto, 6, 0xff), MatchTernary(Field::kL4Dst, 80, 0xffff)},
             {GroupAction{g.name}, GotoAction{kTableMasqMark}},
             {"Service", "ns", "web", "port http"});
  b.AddEntry(kTableForward, 32, {MatchDstPrefix(IpPrefix::Host(Ip("10.0.0.1")))},
             {OutputAction{{PortRef::Kind::kPod, "ns/web-1"}}}, {"Pod", "ns", "web-1", ""});
  if (third_endpoint) {
    b.AddEntry(kTableForward, 32, {MatchDstPrefix(IpPrefix::Host(Ip("10.0.0.3")))},
               {OutputAction{{PortRef::Kind::kPod, "ns/web-3"}}}, {"Pod", "ns", "web-3", ""});
  }
  auto p = std::move(b).Finish();
  EXPECT_TRUE(p.ok()) << p.status();
  return *p;
}

TEST(Diff, OneEndpointMoreChangesItsGroupAndItsForwardEntryOnly) {
  Program before = TwoEndpointProgram(false);
  Program after = TwoEndpointProgram(true);
  auto d = Diff(before, after);
  ASSERT_TRUE(d.ok());
  ASSERT_EQ(d->ops.size(), 2u);
  EXPECT_EQ(d->ops[0].kind, DeltaOp::Kind::kModifyGroup);
  EXPECT_EQ(d->ops[1].kind, DeltaOp::Kind::kAddEntry);
  Program applied = before;
  ASSERT_TRUE(ApplyDelta(applied, *d).ok());
  auto none = Diff(applied, after);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST(Diff, OrdersMakeBeforeBreak) {
  Program empty = std::move(ProgramBuilder()).Finish().value();
  Program full = TwoEndpointProgram(true);
  auto add = Diff(empty, full);
  ASSERT_TRUE(add.ok());
  // The group exists before the service entry that names it; forward entries (later table)
  // before the service entry that leads to them.
  ASSERT_EQ(add->ops.size(), 4u);
  EXPECT_EQ(add->ops[0].kind, DeltaOp::Kind::kAddGroup);
  EXPECT_EQ(add->ops[1].entry.table, kTableForward);
  EXPECT_EQ(add->ops[3].entry.table, kTableService);
  auto del = Diff(full, empty);
  ASSERT_TRUE(del.ok());
  EXPECT_EQ(del->ops.front().entry.table, kTableService);
  EXPECT_EQ(del->ops.back().kind, DeltaOp::Kind::kDeleteGroup);
}

TEST(ApplyDelta, LeavesProgramUnchangedWhenAnOpDoesNotFit) {
  Program p = TwoEndpointProgram(false);
  Program before = p;
  Delta d;
  d.ops.push_back({DeltaOp::Kind::kAddEntry, p.entries[kTableForward][0], {}});  // exists
  EXPECT_EQ(ApplyDelta(p, d).code(), absl::StatusCode::kFailedPrecondition);
  auto same = Diff(before, p);
  ASSERT_TRUE(same.ok());
  EXPECT_TRUE(same->empty());
}

TEST(Validate, NamesTableEntryAndFieldOfABadMatch) {
  Program p = TwoEndpointProgram(false);
  p.entries[kTableForward][0].match[0].value = ExactMatch{U128::Of(1)};  // schema says lpm
  absl::Status st = Validate(p);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("table forward"), absl::string_view::npos) << st;
  EXPECT_NE(st.message().find("ipv4_dst must be matched as lpm"), absl::string_view::npos) << st;
}

TEST(Validate, RejectsBackwardGotoAndMissingGroup) {
  Program p = TwoEndpointProgram(false);
  p.entries[kTableService][0].actions = {GotoAction{kTableClassify}};
  EXPECT_FALSE(Validate(p).ok());
  p.entries[kTableService][0].actions = {GroupAction{"nope"}};
  absl::Status st = Validate(p);
  EXPECT_NE(st.message().find("group nope does not exist"), absl::string_view::npos) << st;
}

TEST(Text, MatchesAndActionsReadLikeFlowDumps) {
  Program p = TwoEndpointProgram(false);
  const Entry& e = p.entries[kTableService][0];
  EXPECT_EQ(MatchesToString(e.match), "ip_proto=6,ipv4_dst=10.96.0.10/32,l4_dst=80");
  EXPECT_EQ(ActionsToString(e.actions, &p), "group:svc/ns/web/http/v4/cluster,goto:masq_mark");
  EXPECT_EQ(e.origin.ToString(), "Service ns/web port http");
  FieldMatch flags = MatchTernary(Field::kMetaFlags, kFlagLocalSrc, kFlagLocalSrc | kFlagFromHost);
  EXPECT_EQ(MatchToString(flags), "meta.flags=+local_src-from_host");
}

}  // namespace
}  // namespace nicflow::flowtables
