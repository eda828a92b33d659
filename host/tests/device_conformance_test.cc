// The backend conformance suite: every Device that can hold a program passes the same tests
// through the Device interface -- install and read back, converge by diff through the reconciler,
// a restarted process converging without a flush, an apply that fails leaving the device as it
// was, per-entry and per-table counters, capabilities that hold the test cluster -- and its
// datapath gives every packet the fate (verdict, output port, frame as it leaves) a reference
// simulator with the same program gives it.
//
// Backends: the simulator (SimDevice) and the FPGA kernel on PoCL (FpgaDevice). RteFlowDevice is
// not here: the CI port (net_null) has no flow API, which rteflow_eal_test covers, and the rte_flow
// lowering's fates are checked in RteFlowSim by rteflow_conformance_test.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <memory>

#include "nicflow/host/fpga_device.h"
#include "nicflow/host/placement.h"
#include "nicflow/host/reconciler.h"
#include "nicflow/host/sim_device.h"
#include "nicflow/sim/packet.h"
#include "test_programs.h"

namespace nicflow::host {
namespace {

namespace ft = ::nicflow::flowtables;
using testing::ClusterProgram;
using testing::Ip;

// A packet in and how it left.
struct Frame {
  std::vector<uint8_t> bytes;
  sim::PortId in_port = sim::kUplinkPort;
  uint8_t port_class = 0;
};
struct Fate {
  std::string verdict;
  std::string out_port;          ///< forward only
  std::vector<uint8_t> leaving;  ///< forward and reject: the frame as it left / the reply
  bool operator==(const Fate&) const = default;
};
std::ostream& operator<<(std::ostream& os, const Fate& f) {
  return os << f.verdict << " " << f.out_port << " (" << f.leaving.size() << " bytes)";
}

// One backend: how to get a device (owned by the test or shared by the process) and run frames
// through its datapath.
struct Backend {
  std::string name;
  std::function<Device*(std::unique_ptr<Device>& owned)> open;
  std::function<std::vector<Fate>(Device&, const std::vector<Frame>&)> run;
};

Device* OpenSim(std::unique_ptr<Device>& owned) {
  sim::SimNic::Options o;
  o.conntrack_capacity = 1024;
  owned = std::make_unique<SimDevice>(*sim::BuiltinProfile("unlimited"), o);
  return owned.get();
}

std::vector<Fate> RunSim(sim::SimNic& nic, const std::vector<Frame>& frames) {
  std::vector<Fate> out;
  for (const Frame& f : frames) {
    std::vector<uint8_t> buf(f.bytes);
    buf.resize(2048);
    size_t len = f.bytes.size();
    const sim::PacketResult r = nic.ProcessFrame(buf, len, f.in_port);
    buf.resize(len);
    Fate fate{std::string(sim::VerdictName(r.verdict)), "", {}};
    if (r.verdict == sim::Verdict::kForward) fate.out_port = nic.ports()[r.out_port].name;
    if (r.verdict == sim::Verdict::kForward || r.verdict == sim::Verdict::kReject) {
      fate.leaving = buf;
    }
    out.push_back(std::move(fate));
  }
  return out;
}

#ifdef NICFLOW_HOST_HAVE_FPGA
// One FPGA device per process: opening it builds the kernel (seconds on PoCL). Tests install
// their own program; packets use fresh source ports, so connections of earlier tests never match.
Device* SharedFpga() {
  static std::unique_ptr<FpgaDevice> d = [] {
    hw::FpgaOptions o;
    o.geometry.tcam_rows_per_table = 64;
    o.geometry.hash_buckets_per_table = 16;
    o.geometry.lpm_buckets_per_table = 16;
    o.geometry.action_slots = 1024;
    o.geometry.group_capacity = 32;
    o.geometry.maglev_words = 1u << 15;
    o.geometry.ct_buckets = 1u << 10;
    o.geometry.ct_connections = 1u << 11;
    auto opened = FpgaDevice::Open(std::move(o));
    EXPECT_TRUE(opened.ok()) << opened.status();
    return opened.ok() ? std::move(opened).value() : nullptr;
  }();
  return d.get();
}

std::vector<Fate> RunFpga(Device& d, const std::vector<Frame>& frames) {
  auto& pipeline = static_cast<FpgaDevice&>(d).pipeline();
  std::vector<hw::FpgaPacket> batch;
  for (const Frame& f : frames) batch.push_back({f.bytes, f.in_port, f.port_class, {}});
  absl::Status st = pipeline.ProcessBatch(batch);
  EXPECT_TRUE(st.ok()) << st;
  std::vector<Fate> out;
  for (const hw::FpgaPacket& p : batch) {
    Fate fate{std::string(hw::FpgaVerdictName(p.result.verdict)), "", {}};
    if (p.result.verdict == hw::FpgaVerdict::kForward && p.result.out_port) {
      fate.out_port = p.result.out_port->ToString();
    }
    if (p.result.verdict == hw::FpgaVerdict::kForward ||
        p.result.verdict == hw::FpgaVerdict::kReject) {
      fate.leaving = p.frame;
    }
    out.push_back(std::move(fate));
  }
  return out;
}
#endif

std::vector<Backend> Backends() {
  std::vector<Backend> b;
  b.push_back({"Sim", OpenSim, [](Device& d, const std::vector<Frame>& f) {
                 return RunSim(static_cast<SimDevice&>(d).nic(), f);
               }});
#ifdef NICFLOW_HOST_HAVE_FPGA
  b.push_back({"Fpga", [](std::unique_ptr<Device>&) { return SharedFpga(); }, RunFpga});
#endif
  return b;
}

size_t DiffSize(const ft::Program& a, const ft::Program& b) {
  auto d = ft::Diff(a, b);
  return d.ok() ? d->ops.size() : 9999;
}

class DeviceConformance : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    dev_ = GetParam().open(owned_);
    ASSERT_NE(dev_, nullptr);
    v1_ = ClusterProgram(1);
    v2_ = ClusterProgram(2);
  }

