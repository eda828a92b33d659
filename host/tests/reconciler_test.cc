// The reconciler against the real simulator device: minimal deltas, make-before-break, rollback
// on a fault at every operation index, restart by read-back.
#include "nicflow/host/reconciler.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "nicflow/flowtables/incremental.h"
#include "nicflow/flowtables/loader.h"
#include "nicflow/host/sim_device.h"
#include "test_programs.h"

namespace nicflow::host {
namespace {

namespace ft = ::nicflow::flowtables;
using testing::ClusterPackets;
using testing::ClusterProgram;
using testing::Verdicts;
using Mode = ReconcilerOptions::Mode;

std::unique_ptr<SimDevice> NewDevice() {
  sim::SimNic::Options o;
  o.conntrack_capacity = 1024;  // the default (1M connections) costs ~0.3 s to allocate
  return std::make_unique<SimDevice>(*sim::BuiltinProfile("unlimited"), o);
}

size_t DiffSize(const ft::Program& a, const ft::Program& b) {
  auto d = ft::Diff(a, b);
  return d.ok() ? d->ops.size() : 9999;
}

class ReconcilerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    v1_ = ClusterProgram(1);
    v2_ = ClusterProgram(2);
    ASSERT_FALSE(v1_.tables.empty());
    ASSERT_FALSE(v2_.tables.empty());
    packets_ = ClusterPackets();
    // Reference verdicts of each version on a device that holds only it.
    for (const ft::Program* p : {&v1_, &v2_}) {
      auto dev = NewDevice();
      ASSERT_TRUE(dev->Install(*p).ok());
      (p == &v1_ ? old_ : new_) = Verdicts(dev->nic(), packets_);
    }
    ASSERT_NE(old_, new_) << "the versions must differ in some verdict";
  }

  ft::Program v1_, v2_;
  std::vector<sim::TraceRequest> packets_;
  std::vector<std::string> old_, new_;
};

TEST_F(ReconcilerTest, FirstConvergeInstallsThenPushesOnlyTheDiff) {
  auto dev = NewDevice();
  Reconciler r(*dev);
  auto first = r.Converge(v1_);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(first->read_back);
  EXPECT_TRUE(first->reinstalled);
  EXPECT_EQ(Verdicts(dev->nic(), packets_), old_);

  auto second = r.Converge(v2_);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_FALSE(second->reinstalled);
  EXPECT_FALSE(second->read_back);
  EXPECT_EQ(second->ops_total, DiffSize(v1_, v2_));
  EXPECT_EQ(second->ops_applied, second->ops_total);
  EXPECT_EQ(second->transactions, 1u);
  EXPECT_GT(second->groups_added, 0u);
  EXPECT_GT(second->groups_deleted, 0u);
  EXPECT_GT(second->entries_modified, 0u);
  EXPECT_EQ(DiffSize(*dev->ReadBack(), v2_), 0u);
  EXPECT_EQ(Verdicts(dev->nic(), packets_), new_);
}

TEST_F(ReconcilerTest, ConvergingToTheInstalledProgramPushesNothing) {
  auto dev = NewDevice();
  Reconciler r(*dev);
  ASSERT_TRUE(r.Converge(v1_).ok());
  const uint64_t ops_before = dev->nic().operations();
  auto again = r.Converge(v1_);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->ops_total, 0u);
  EXPECT_EQ(again->transactions, 0u);
  EXPECT_EQ(dev->nic().operations(), ops_before);
}

TEST_F(ReconcilerTest, RestartReadsBackAndConvergesByDiffWithoutFlushing) {
  auto dev = NewDevice();
  ASSERT_TRUE(Reconciler(*dev).Converge(v1_).ok());
  const uint64_t ops_before = dev->nic().operations();

  Reconciler restarted(*dev);  // a new process: knows nothing but what it reads back
  auto same = restarted.Converge(v1_);
  ASSERT_TRUE(same.ok()) << same.status();
  EXPECT_TRUE(same->read_back);
  EXPECT_FALSE(same->reinstalled);
  EXPECT_EQ(same->ops_total, 0u);
  EXPECT_EQ(dev->nic().operations(), ops_before) << "no op, let alone a flush";

  Reconciler restarted_again(*dev);
  auto changed = restarted_again.Converge(v2_);
  ASSERT_TRUE(changed.ok()) << changed.status();
  EXPECT_FALSE(changed->reinstalled);
  EXPECT_EQ(changed->ops_total, DiffSize(v1_, v2_));
  EXPECT_EQ(dev->nic().operations(), ops_before + DiffSize(v1_, v2_));
  EXPECT_EQ(Verdicts(dev->nic(), packets_), new_);
}

