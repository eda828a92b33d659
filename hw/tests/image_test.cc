// Table image encoding: layout, unit placement, incremental updates and rollback (no device).
#include "nicflow/hw/image.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <span>

#include "image_internal.h"
#include "nicflow/flowtables/pipeline.h"
#include "nicflow/hw/image_format.h"
#include "program_builder.h"

namespace nicflow::hw {
namespace {

namespace ft = flowtables;
using ft::Field;

ImageGeometry SmallGeometry() {
  ImageGeometry g;
  g.tcam_rows_per_table = 8;
  g.hash_buckets_per_table = 4;
  g.lpm_buckets_per_table = 4;
  g.action_slots = 256;
  g.group_capacity = 8;
  g.maglev_words = 4096;
  return g;
}

ft::IpPrefix Prefix(std::string_view s) { return *ft::IpPrefix::Parse(s); }
ft::IpAddr Ip(std::string_view s) { return *ft::IpAddr::Parse(s); }

ft::Program ForwardProgram(int pods) {
  ft::ProgramBuilder b;
  for (int i = 0; i < pods; ++i) {
    const std::string ip = "10.244.1." + std::to_string(i + 1);
    b.AddEntry(ft::kTableForward, 32, {ft::MatchDstPrefix(Prefix(ip + "/32"))},
               {ft::OutputAction{{ft::PortRef::Kind::kPod, "ns/p" + std::to_string(i)}}},
               {"Pod", "ns", "p" + std::to_string(i), ""});
  }
  b.AddEntry(ft::kTableForward, 16, {ft::MatchDstPrefix(Prefix("10.244.0.0/16"))},
             {ft::OutputAction{{ft::PortRef::Kind::kUplink, ""}}}, {"Node", "", "n", ""});
  // A service entry with a ternary flag match: TCAM.
  b.AddEntry(
      ft::kTableService, 100,
      {ft::MatchDstPrefix(Prefix("10.96.0.10/32")), ft::MatchTernary(Field::kIpProto, 6, 0xff),
       ft::MatchTernary(Field::kL4Dst, 80, 0xffff),
       ft::MatchTernary(Field::kMetaFlags, 0, ft::kFlagFromHost)},
      {ft::DropAction{}}, {"Service", "ns", "s", ""});
  b.AddEntry(ft::kTableEgressRule, 10,
             {ft::MatchExact(Field::kMetaSrcSet, 7), ft::MatchRange(Field::kL4Dst, 1000, 2000)},
             {ft::GotoAction{ft::kTableIngressPod}}, {"NetworkPolicy", "ns", "np", ""});
  auto p = std::move(b).Finish();
  EXPECT_TRUE(p.ok()) << p.status();
  return *p;
}

TEST(TableImage, HeaderDescribesTheLayout) {
  auto img = TableImage::Create(SmallGeometry(), ForwardProgram(2));
  ASSERT_TRUE(img.ok()) << img.status();
  auto w = (*img)->words();
  EXPECT_EQ(w[NF_HDR_MAGIC], NF_IMAGE_MAGIC);
  EXPECT_EQ(w[NF_HDR_VERSION], NF_IMAGE_VERSION);
  EXPECT_EQ(w[NF_HDR_TOTAL_WORDS], w.size());
  EXPECT_EQ(w[NF_HDR_TABLE_COUNT], ft::kStandardTableCount);
  EXPECT_EQ(w[NF_HDR_ACTION_SLOTS], 256u);
  // The forward table's default action is an OUTPUT record.
  const uint32_t d = NF_HDR_TABLES + ft::kTableForward * NF_TABLE_DESC_WORDS;
  const uint32_t slot = w[d + NF_TD_DEFAULT_ACTION];
  EXPECT_EQ(NF_OP_CODE(w[w[NF_HDR_ACTION_BASE] + slot * NF_ACTION_SLOT_WORDS]), NF_OP_OUTPUT);
}

TEST(TableImage, PlacesEntriesInTheUnitThatFitsThem) {
  const ft::Program p = ForwardProgram(3);
  auto img = TableImage::Create(SmallGeometry(), p);
  ASSERT_TRUE(img.ok()) << img.status();
  for (const auto& e : p.entries[ft::kTableForward]) {
    auto where = (*img)->SlotOf(e);
    ASSERT_TRUE(where.has_value());
    // Host routes are exact on ipv4_dst (the most common full-mask set); the /16 is an LPM entry.
    EXPECT_EQ(where->second, e.priority == 32 ? Unit::kExact : Unit::kLpm) << ft::EntryKey(e);
  }
  auto svc = (*img)->SlotOf(p.entries[ft::kTableService][0]);
  ASSERT_TRUE(svc.has_value());
  EXPECT_EQ(svc->second, Unit::kTcam);
  auto rule = (*img)->SlotOf(p.entries[ft::kTableEgressRule][0]);
  ASSERT_TRUE(rule.has_value());
  EXPECT_EQ(rule->second, Unit::kTcam);
}

TEST(TableImage, OneEntryChangeWritesOnlyItsRows) {
  const ft::Program a = ForwardProgram(3);
  const ft::Program b = ForwardProgram(4);
  auto img = TableImage::Create(SmallGeometry(), a);
  ASSERT_TRUE(img.ok());
  (*img)->TakeDirty();
  (*img)->TakeNewCounterSlots();
  auto d = ft::Diff(a, b);
  ASSERT_TRUE(d.ok());
  ASSERT_EQ(d->ops.size(), 1u);
  ASSERT_TRUE((*img)->Apply(*d).ok());
  size_t words = 0;
  for (const WordRange& r : (*img)->TakeDirty()) words += r.end - r.begin;
  // One hash slot, one action slot, the generation word: far below a table's size.
  EXPECT_LE(words, NF_HASH_SLOT_WORDS + NF_ACTION_SLOT_WORDS + 1);
  EXPECT_EQ((*img)->TakeNewCounterSlots().size(), 1u);
  EXPECT_EQ((*img)->program().EntryCount(), b.EntryCount());
}

TEST(TableImage, FailedApplyLeavesTheImageAsItWas) {
  ImageGeometry g = SmallGeometry();
  g.tcam_rows_per_table = 2;
  g.hash_buckets_per_table = 1;  // 4 exact slots
  g.lpm_buckets_per_table = 1;
  const ft::Program a = ForwardProgram(2);
  auto img = TableImage::Create(g, a);
  ASSERT_TRUE(img.ok()) << img.status();
  const std::vector<uint32_t> before((*img)->words().begin(), (*img)->words().end());
  const ft::Program big = ForwardProgram(40);  // does not fit
  auto d = ft::Diff(a, big);
  ASSERT_TRUE(d.ok());
  absl::Status st = (*img)->Apply(*d);
  EXPECT_EQ(st.code(), absl::StatusCode::kResourceExhausted) << st;
  EXPECT_NE(st.message().find("forward"), absl::string_view::npos) << st;
  const std::vector<uint32_t> after((*img)->words().begin(), (*img)->words().end());
  ASSERT_EQ(before.size(), after.size());
  for (size_t i = 0; i < before.size(); ++i) {
    ASSERT_EQ(before[i], after[i]) << "word " << i;
  }
  EXPECT_EQ((*img)->program().EntryCount(), a.EntryCount());
}

// Each table's probe words (NF_TD_HASH_PROBES, NF_TD_LPM_PROBES) must be 1 + the deepest probe
// distance of a valid slot of the unit (0 when empty): the kernel probes no further. Returns the
// deepest word seen.
uint32_t ExpectProbeWordsExact(std::span<const uint32_t> w) {
  uint32_t deepest = 0;
  for (uint32_t t = 0; t < NF_MAX_TABLES; ++t) {
    const uint32_t d = NF_HDR_TABLES + t * NF_TABLE_DESC_WORDS;
    if (const uint32_t buckets = w[d + NF_TD_HASH_BUCKETS]; buckets != 0) {
      uint32_t want = 0;
      for (uint32_t slot = 0; slot < buckets * NF_HASH_BUCKET_SLOTS; ++slot) {
        const uint32_t at = w[d + NF_TD_HASH_BASE] + slot * NF_HASH_SLOT_WORDS;
        if (!(w[at + NF_HASH_FLAGS] & NF_VALID)) continue;
        uint32_t k[NF_MAX_KEY_WORDS];
        uint32_t n = 0;
        for (uint32_t wi = 0; wi < NF_MAX_KEY_WORDS; ++wi) {
          if (w[d + NF_TD_HASH_WORDMASK] & (1u << wi)) k[n++] = w[at + NF_HASH_KEY + wi];
        }
        const uint32_t home = ImageHash({k, n}, t) & (buckets - 1);
        want = std::max(want, ((slot / NF_HASH_BUCKET_SLOTS - home) & (buckets - 1)) + 1);
      }
      EXPECT_EQ(w[d + NF_TD_HASH_PROBES], want) << "table " << t << " exact unit";
      deepest = std::max(deepest, want);
    }
    if (const uint32_t buckets = w[d + NF_TD_LPM_BUCKETS]; buckets != 0) {
      const uint32_t nw = NF_KEY_NWORDS(w[d + NF_TD_KEYS + w[d + NF_TD_LPM_KEY]]);
      uint32_t want = 0;
      for (uint32_t slot = 0; slot < buckets * NF_HASH_BUCKET_SLOTS; ++slot) {
        const uint32_t at = w[d + NF_TD_LPM_BASE] + slot * NF_LPM_SLOT_WORDS;
        if (!(w[at + NF_LPM_FLAGS] & NF_VALID)) continue;
        uint32_t k[5] = {w[at + NF_LPM_FLAGS] & 0xffu, 0, 0, 0, 0};
        for (uint32_t j = 0; j < nw; ++j) k[1 + j] = w[at + NF_LPM_VALUE + j];
        const uint32_t home = ImageHash({k, 1 + nw}, 0x4c500000u | t) & (buckets - 1);
        want = std::max(want, ((slot / NF_HASH_BUCKET_SLOTS - home) & (buckets - 1)) + 1);
      }
      EXPECT_EQ(w[d + NF_TD_LPM_PROBES], want) << "table " << t << " LPM unit";
      deepest = std::max(deepest, want);
    }
  }
  return deepest;
}

TEST(TableImage, ProbeWordsFollowInsertsDeletesAndRollback) {
  // Host routes into an exact unit of 4 buckets (16 slots) until one lands past its home bucket.
  int spilled = 0;
  for (int n = 1; n <= 16 && spilled == 0; ++n) {
    auto img = TableImage::Create(SmallGeometry(), ForwardProgram(n));
    ASSERT_TRUE(img.ok()) << img.status();
    if (ExpectProbeWordsExact((*img)->words()) >= 2) spilled = n;
  }
  ASSERT_GT(spilled, 0) << "no entry past its home bucket";
  const ft::Program full = ForwardProgram(spilled);
  const ft::Program few = ForwardProgram(1);
  auto img = TableImage::Create(SmallGeometry(), few);
  ASSERT_TRUE(img.ok()) << img.status();
  ASSERT_TRUE((*img)->Apply(*ft::Diff(few, full)).ok());
  EXPECT_GE(ExpectProbeWordsExact((*img)->words()), 2u);
  ASSERT_TRUE((*img)->Apply(*ft::Diff(full, few)).ok());
  EXPECT_EQ(ExpectProbeWordsExact((*img)->words()), 1u);
  ASSERT_TRUE((*img)->Apply(*ft::Diff(few, full)).ok());
  EXPECT_GE(ExpectProbeWordsExact((*img)->words()), 2u);
  // A delta that does not fit leaves every word, the probe words included, as it was.
  const std::vector<uint32_t> before((*img)->words().begin(), (*img)->words().end());
  EXPECT_FALSE((*img)->Apply(*ft::Diff(full, ForwardProgram(60))).ok());
  EXPECT_TRUE(std::equal(before.begin(), before.end(), (*img)->words().begin()));
  ExpectProbeWordsExact((*img)->words());
}

TEST(TableImage, RangeWiderThanAWordIsUnimplemented) {
  ft::FieldMatch m{Field::kIpv6Dst, ft::RangeMatch{ft::U128::Of(1), ft::U128::Of(9)}};
  auto k = EncodeMatch(m, "table t entry e");
  EXPECT_EQ(k.status().code(), absl::StatusCode::kUnimplemented);
}

TEST(TableImage, GroupGetsAMaglevTableOfPrimeSize) {
  ft::ProgramBuilder b;
  ft::SelectGroup g;
  g.name = "svc/ns/web";
  g.hash_fields = {Field::kIpv4Src, Field::kL4Src};
  for (int i = 0; i < 3; ++i) {
    g.buckets.push_back({1,
                         {ft::DnatAction{Ip("10.244.1." + std::to_string(i + 1)), 8080}},
                         "10.244.1." + std::to_string(i + 1) + ":8080"});
  }
  b.AddGroup(g);
  b.AddEntry(ft::kTableService, 100, {ft::MatchDstPrefix(Prefix("10.96.0.10/32"))},
             {ft::GroupAction{g.name}, ft::GotoAction{ft::kTableMasqMark}},
             {"Service", "", "", ""});
  auto p = std::move(b).Finish();
  ASSERT_TRUE(p.ok()) << p.status();
  auto img = TableImage::Create(SmallGeometry(), *p);
  ASSERT_TRUE(img.ok()) << img.status();
  auto w = (*img)->words();
  const uint32_t gd = w[NF_HDR_GROUP_BASE];  // group 0
  EXPECT_EQ(w[gd + NF_GD_FLAGS], NF_VALID);
  EXPECT_EQ(w[gd + NF_GD_NBUCKETS], 3u);
  EXPECT_EQ(w[gd + NF_GD_SIZE], 509u);  // the smallest listed prime >= 100 x 3
  EXPECT_EQ(w[gd + NF_GD_HASH_N], 2u);
  auto gb = (*img)->GroupBucketOf(0, 1);
  ASSERT_TRUE(gb.has_value());
  EXPECT_EQ(gb->first, g.name);
  EXPECT_EQ(gb->second, "10.244.1.2:8080");
}

TEST(ImageHash, IsCrc32cWithoutFinalInversion) {
  // CRC-32C("123456789") = 0xE3069283 with init and final xor 0xFFFFFFFF.
  const uint32_t words[] = {0x34333231u, 0x38373635u};
  const uint32_t crc8 = ImageHash(words, 0xffffffffu);
  // Feed the ninth byte by hand to check the byte order convention.
  uint32_t crc = crc8 ^ '9';
  for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
  EXPECT_EQ(~crc, 0xE3069283u);
}

}  // namespace
}  // namespace nicflow::hw