  // Frames crossing every changed part of the v1 -> v2 delta, with source ports no earlier call
  // used (so no connection of an earlier run matches).
  std::vector<Frame> Frames(const ft::Program& p) {
    sim::SimNic::Options o;
    o.conntrack_capacity = 16;
    auto ports = sim::SimNic::Create(*sim::BuiltinProfile("unlimited"), o);
    EXPECT_TRUE(ports->DeclarePorts(p.ports).ok());
    std::vector<Frame> out;
    for (const sim::TraceRequest& r : testing::ClusterPackets()) {
      sim::PacketSpec s;
      s.src = r.src;
      s.dst = r.dst;
      s.src_port = next_port_++;
      s.dst_port = r.dst_port;
      Frame f;
      f.bytes = *sim::BuildPacket(s);
      f.in_port = r.in_port;
      if (f.in_port == sim::kInvalidPort) f.in_port = *ports->FindPortByName("vf:shop/pod1");
      f.port_class = static_cast<uint8_t>(ports->ports()[f.in_port].port_class);
      out.push_back(std::move(f));
    }
    return out;
  }

  // What a fresh simulator holding only `p` does with `frames`.
  static std::vector<Fate> Reference(const ft::Program& p, const std::vector<Frame>& frames) {
    auto nic = sim::SimNic::Create(*sim::BuiltinProfile("unlimited"));
    EXPECT_TRUE(nic->Install(p).ok());
    return RunSim(*nic, frames);
  }

  void ExpectFatesOf(const ft::Program& p) {
    const std::vector<Frame> frames = Frames(p);
    const std::vector<Fate> got = GetParam().run(*dev_, frames);
    const std::vector<Fate> want = Reference(p, frames);
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], want[i]) << "packet " << i;
  }

  std::unique_ptr<Device> owned_;
  Device* dev_ = nullptr;
  ft::Program v1_, v2_;
  inline static uint16_t next_port_ = 20000;
};

TEST_P(DeviceConformance, InstallReadsBackTheProgramAndForwardsLikeTheSimulator) {
  ASSERT_TRUE(dev_->Install(v1_).ok());
  auto back = dev_->ReadBack();
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(DiffSize(*back, v1_), 0u);
  ExpectFatesOf(v1_);
}

TEST_P(DeviceConformance, ReconcilerPushesOnlyTheDiffAndPacketsFollow) {
  ASSERT_TRUE(dev_->Install(v1_).ok());
  Reconciler r(*dev_);
  auto first = r.Converge(v1_);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->ops_total, 0u) << "the device already holds v1";
  auto second = r.Converge(v2_);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_FALSE(second->reinstalled);
  EXPECT_EQ(second->ops_total, DiffSize(v1_, v2_));
  EXPECT_EQ(second->ops_applied, second->ops_total);
  EXPECT_EQ(DiffSize(*dev_->ReadBack(), v2_), 0u);
  ExpectFatesOf(v2_);
}