// Every intermediate state of an op-by-op apply gives each packet its old or its new verdict.
TEST_F(ReconcilerTest, EveryIntermediateStateGivesOldOrNewVerdicts) {
  auto dev = NewDevice();
  ASSERT_TRUE(Reconciler(*dev).Converge(v1_).ok());
  size_t checks = 0;
  ReconcilerOptions opts;
  opts.mode = Mode::kPerOp;
  opts.on_applied = [&](size_t applied) {
    const auto now = Verdicts(dev->nic(), packets_);
    for (size_t i = 0; i < packets_.size(); ++i) {
      EXPECT_TRUE(now[i] == old_[i] || now[i] == new_[i])
          << "after " << applied << " ops, packet " << i << ": " << now[i] << " (old " << old_[i]
          << ", new " << new_[i] << ")";
    }
    ++checks;
  };
  Reconciler r(*dev, opts);
  auto rep = r.Converge(v2_);
  ASSERT_TRUE(rep.ok()) << rep.status();
  EXPECT_EQ(checks, DiffSize(v1_, v2_));
  EXPECT_EQ(rep->transactions, checks);
}

struct FaultCase {
  Mode mode;
  size_t batch;
};

class ReconcilerFaultTest : public ReconcilerTest,
                            public ::testing::WithParamInterface<FaultCase> {};

