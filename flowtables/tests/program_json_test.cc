#include "nicflow/flowtables/program_json.h"

#include <gtest/gtest.h>

#include "nicflow/flowtables/pipeline.h"
#include "program_builder.h"

namespace nicflow::flowtables {
namespace {

IpAddr Ip(std::string_view s) { return *IpAddr::Parse(s); }

Program SampleProgram() {
  ProgramBuilder b;
  SelectGroup g{"svc/ns/web/http/v6/cluster",
                {Field::kIpv6Src},
                600,
                {},
                {"Service", "ns", "web", "port http"}};
  g.buckets.push_back({2, {DnatAction{Ip("2001:db8::10"), 8080}}, "[2001:db8::10]:8080"});
  b.AddGroup(g);
  b.AddEntry(
      kTableService, 100,
      {MatchDstPrefix(IpPrefix::Host(Ip("fd00::10"))), MatchTernary(Field::kIpProto, 17, 0xff),
       MatchTernary(Field::kMetaFlags, kFlagLocalSrc, kFlagLocalSrc)},
      {SetBits(Field::kMetaFlags, kFlagServiceHit, kFlagServiceHit), GroupAction{g.name},
       GotoAction{kTableMasqMark}},
      {"Service", "ns", "web", "port http"});
  b.AddEntry(kTableEgressRule, 10,
             {MatchExact(Field::kMetaSrcSet, 0xdeadbeef), MatchRange(Field::kL4Dst, 9100, 9102)},
             {GotoAction{kTableIngressPod}}, {"NetworkPolicy", "ns", "p", "egress[0]"});
  b.AddEntry(
      kTableSnat, 1, {MatchSrcPrefix(*IpPrefix::Parse("10.0.0.0/8"))},
      {SnatAction{Ip("192.168.0.2"), 1024, 65535}, CtCommitAction{}, GotoAction{kTableForward}},
      {"nicflow", "", "", "egress masquerade"});
  b.AddPort({{PortRef::Kind::kPod, "ns/web-1"}, {Ip("10.0.0.5"), Ip("2001:db8::10")}});
  return std::move(b).Finish().value();
}

TEST(ProgramJson, RoundTripsEveryMatchKindAndAction) {
  Program p = SampleProgram();
  nlohmann::json j = ProgramToJson(p);
  auto back = ProgramFromJson(nlohmann::json::parse(j.dump()));
  ASSERT_TRUE(back.ok()) << back.status();
  auto d = Diff(p, *back);
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(d->empty());
  EXPECT_EQ(ProgramToJson(*back), j);
}

TEST(ProgramJson, WritesReadableValues) {
  nlohmann::json j = ProgramToJson(SampleProgram());
  const auto& service = j["tables"][kTableService];
  EXPECT_EQ(service["name"], "service");
  const auto& e = service["entries"][0];
  EXPECT_EQ(e["match"][0]["field"], "ip_proto");
  EXPECT_EQ(e["match"][1]["lpm"]["value"], "fd00::10");
  EXPECT_EQ(e["match"][1]["lpm"]["prefix_len"], 128);
  EXPECT_EQ(e["actions"][1]["group"], "svc/ns/web/http/v6/cluster");
  EXPECT_EQ(e["origin"]["kind"], "Service");
  EXPECT_EQ(j["groups"][0]["affinity_timeout_s"], 600);
  EXPECT_EQ(j["ports"][0]["port"], "vf:ns/web-1");
}

TEST(ProgramJson, NamesThePathOfABadValue) {
  nlohmann::json j = ProgramToJson(SampleProgram());
  j["tables"][kTableService]["entries"][0]["match"][1]["lpm"]["value"] = "not-an-ip";
  auto back = ProgramFromJson(j);
  ASSERT_FALSE(back.ok());
  EXPECT_NE(back.status().message().find("tables[3].entries[0].match[1].value"),
            absl::string_view::npos)
      << back.status();
  j = ProgramToJson(SampleProgram());
  j["tables"][kTableService]["entries"][0]["actions"][2]["table"] = "nowhere";
  EXPECT_FALSE(ProgramFromJson(j).ok());
}

TEST(ProgramJson, DeltaRoundTripsInOrder) {
  Program empty = SampleProgram();
  for (auto& es : empty.entries) es.clear();
  empty.groups.clear();
  Program full = SampleProgram();
  auto d = Diff(empty, full);
  ASSERT_TRUE(d.ok());
  nlohmann::json j = DeltaToJson(*d, full);
  EXPECT_EQ(j["ops"][0]["op"], "add-group");
  auto back = DeltaFromJson(nlohmann::json::parse(j.dump()), full.tables);
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->ops.size(), d->ops.size());
  for (size_t i = 0; i < d->ops.size(); ++i) {
    EXPECT_EQ(back->ops[i].kind, d->ops[i].kind);
    EXPECT_EQ(EntryKey(back->ops[i].entry), EntryKey(d->ops[i].entry));
    EXPECT_EQ(back->ops[i].group.name, d->ops[i].group.name);
  }
  ASSERT_TRUE(ApplyDelta(empty, *back).ok());
  auto rest = Diff(empty, full);
  ASSERT_TRUE(rest.ok());
  EXPECT_TRUE(rest->empty());
}

TEST(ProgramJson, DeltaNamesAnUnknownTable) {
  nlohmann::json j = {{"ops", {{{"op", "add-entry"}, {"table", "nowhere"}, {"entry", {}}}}}};
  auto back = DeltaFromJson(j, SampleProgram().tables);
  ASSERT_FALSE(back.ok());
  EXPECT_NE(back.status().message().find("ops[0].table"), absl::string_view::npos);
}

}  // namespace
}  // namespace nicflow::flowtables
