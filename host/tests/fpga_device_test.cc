// FpgaDevice through the Device interface on PoCL: install, transactional apply, read-back,
// counters, and the capacities placement reads.
#include "nicflow/host/fpga_device.h"

#include <gtest/gtest.h>

#ifdef NICFLOW_HOST_HAVE_FPGA

#include "nicflow/flowtables/pipeline.h"
#include "nicflow/sim/packet.h"
#include "program_builder.h"

namespace nicflow::host {
namespace {

namespace ft = flowtables;

hw::FpgaOptions SmallOptions() {
  hw::FpgaOptions o;
  o.geometry.tcam_rows_per_table = 16;
  o.geometry.hash_buckets_per_table = 4;
  o.geometry.lpm_buckets_per_table = 4;
  o.geometry.action_slots = 512;
  o.geometry.group_capacity = 16;
  o.geometry.maglev_words = 1u << 14;
  o.geometry.ct_buckets = 256;
  o.geometry.ct_connections = 512;
  return o;
}

FpgaDevice& Shared() {
  static std::unique_ptr<FpgaDevice> d = [] {
    auto opened = FpgaDevice::Open(SmallOptions());
    EXPECT_TRUE(opened.ok()) << opened.status();
    return opened.ok() ? std::move(opened).value() : nullptr;
  }();
  return *d;
}

ft::Program Routes(int n) {
  ft::ProgramBuilder b;
  for (int i = 0; i < n; ++i) {
    b.AddEntry(ft::kTableForward, 16,
               {ft::MatchDstPrefix(*ft::IpPrefix::Parse("10." + std::to_string(i) + ".0.0/16"))},
               {ft::OutputAction{{ft::PortRef::Kind::kHost, ""}}}, {"Test", "", "r", ""});
  }
  return *std::move(b).Finish();
}

TEST(FpgaDevice, CapabilitiesComeFromTheImageGeometry) {
  const Capabilities& c = Shared().capabilities();
  EXPECT_EQ(c.wildcard_table_capacity, 16u);
  EXPECT_EQ(c.exact_table_capacity, 16u + 8u);
  EXPECT_EQ(c.max_groups, 16u);
  EXPECT_TRUE(c.SupportsAction(ft::ActionKind::kCtCommit));
  EXPECT_EQ(Shared().name().substr(0, 5), "fpga:");
}

TEST(FpgaDevice, ApplyReadBackAndCounters) {
  FpgaDevice& d = Shared();
  const ft::Program a = Routes(2), b = Routes(3);
  ASSERT_TRUE(d.Install(a).ok());
  auto delta = ft::Diff(a, b);
  ASSERT_TRUE(delta.ok());
  ASSERT_TRUE(d.Apply(*delta).ok());
  auto back = d.ReadBack();
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->EntryCount(), b.EntryCount());
  EXPECT_TRUE(ft::Diff(*back, b)->empty());

  sim::PacketSpec s;
  s.src = *ft::IpAddr::Parse("192.0.2.1");
  s.dst = *ft::IpAddr::Parse("10.2.3.4");
  s.dst_port = 80;
  hw::FpgaPacket pk{*sim::BuildPacket(s), 1, 2, {}};
  ASSERT_TRUE(d.pipeline().ProcessBatch({&pk, 1}).ok());
  EXPECT_EQ(pk.result.verdict, hw::FpgaVerdict::kForward);
  const ft::Entry want{
      ft::kTableForward, 16, {ft::MatchDstPrefix(*ft::IpPrefix::Parse("10.2.0.0/16"))}, {}, {}};
  for (const ft::Entry& e : b.entries[ft::kTableForward]) {
    auto c = d.GetEntryCounter(ft::EntryKey(e));
    ASSERT_TRUE(c.ok());
    EXPECT_EQ(c->packets, e.match == want.match ? 1u : 0u) << ft::EntryKey(e);
  }
  auto t = d.GetTableCounter(ft::kTableForward);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->hits, 1u);
  EXPECT_EQ(d.GetEntryCounter("no such entry").status().code(), absl::StatusCode::kNotFound);
}

TEST(FpgaDevice, FailedApplyKeepsTheInstalledProgram) {
  FpgaDevice& d = Shared();
  const ft::Program a = Routes(2);
  ASSERT_TRUE(d.Install(a).ok());
  auto delta = ft::Diff(a, Routes(200));  // more than 16 TCAM rows + LPM slots
  ASSERT_TRUE(delta.ok());
  absl::Status st = d.Apply(*delta);
  EXPECT_EQ(st.code(), absl::StatusCode::kResourceExhausted) << st;
  auto back = d.ReadBack();
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(ft::Diff(*back, a)->empty());
}

}  // namespace
}  // namespace nicflow::host

#else

TEST(FpgaDevice, NotBuiltWithoutTheHwLibrary) {
  GTEST_SKIP() << "nicflow::hw not linked into host";
}

#endif