// A fault at op k of the delta (every k): Converge fails naming the op, the device is back on
// v1 (read-back and packets), packets never saw a third verdict on the way, and a later
// Converge without the fault reaches v2.
TEST_P(ReconcilerFaultTest, FaultAtEveryOpIndexRollsBackToTheLastGoodProgram) {
  const size_t n = DiffSize(v1_, v2_);
  ASSERT_GT(n, 5u);
  for (size_t k = 0; k < n; ++k) {
    SCOPED_TRACE("fault at op " + std::to_string(k));
    auto dev = NewDevice();
    ASSERT_TRUE(Reconciler(*dev).Converge(v1_).ok());
    ReconcilerOptions opts;
    opts.mode = GetParam().mode;
    opts.batch_ops = GetParam().batch;
    opts.on_applied = [&](size_t) {
      const auto now = Verdicts(dev->nic(), packets_);
      for (size_t i = 0; i < packets_.size(); ++i) {
        EXPECT_TRUE(now[i] == old_[i] || now[i] == new_[i]) << "packet " << i << ": " << now[i];
      }
    };
    Reconciler r(*dev, opts);
    ASSERT_TRUE(r.Converge(v1_).ok());  // reads back, nothing to do
    // The nth control op from now fails: in per-op mode op k is the (k+1)th device op; in a
    // transaction the device counts each op of the delta.
    dev->nic().InjectFault(k + 1, absl::UnavailableError("injected"));
    auto rep = r.Converge(v2_);
    ASSERT_FALSE(rep.ok());
    EXPECT_EQ(rep.status().code(), absl::StatusCode::kUnavailable);
    EXPECT_THAT(std::string(rep.status().message()), ::testing::HasSubstr("injected"));
    EXPECT_TRUE(r.last_report().failed);
    dev->nic().ClearFaults();
    EXPECT_EQ(DiffSize(*dev->ReadBack(), v1_), 0u) << "device left off the last good program";
    EXPECT_EQ(Verdicts(dev->nic(), packets_), old_);
    ASSERT_TRUE(r.installed().has_value());
    EXPECT_EQ(DiffSize(*r.installed(), v1_), 0u);

    auto retry = r.Converge(v2_);
    ASSERT_TRUE(retry.ok()) << retry.status();
    EXPECT_EQ(Verdicts(dev->nic(), packets_), new_);
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, ReconcilerFaultTest,
                         ::testing::Values(FaultCase{Mode::kPerOp, 0},
                                           FaultCase{Mode::kTransaction, 0},
                                           FaultCase{Mode::kTransaction, 3}),
                         [](const ::testing::TestParamInfo<FaultCase>& param_info) {
                           return param_info.param.mode == Mode::kPerOp
                                      ? std::string("PerOp")
                                      : "Batch" + std::to_string(param_info.param.batch);
                         });

// A decorator that fails every Apply from the nth on, until healed: a device that went away.
class FailingDevice final : public Device {
 public:
  explicit FailingDevice(Device& inner) : inner_(inner) {}
  void FailFrom(size_t nth) { fail_from_ = calls_ + nth; }
  void Heal() { fail_from_ = SIZE_MAX; }

  std::string_view name() const override { return inner_.name(); }
  const Capabilities& capabilities() const override { return inner_.capabilities(); }
  absl::Status Install(const ft::Program& p) override { return inner_.Install(p); }
  absl::Status Apply(const ft::Delta& d) override {
    if (++calls_ >= fail_from_) return absl::UnavailableError("device gone");
    return inner_.Apply(d);
  }
  absl::Status DeclarePorts(const std::vector<ft::PortDecl>& ports) override {
    return inner_.DeclarePorts(ports);
  }
  absl::StatusOr<ft::Program> ReadBack() const override { return inner_.ReadBack(); }
  absl::StatusOr<EntryCounter> GetEntryCounter(std::string_view key) const override {
    return inner_.GetEntryCounter(key);
  }
  absl::StatusOr<TableCounter> GetTableCounter(ft::TableId t) const override {
    return inner_.GetTableCounter(t);
  }

 private:
  Device& inner_;
  size_t calls_ = 0;
  size_t fail_from_ = SIZE_MAX;
};

TEST_F(ReconcilerTest, FailedRollbackIsInternalAndTheNextConvergeReadsBack) {
  auto dev = NewDevice();
  ASSERT_TRUE(Reconciler(*dev).Converge(v1_).ok());
  FailingDevice flaky(*dev);
  ReconcilerOptions opts;
  opts.mode = Mode::kPerOp;
  Reconciler r(flaky, opts);
  ASSERT_TRUE(r.Converge(v1_).ok());
  flaky.FailFrom(3);  // ops 1 and 2 apply, op 3 fails, and so does every undo
  auto rep = r.Converge(v2_);
  ASSERT_FALSE(rep.ok());
  EXPECT_EQ(rep.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(rep.status().message()), ::testing::HasSubstr("rollback failed"));
  EXPECT_FALSE(r.installed().has_value()) << "must not claim to know the device state";

  flaky.Heal();
  auto healed = r.Converge(v2_);
  ASSERT_TRUE(healed.ok()) << healed.status();
  EXPECT_TRUE(healed->read_back);
  EXPECT_EQ(healed->ops_total, DiffSize(v1_, v2_) - 2) << "only what is still missing";
  EXPECT_EQ(Verdicts(dev->nic(), packets_), new_);
}

TEST_F(ReconcilerTest, ReportsCountsAsTextAndJson) {
  auto dev = NewDevice();
  Reconciler r(*dev);
  ASSERT_TRUE(r.Converge(v1_).ok());
  auto rep = r.Converge(v2_);
  ASSERT_TRUE(rep.ok());
  EXPECT_THAT(rep->ToText(), ::testing::HasSubstr("sim:unlimited"));
  const auto j = rep->ToJson();
  EXPECT_EQ(j["ops_total"].get<size_t>(), rep->ops_total);
  EXPECT_EQ(j["entries"]["added"].get<size_t>(), rep->entries_added);
}

TEST_F(ReconcilerTest, EntryCountersAreReadThroughTheDeviceInterface) {
  auto dev = NewDevice();
  ASSERT_TRUE(Reconciler(*dev).Converge(v1_).ok());
  sim::PacketSpec spec;
  spec.src = testing::Ip("203.0.113.7");
  spec.dst = testing::Ip("10.96.0.10");
  spec.src_port = 40000;
  spec.dst_port = 80;
  auto frame = sim::BuildPacket(spec);
  ASSERT_TRUE(frame.ok());
  std::vector<uint8_t> buf(*frame);
  buf.resize(2048);
  size_t len = frame->size();
  dev->nic().ProcessFrame(buf, len, sim::kUplinkPort);
  const ft::Entry& svc = v1_.entries[ft::kTableService].front();
  auto c = dev->GetEntryCounter(ft::EntryKey(svc));
  ASSERT_TRUE(c.ok()) << c.status();
  auto t = dev->GetTableCounter(ft::kTableService);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->packets, 1u);
  EXPECT_FALSE(dev->GetEntryCounter("no such entry").ok());
}

