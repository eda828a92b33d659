// FpgaPipeline: image + kernel runtime + the host slow path.
#include "nicflow/hw/fpga_pipeline.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "frame_util.h"
#include "host_conntrack.h"
#include "nicflow/flowtables/status.h"
#include "nicflow/hw/image_format.h"

namespace nicflow::hw {
namespace {

constexpr size_t kRejectBufferBytes = 2048;  // as the simulator's default frame slot

uint64_t Mix(uint64_t h) {
  h ^= h >> 31;
  h *= 0x7fb5d329728ea185ull;
  h ^= h >> 27;
  h *= 0x81dadef4bc2dd44dull;
  h ^= h >> 33;
  return h;
}

uint64_t SteadyNs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

uint64_t Pair(std::span<const uint32_t> c, size_t at) { return uint64_t{c[at + 1]} << 32 | c[at]; }

CtKey KeyAt(std::span<const uint32_t> r, uint32_t meta, size_t src, size_t dst, size_t ports) {
  CtKey k{};
  k[0] = meta;
  for (int j = 0; j < 4; ++j) {
    k[1 + j] = r[src + j];
    k[5 + j] = r[dst + j];
  }
  k[9] = r[ports];
  return k;
}

// The simulator's SNAT port choice (nicflow::sim::ApplySnat): keep the port when it is in range
// and unused, else probe from a hash of the pre-SNAT tuple. 0: exhausted.
uint32_t AllocateSnatPort(const HostConntrack& ct, std::span<const uint32_t> r, const FrameInfo& fi,
                          uint32_t xlate_dst_port) {
  uint32_t lo = r[NF_R_SNAT_RANGE] >> 16;
  uint32_t hi = r[NF_R_SNAT_RANGE] & 0xffffu;
  if (hi < lo) hi = lo;
  const uint32_t before_ports = r[NF_R_SNAT_ORIG_PORTS];
  // The reply tuple the new connection would have (zone 0, as the simulator checks).
  CtKey after{};
  after[0] = uint32_t{fi.proto} << 8 | (fi.v6 ? 1u : 0u);
  for (int j = 0; j < 4; ++j) {
    after[1 + j] = r[NF_R_SNAT_ADDR + j];
    after[5 + j] = r[NF_R_SNAT_BEFORE_DST + j];
  }
  CtKey reply = ReverseKey(after);
  auto free_port = [&](uint32_t port) {
    reply[9] = xlate_dst_port << 16 | port;
    return !ct.InUse(reply);
  };
  const uint32_t keep = before_ports >> 16;
  if (keep >= lo && keep <= hi && free_port(keep)) return keep;
  const uint64_t src_hi = uint64_t{r[NF_R_SNAT_BEFORE_SRC]} << 32 | r[NF_R_SNAT_BEFORE_SRC + 1];
  const uint64_t src_lo = uint64_t{r[NF_R_SNAT_BEFORE_SRC + 2]} << 32 | r[NF_R_SNAT_BEFORE_SRC + 3];
  const uint64_t dst_lo = uint64_t{r[NF_R_SNAT_BEFORE_DST + 2]} << 32 | r[NF_R_SNAT_BEFORE_DST + 3];
  const uint64_t h = Mix(src_lo ^ Mix(dst_lo ^ src_hi) ^ uint64_t{before_ports});
  const uint32_t range = hi - lo + 1;
  for (uint32_t i = 0; i < range; ++i) {
    const uint32_t port = lo + static_cast<uint32_t>((h + i) % range);
    if (free_port(port)) return port;
  }
  return 0;
}

}  // namespace

std::string_view FpgaVerdictName(FpgaVerdict v) {
  switch (v) {
    case FpgaVerdict::kForward:
      return "forward";
    case FpgaVerdict::kDrop:
      return "drop";
    case FpgaVerdict::kReject:
      return "reject";
    case FpgaVerdict::kPunt:
      return "punt";
  }
  return "?";
}

FpgaPipeline::FpgaPipeline(FpgaOptions options, std::unique_ptr<KernelRuntime> rt)
    : options_(std::move(options)), rt_(std::move(rt)) {
  if (!options_.now_ns) options_.now_ns = SteadyNs;
}
FpgaPipeline::~FpgaPipeline() = default;

absl::StatusOr<std::unique_ptr<FpgaPipeline>> FpgaPipeline::Create(FpgaOptions options) {
  NICFLOW_ASSIGN_OR_RETURN(auto rt, KernelRuntime::Open(options.selector));
  return std::unique_ptr<FpgaPipeline>(new FpgaPipeline(std::move(options), std::move(rt)));
}

const DeviceInfo& FpgaPipeline::device() const { return rt_->info(); }
ImageCapacity FpgaPipeline::capacity() const { return CapacityOf(options_.geometry); }
bool FpgaPipeline::has_program() const { return image_ != nullptr; }
const flowtables::Program& FpgaPipeline::installed() const { return image_->program(); }
const TableImage& FpgaPipeline::image() const { return *image_; }
KernelRuntime& FpgaPipeline::runtime() { return *rt_; }
size_t FpgaPipeline::connections() const { return ct_ ? ct_->size() : 0; }

uint32_t FpgaPipeline::CtWords() const {
  return HostConntrack::Words(options_.geometry.ct_buckets, options_.geometry.ct_connections);
}

absl::Status FpgaPipeline::Install(const flowtables::Program& p) {
  NICFLOW_ASSIGN_OR_RETURN(auto image, TableImage::Create(options_.geometry, p));
  const uint32_t counter_words = NF_CNT_WORDS(options_.geometry.action_slots);
  NICFLOW_RETURN_IF_ERROR(rt_->LoadImage(image->words(), CtWords(), counter_words));
  image->TakeDirty();
  image->TakeNewCounterSlots();
  image_ = std::move(image);
  forwarded_ = dropped_ = rejected_ = punted_ = 0;  // the device's counters restarted too
  if (!ct_) {
    ct_ = std::make_unique<HostConntrack>(*rt_, options_.geometry.ct_buckets,
                                          options_.geometry.ct_connections);
    NICFLOW_RETURN_IF_ERROR(ct_->Reset());
  }
  return absl::OkStatus();
}

absl::Status FpgaPipeline::PushNewCounters() {
  static const uint32_t kZero[NF_CNT_ENTRY_WORDS] = {};
  for (uint32_t slot : image_->TakeNewCounterSlots()) {
    NICFLOW_RETURN_IF_ERROR(rt_->WriteCounters(slot * NF_CNT_ENTRY_WORDS, kZero));
  }
  return absl::OkStatus();
}

absl::Status FpgaPipeline::Apply(const flowtables::Delta& d) {
  if (!image_) return absl::FailedPreconditionError("fpga: no program installed");
  NICFLOW_RETURN_IF_ERROR(image_->Apply(d));
  // New entries start at zero before the flip makes them reachable.
  NICFLOW_RETURN_IF_ERROR(PushNewCounters());
  const std::vector<WordRange> dirty = image_->TakeDirty();
  return rt_->UpdateImage(image_->words(), dirty);
}

void FpgaPipeline::SlowPath(FpgaPacket& p, std::span<const uint32_t> r, uint64_t now) {
  FpgaResult& res = p.result;
  const FrameInfo fi = FrameInfoOf(r);
  const uint32_t flags = r[NF_R_FLAGS];
  CtKey xlate{};
  const uint32_t meta = r[NF_R_ORIG_META];
  if (flags & NF_RF_COMMIT)
    xlate = KeyAt(r, meta, NF_R_XLATE_SRC, NF_R_XLATE_DST, NF_R_XLATE_PORTS);
  if (flags & NF_RF_SNAT_ALLOC) {
    res.slow_path = true;
    const uint32_t dport =
        (flags & NF_RF_COMMIT) ? (xlate[9] & 0xffffu) : (r[NF_R_SNAT_ORIG_PORTS] & 0xffffu);
    const uint32_t port = AllocateSnatPort(*ct_, r, fi, dport);
    if (port == 0) {
      res.verdict = FpgaVerdict::kDrop;
      return;  // SNAT ports exhausted: nothing commits (the simulator drops at the SNAT)
    }
    if (res.verdict == FpgaVerdict::kForward) {
      RewriteSourcePort(p.frame, fi, static_cast<uint16_t>(port));
    }
    xlate[9] = port << 16 | (xlate[9] & 0xffffu);
  }
  if (flags & NF_RF_AFFINITY_NEW) {
    res.slow_path = true;
    const uint64_t label = image_->BucketLabelHash(r[NF_R_AFF_GROUP], r[NF_R_AFF_BUCKET]);
    // A full affinity chain only costs stickiness, never the packet.
    ct_->RecordAffinity(r[NF_R_AFF_GROUP], &r[NF_R_AFF_CLIENT], label, now).IgnoreError();
  }
  if (flags & NF_RF_COMMIT) {
    res.slow_path = true;
    const CtKey orig = KeyAt(r, meta, NF_R_ORIG_SRC, NF_R_ORIG_DST, NF_R_ORIG_PORTS);
    auto c = ct_->Commit(orig, xlate, static_cast<uint8_t>(r[NF_R_L4_FLAGS]), now);
    if (!c.ok() || *c == CommitResult::kClash || *c == CommitResult::kFull) {
      res.verdict = FpgaVerdict::kDrop;
    } else if (*c == CommitResult::kCommitted) {
      ++ct_committed_;
    }
  }
}

void FpgaPipeline::Finish(FpgaPacket& p, std::span<const uint32_t> r, size_t i, uint64_t now) {
  const auto& ports = image_->ports();
  FpgaResult& res = p.result;
  // Reset field by field: keeps the trace vector's capacity (no allocation per packet).
  res.verdict = FpgaVerdict::kDrop;
  res.parse_error = 0;
  // out_port and group are set below: assigning into an engaged optional reuses its string's
  // buffer (reset-then-assign allocated strings per packet).
  res.out_port_index = NF_NO_SLOT;
  res.slow_path = false;
  res.hits.clear();
  res.flags = r[NF_R_FLAGS];
  res.ct_state = static_cast<uint8_t>(r[NF_R_CT_STATE]);
  res.meta_flags = r[NF_R_META_FLAGS];
  switch (r[NF_R_VERDICT]) {
    case NF_VERDICT_OUTPUT:
      res.verdict = FpgaVerdict::kForward;
      break;
    case NF_VERDICT_REJECT:
      res.verdict = FpgaVerdict::kReject;
      break;
    case NF_VERDICT_PUNT:
      res.verdict = FpgaVerdict::kPunt;
      break;
    case NF_VERDICT_PARSE_ERROR:
      res.parse_error = static_cast<uint8_t>(r[NF_R_PARSE_ERROR]);
      res.out_port.reset();
      res.group.reset();
      res.bucket.clear();
      return;
    default:
      res.verdict = FpgaVerdict::kDrop;
      break;
  }
  for (uint32_t t = 0; t < std::min<uint32_t>(r[NF_R_TRACE_COUNT], NF_MAX_TRACE); ++t) {
    const uint32_t w = r[NF_R_TRACE + t];
    res.hits.push_back({static_cast<flowtables::TableId>(w >> 24), (w & NF_TRACE_HIT) != 0,
                        w & NF_TRACE_SLOT_MASK});
  }
  const auto gb = r[NF_R_GROUP] != NF_NO_SLOT ? image_->GroupBucketOf(r[NF_R_GROUP], r[NF_R_BUCKET])
                                              : std::nullopt;
  if (gb) {
    res.group = gb->first;
    res.bucket = gb->second;
  } else {
    res.group.reset();
    res.bucket.clear();
  }
  if (res.verdict == FpgaVerdict::kForward) {
    const auto f = out_.frame(i, p.frame.size());
    std::copy(f.begin(), f.end(), p.frame.begin());
  }
  SlowPath(p, r, now);
  if (res.verdict != FpgaVerdict::kForward || r[NF_R_PORT] >= ports.size()) res.out_port.reset();
  if (res.verdict == FpgaVerdict::kForward) {
    res.out_port_index = r[NF_R_PORT];
    if (r[NF_R_PORT] < ports.size()) res.out_port = ports[r[NF_R_PORT]];
  } else if (res.verdict == FpgaVerdict::kReject) {
    std::vector<uint8_t> reply = BuildRejectReply(p.frame, FrameInfoOf(r), kRejectBufferBytes);
    if (reply.empty()) {
      res.verdict = FpgaVerdict::kDrop;
    } else {
      p.frame = std::move(reply);
      res.out_port_index = p.in_port;
    }
  }
}

// A packet that conntrack (or affinity) saw before an earlier packet of the same batch created
// the state it should have seen: the device ran them concurrently, the simulator in order. Such a
// packet's counts are taken back and it runs again, so the end result is sequential.
bool FpgaPipeline::Stale(std::span<const uint32_t> r) const {
  const uint32_t f = r[NF_R_FLAGS];
  if ((f & NF_RF_CT_LOOKUP) && !(f & NF_RF_CT_HIT) && !batch_tuples_.empty() &&
      batch_tuples_.contains(
          KeyAt(r, r[NF_R_ORIG_META], NF_R_ORIG_SRC, NF_R_ORIG_DST, NF_R_ORIG_PORTS))) {
    return true;
  }
  // The SNAT kept the source port because the device did not yet hold the reply tuple an
  // earlier packet of the batch took: sequentially, this packet's port would be allocated.
  if ((f & NF_RF_COMMIT) && (f & NF_RF_SNAT) && !(f & NF_RF_SNAT_ALLOC) && !batch_tuples_.empty() &&
      batch_tuples_.contains(ReverseKey(
          KeyAt(r, r[NF_R_ORIG_META], NF_R_XLATE_SRC, NF_R_XLATE_DST, NF_R_XLATE_PORTS)))) {
    return true;
  }
  if ((f & NF_RF_AFFINITY_NEW) && !batch_clients_.empty()) {
    const CtKey k = {r[NF_R_AFF_GROUP], r[NF_R_AFF_CLIENT], r[NF_R_AFF_CLIENT + 1],
                     r[NF_R_AFF_CLIENT + 2], r[NF_R_AFF_CLIENT + 3]};
    return batch_clients_.contains(k);
  }
  return false;
}

void FpgaPipeline::NoteBatchState(std::span<const uint32_t> r, const FpgaPacket& p) {
  const uint32_t f = r[NF_R_FLAGS];
  if ((f & NF_RF_COMMIT) && ct_->last_commit()) {
    batch_tuples_.insert(ct_->last_commit()->first);
    batch_tuples_.insert(ct_->last_commit()->second);
  }
  if ((f & NF_RF_AFFINITY_NEW) && p.result.verdict != FpgaVerdict::kDrop) {
    batch_clients_.insert(CtKey{r[NF_R_AFF_GROUP], r[NF_R_AFF_CLIENT], r[NF_R_AFF_CLIENT + 1],
                                r[NF_R_AFF_CLIENT + 2], r[NF_R_AFF_CLIENT + 3]});
  }
}

absl::Status FpgaPipeline::RevertCounters(std::span<const std::vector<uint32_t>> results,
                                          std::span<const uint32_t> lens) {
  const uint32_t slots = options_.geometry.action_slots;
  std::vector<uint32_t> c(NF_CNT_WORDS(slots));
  NICFLOW_RETURN_IF_ERROR(rt_->ReadCounters(c));
  auto sub = [&](size_t at, uint64_t v) {
    const uint64_t now = Pair(c, at) - v;
    c[at] = static_cast<uint32_t>(now);
    c[at + 1] = static_cast<uint32_t>(now >> 32);
  };
  const size_t dev = NF_CNT_DEVICE_BASE(slots);
  for (size_t k = 0; k < results.size(); ++k) {
    const auto& r = results[k];
    for (uint32_t t = 0; t < std::min<uint32_t>(r[NF_R_TRACE_COUNT], NF_MAX_TRACE); ++t) {
      const uint32_t w = r[NF_R_TRACE + t];
      const size_t tc = NF_CNT_TABLE_BASE(slots) + (w >> 24) * NF_CNT_TABLE_WORDS;
      if (w & NF_TRACE_HIT) {
        sub(tc, 1);
        sub((w & NF_TRACE_SLOT_MASK) * NF_CNT_ENTRY_WORDS, 1);
        sub((w & NF_TRACE_SLOT_MASK) * NF_CNT_ENTRY_WORDS + 2, lens[k]);
      } else {
        sub(tc + 2, 1);
      }
      sub(tc + 4, lens[k]);
    }
    sub(dev + 2 * NF_DEV_RX, 1);
    if (r[NF_R_FLAGS] & NF_RF_FELL_OFF) sub(dev + 2 * NF_DEV_FELL_OFF, 1);
    if (r[NF_R_VERDICT] == NF_VERDICT_PUNT) sub(dev + 2 * NF_DEV_PUNTS, 1);
    if (r[NF_R_FLAGS] & (NF_RF_COMMIT | NF_RF_SNAT_ALLOC | NF_RF_AFFINITY_NEW)) {
      sub(dev + 2 * NF_DEV_SLOW_PATH, 1);
    }
  }
  return rt_->WriteCounters(0, c);
}

absl::Status FpgaPipeline::ProcessBatch(std::span<FpgaPacket> packets) {
  if (!image_) return absl::FailedPreconditionError("fpga: no program installed");
  std::vector<size_t> todo(packets.size());
  for (size_t i = 0; i < todo.size(); ++i) todo[i] = i;
  // Each round finishes at least its first packet, so rounds <= packets.
  while (!todo.empty()) {
    frames_.resize(todo.size());
    for (size_t k = 0; k < todo.size(); ++k) {
      const FpgaPacket& p = packets[todo[k]];
      frames_[k] = {p.frame, p.in_port, p.port_class};
    }
    const uint64_t now = options_.now_ns();
    NICFLOW_RETURN_IF_ERROR(rt_->Run(frames_, now, out_));
    batch_tuples_.clear();
    batch_clients_.clear();
    std::vector<size_t> stale;
    std::vector<std::vector<uint32_t>> stale_results;
    std::vector<uint32_t> stale_lens;
    for (size_t k = 0; k < todo.size(); ++k) {
      const std::span<const uint32_t> r = out_.result(k);
      FpgaPacket& p = packets[todo[k]];
      if (Stale(r)) {
        stale.push_back(todo[k]);
        stale_results.emplace_back(r.begin(), r.end());
        stale_lens.push_back(static_cast<uint32_t>(p.frame.size()));
        continue;
      }
      // clear() frees a large set: size it once for the batch's commits, not by doubling.
      if ((r[NF_R_FLAGS] & NF_RF_COMMIT) && batch_tuples_.empty()) {
        batch_tuples_.reserve(2 * (todo.size() - k));
      }
      ct_->ClearLastCommit();
      Finish(p, r, k, now);
      NoteBatchState(r, p);
      switch (p.result.verdict) {
        case FpgaVerdict::kForward:
          ++forwarded_;
          break;
        case FpgaVerdict::kDrop:
          ++dropped_;
          break;
        case FpgaVerdict::kReject:
          ++rejected_;
          break;
        case FpgaVerdict::kPunt:
          ++punted_;
          break;
      }
    }
    if (!stale.empty()) NICFLOW_RETURN_IF_ERROR(RevertCounters(stale_results, stale_lens));
    todo = std::move(stale);
  }
  // The slow path's table writes are in the commit log: queue it now (no wait), so it lands
  // before the caller's next batch while the host goes on.
  return rt_->SubmitCt();
}

absl::StatusOr<FpgaEntryCounters> FpgaPipeline::GetEntryCounters(std::string_view entry_key) const {
  if (!image_) return absl::FailedPreconditionError("fpga: no program installed");
  for (const auto& table : image_->program().entries) {
    for (const auto& e : table) {
      if (flowtables::EntryKey(e) != entry_key) continue;
      const auto slot = image_->SlotOf(e);
      if (!slot) break;
      uint32_t c[NF_CNT_ENTRY_WORDS];
      std::vector<uint32_t> all(NF_CNT_WORDS(options_.geometry.action_slots));
      NICFLOW_RETURN_IF_ERROR(rt_->ReadCounters(all));
      std::copy_n(all.begin() + slot->first * NF_CNT_ENTRY_WORDS, NF_CNT_ENTRY_WORDS, c);
      return FpgaEntryCounters{Pair(c, 0), Pair(c, 2)};
    }
  }
  return absl::NotFoundError(absl::StrCat("fpga: no installed entry ", Sv(entry_key)));
}

absl::StatusOr<FpgaTableCounters> FpgaPipeline::GetTableCounters(flowtables::TableId t) const {
  if (!image_ || t >= image_->program().tables.size()) {
    return absl::NotFoundError(absl::StrCat("fpga: no table ", t));
  }
  std::vector<uint32_t> all(NF_CNT_WORDS(options_.geometry.action_slots));
  NICFLOW_RETURN_IF_ERROR(rt_->ReadCounters(all));
  const size_t at = NF_CNT_TABLE_BASE(options_.geometry.action_slots) + t * NF_CNT_TABLE_WORDS;
  return FpgaTableCounters{Pair(all, at), Pair(all, at + 2), Pair(all, at + 4), Pair(all, at + 6)};
}

absl::StatusOr<FpgaDeviceCounters> FpgaPipeline::GetDeviceCounters() const {
  std::vector<uint32_t> all(NF_CNT_WORDS(options_.geometry.action_slots));
  NICFLOW_RETURN_IF_ERROR(rt_->ReadCounters(all));
  const size_t d = NF_CNT_DEVICE_BASE(options_.geometry.action_slots);
  FpgaDeviceCounters c;
  c.rx = Pair(all, d + 2 * NF_DEV_RX);
  c.parse_errors = Pair(all, d + 2 * NF_DEV_PARSE_ERRORS);
  c.fell_off = Pair(all, d + 2 * NF_DEV_FELL_OFF);
  c.punts = Pair(all, d + 2 * NF_DEV_PUNTS);
  c.slow_path = Pair(all, d + 2 * NF_DEV_SLOW_PATH);
  c.ct_hits = Pair(all, d + 2 * NF_DEV_CT_HITS);
  c.ct_committed = ct_committed_;
  c.forwarded = forwarded_;
  c.dropped = dropped_;
  c.rejected = rejected_;
  c.punted = punted_;
  return c;
}

absl::Status FpgaPipeline::ClearConntrack() {
  if (!ct_) return absl::OkStatus();
  std::vector<uint32_t> zero(CtWords(), 0);
  NICFLOW_RETURN_IF_ERROR(rt_->WriteCt(0, zero));
  ct_ = std::make_unique<HostConntrack>(*rt_, options_.geometry.ct_buckets,
                                        options_.geometry.ct_connections);
  NICFLOW_RETURN_IF_ERROR(ct_->Reset());
  return rt_->FlushCt();
}

absl::StatusOr<size_t> FpgaPipeline::ExpireConntrack() {
  if (!ct_) return size_t{0};
  NICFLOW_ASSIGN_OR_RETURN(size_t n, ct_->Expire(options_.now_ns()));
  NICFLOW_RETURN_IF_ERROR(rt_->FlushCt());
  return n;
}

}  // namespace nicflow::hw