TEST_P(DeviceConformance, RestartedProcessConvergesByReadBackWithoutReinstalling) {
  ASSERT_TRUE(Reconciler(*dev_).Converge(v1_).ok());
  Reconciler restarted(*dev_);
  auto same = restarted.Converge(v1_);
  ASSERT_TRUE(same.ok()) << same.status();
  EXPECT_TRUE(same->read_back);
  EXPECT_FALSE(same->reinstalled);
  EXPECT_EQ(same->ops_total, 0u);
  auto changed = Reconciler(*dev_).Converge(v2_);
  ASSERT_TRUE(changed.ok()) << changed.status();
  EXPECT_FALSE(changed->reinstalled);
  EXPECT_EQ(changed->ops_total, DiffSize(v1_, v2_));
  ExpectFatesOf(v2_);
}

TEST_P(DeviceConformance, FailedApplyLeavesTheDeviceAsItWas) {
  ASSERT_TRUE(dev_->Install(v1_).ok());
  auto delta = ft::Diff(v1_, v2_);
  ASSERT_TRUE(delta.ok());
  // A valid delta with one op at the end that does not fit: deleting an entry not installed.
  ft::DeltaOp bad;
  bad.kind = ft::DeltaOp::Kind::kDeleteEntry;
  bad.entry = {ft::kTableForward, 7, {ft::MatchDstPrefix(testing::Pfx("198.51.100.0/24"))}, {}, {}};
  delta->ops.push_back(bad);
  const absl::Status st = dev_->Apply(*delta);
  EXPECT_FALSE(st.ok());
  // The error names the op a user can find in a dump (its match), in plain text.
  EXPECT_NE(st.message().find("198.51.100.0/24"), absl::string_view::npos) << st;
  EXPECT_TRUE(std::all_of(st.message().begin(), st.message().end(), [](unsigned char c) {
    return c >= 0x20 && c < 0x7f;
  })) << st;
  auto back = dev_->ReadBack();
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(DiffSize(*back, v1_), 0u) << "a failed apply must change nothing";
  ExpectFatesOf(v1_);
}

TEST_P(DeviceConformance, CountsPacketsPerEntryAndPerTable) {
  ASSERT_TRUE(dev_->Install(v1_).ok());
  auto before = dev_->GetTableCounter(ft::kTableService);
  ASSERT_TRUE(before.ok()) << before.status();
  sim::PacketSpec s;
  s.src = Ip("203.0.113.7");
  s.dst = Ip("10.96.0.10");
  s.src_port = next_port_++;
  s.dst_port = 80;
  Frame f{*sim::BuildPacket(s), sim::kUplinkPort, static_cast<uint8_t>(ft::PortClass::kUplink)};
  const auto fates = GetParam().run(*dev_, {f});
  ASSERT_EQ(fates.size(), 1u);
  EXPECT_EQ(fates[0].verdict, "forward");
  const ft::Entry& svc = v1_.entries[ft::kTableService].front();
  auto c = dev_->GetEntryCounter(ft::EntryKey(svc));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->packets, 1u);
  EXPECT_EQ(c->bytes, f.bytes.size());
  auto after = dev_->GetTableCounter(ft::kTableService);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->hits, before->hits + 1);
  EXPECT_EQ(dev_->GetEntryCounter("no such entry").status().code(), absl::StatusCode::kNotFound);
}

TEST_P(DeviceConformance, CapabilitiesHoldTheTestClusterOnTheDevice) {
  auto placed = Place(dev_->capabilities(), v2_, dev_->name());
  ASSERT_TRUE(placed.ok()) << placed.status();
  EXPECT_EQ(placed->report.EntriesInSoftware(), 0u) << placed->report.ToText();
  EXPECT_EQ(placed->report.EntriesOnDevice(), v2_.EntryCount());
  EXPECT_FALSE(dev_->name().empty());
}

INSTANTIATE_TEST_SUITE_P(Backends, DeviceConformance, ::testing::ValuesIn(Backends()),
                         [](const ::testing::TestParamInfo<Backend>& param_info) {
                           return param_info.param.name;
                         });

}  // namespace
}  // namespace nicflow::host