// The agent's hot path: the incremental compiler hands over a delta, the reconciler pushes it
// without diffing whole programs, and the device ends exactly on the incremental program.
class ConvergeDeltaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ft::ClusterState state;
    const std::string dir = std::string(NICFLOW_SOURCE_DIR) + "/examples/shop/";
    ASSERT_TRUE(
        ft::LoadPaths({dir + "cluster.yaml", dir + "policies.yaml", dir + "kube-proxy.yaml"}, {},
                      state)
            .ok());
    auto inc = ft::IncrementalCompiler::Create(std::move(state), {});
    ASSERT_TRUE(inc.ok()) << inc.status();
    inc_ = *std::move(inc);
    dev_ = NewDevice();
  }

  // Flips the readiness of the first endpoint of the first EndpointSlice with endpoints.
  ft::ObjectChange FlipFirstEndpoint() const {
    for (const ft::EndpointSlice& s : inc_->state().endpoint_slices) {
      if (s.endpoints.empty()) continue;
      ft::EndpointSlice changed = s;
      changed.endpoints[0].ready = !changed.endpoints[0].ready;
      return {ft::ObjectChange::Kind::kUpdated, changed};
    }
    ADD_FAILURE() << "the example has no endpoints";
    return {};
  }

  std::unique_ptr<ft::IncrementalCompiler> inc_;
  std::unique_ptr<SimDevice> dev_;
};

TEST_F(ConvergeDeltaTest, PushesTheIncrementalDeltaAndTheDeviceHoldsTheIncrementalProgram) {
  Reconciler r(*dev_);
  ft::Delta none;
  EXPECT_EQ(r.ConvergeDelta(none, {}).status().code(), absl::StatusCode::kFailedPrecondition)
      << "without a known installed state there is nothing to apply a delta to";
  ASSERT_TRUE(r.Converge(inc_->program()).ok());

  auto delta = inc_->Apply(FlipFirstEndpoint());
  ASSERT_TRUE(delta.ok()) << delta.status();
  ASSERT_FALSE(delta->empty());
  auto report = r.ConvergeDelta(*delta, inc_->program().ports);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->ops_applied, delta->ops.size());
  EXPECT_EQ(report->diff_ns, 0) << "no whole-program Diff on this path";
  auto back = dev_->ReadBack();
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(DiffSize(*back, inc_->program()), 0u) << "the device holds the incremental program";
  EXPECT_EQ(DiffSize(*r.installed(), inc_->program()), 0u) << "and the cache knows it";
  auto again = r.Converge(inc_->program());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->ops_total, 0u) << "a full converge afterwards finds nothing to do";
}

TEST_F(ConvergeDeltaTest, AFailedDeltaRollsBackAndLeavesTheLastGoodProgram) {
  Reconciler r(*dev_);
  ASSERT_TRUE(r.Converge(inc_->program()).ok());
  const ft::Program before = inc_->program();
  auto delta = inc_->Apply(FlipFirstEndpoint());
  ASSERT_TRUE(delta.ok() && !delta->empty());
  dev_->nic().InjectFault(1, absl::UnavailableError("injected"));
  auto report = r.ConvergeDelta(*delta, inc_->program().ports);
  EXPECT_EQ(report.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(report.status().message()), ::testing::HasSubstr("injected"));
  auto back = dev_->ReadBack();
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(DiffSize(*back, before), 0u) << "the device is on the last good program";
  ASSERT_TRUE(r.installed().has_value());
  EXPECT_EQ(DiffSize(*r.installed(), before), 0u);
  // Retrying with the full program converges.
  ASSERT_TRUE(r.Converge(inc_->program()).ok());
  EXPECT_EQ(DiffSize(*dev_->ReadBack(), inc_->program()), 0u);
}

TEST_F(ConvergeDeltaTest, ADeltaThatDoesNotFitTheDeviceIsRefusedAndNothingChanges) {
  Reconciler r(*dev_);
  ASSERT_TRUE(r.Converge(inc_->program()).ok());
  const ft::Program before = inc_->program();
  auto delta = inc_->Apply(FlipFirstEndpoint());
  ASSERT_TRUE(delta.ok() && !delta->empty());
  ft::Delta twice = *delta;  // plus an add of an entry the device already holds
  for (const auto& table : before.entries) {
    if (table.empty()) continue;
    ft::DeltaOp dup;
    dup.kind = ft::DeltaOp::Kind::kAddEntry;
    dup.entry = table.front();
    twice.ops.push_back(dup);
    break;
  }
  auto report = r.ConvergeDelta(twice, inc_->program().ports);
  EXPECT_FALSE(report.ok());
  auto back = dev_->ReadBack();
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(DiffSize(*back, before), 0u) << "the transaction was all-or-nothing";
}

}  // namespace
}  // namespace nicflow::host
