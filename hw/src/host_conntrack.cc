#include "host_conntrack.h"

#include "absl/strings/str_cat.h"
#include "nicflow/flowtables/status.h"
#include "nicflow/hw/image.h"

namespace nicflow::hw {
namespace {

constexpr uint8_t kTcp = 6, kUdp = 17, kSctp = 132, kIcmp = 1, kIcmpv6 = 58;
constexpr uint64_t kNsPerS = 1'000'000'000ull;

bool TcpCanStart(uint8_t f) {
  const bool syn = f & 0x02;
  const bool impossible = (syn && (f & 0x05)) || (f & 0x17) == 0;
  if (impossible || (f & 0x05)) return false;
  return !(syn && (f & 0x10));
}

// Linux's default timeouts (nicflow::sim::CtTimeouts), by protocol and state word.
uint32_t TimeoutS(uint8_t proto, uint32_t state) {
  const uint32_t tcp = state & 0xfu;
  const bool seen_reply = (state >> 6) & 1u;
  const uint32_t sctp = (state >> 7) & 3u;
  switch (proto) {
    case kTcp: {
      static constexpr uint32_t kTcpS[] = {432000, 120, 60, 432000, 120, 60, 30, 120, 10};
      return tcp < 9 ? kTcpS[tcp] : 432000;
    }
    case kUdp:
      return seen_reply ? 120 : 30;
    case kSctp:
      return sctp == 2 ? 10 : sctp == 1 ? 3 : seen_reply ? 210 : 3;
    case kIcmp:
    case kIcmpv6:
      return 30;
    default:
      return 600;
  }
}

}  // namespace

CtKey ReverseKey(const CtKey& k) {
  CtKey r = k;
  for (int j = 0; j < 4; ++j) {
    r[1 + j] = k[5 + j];
    r[5 + j] = k[1 + j];
  }
  r[9] = k[9] << 16 | k[9] >> 16;
  return r;
}

uint32_t HostConntrack::Words(uint32_t buckets, uint32_t connections) {
  const uint32_t aff = std::max<uint32_t>(buckets / 4, 16);
  return NF_CT_HDR_WORDS + buckets * NF_HASH_BUCKET_SLOTS * NF_CT_SLOT_WORDS +
         connections * NF_CTS_WORDS + aff * NF_HASH_BUCKET_SLOTS * NF_AFF_SLOT_WORDS;
}

HostConntrack::HostConntrack(KernelRuntime& rt, uint32_t buckets, uint32_t connections)
    : rt_(rt), buckets_(buckets), conns_cap_(connections) {
  aff_buckets_ = std::max<uint32_t>(buckets / 4, 16);
  state_base_ = NF_CT_HDR_WORDS + buckets * NF_HASH_BUCKET_SLOTS * NF_CT_SLOT_WORDS;
  aff_base_ = state_base_ + connections * NF_CTS_WORDS;
  conns_.resize(connections);
  for (uint32_t i = connections; i > 0; --i) free_.push_back(i - 1);
  used_.assign(size_t{buckets} * NF_HASH_BUCKET_SLOTS, 0);
  aff_used_.assign(size_t{aff_buckets_} * NF_HASH_BUCKET_SLOTS, 0);
  index_.reserve(2 * size_t{connections});
}

absl::Status HostConntrack::Reset() {
  const uint32_t hdr[NF_CT_HDR_WORDS] = {buckets_, state_base_, conns_cap_, aff_base_,
                                         aff_buckets_};
  return rt_.WriteCt(0, hdr);
}

uint32_t HostConntrack::FindFreeSlot(const CtKey& k) const {
  const uint32_t b = ImageHash(k, NF_CT_SEED) & (buckets_ - 1);
  for (uint32_t p = 0; p < NF_HASH_MAX_PROBE; ++p) {
    for (uint32_t s = 0; s < NF_HASH_BUCKET_SLOTS; ++s) {
      const uint32_t slot = ((b + p) & (buckets_ - 1)) * NF_HASH_BUCKET_SLOTS + s;
      if (!used_[slot]) return slot;
    }
  }
  return NF_NO_SLOT;
}

absl::Status HostConntrack::WriteSlot(uint32_t at, const CtKey& key, const CtKey& leaves,
                                      uint32_t dir, uint32_t conn) {
  uint32_t w[NF_CT_SLOT_WORDS] = {};
  for (int i = 0; i < NF_CT_KEY_WORDS; ++i) w[1 + i] = key[i];
  for (int j = 0; j < 4; ++j) {
    w[NF_CT_NEW_SRC + j] = leaves[1 + j];
    w[NF_CT_NEW_DST + j] = leaves[5 + j];
  }
  w[NF_CT_NEW_PORTS] = leaves[9];
  w[NF_CT_CONN] = conn;
  // Body first, the valid word last: a concurrent lookup never sees a half-written slot.
  NICFLOW_RETURN_IF_ERROR(
      rt_.WriteCtAsync(at + 1, std::span<const uint32_t>(w + 1, NF_CT_SLOT_WORDS - 1)));
  const uint32_t flags = NF_VALID | dir;
  return rt_.WriteCtAsync(at, {&flags, 1});
}

absl::Status HostConntrack::ClearSlot(uint32_t at) {
  const uint32_t zero = 0;
  return rt_.WriteCtAsync(at, {&zero, 1});
}

absl::StatusOr<CommitResult> HostConntrack::Commit(const CtKey& orig, const CtKey& xlate,
                                                   uint8_t l4_flags, uint64_t now_ns) {
  if (index_.contains(orig)) return CommitResult::kExists;
  const CtKey reply = ReverseKey(xlate);
  if (index_.contains(reply)) return CommitResult::kClash;
  const uint8_t proto = static_cast<uint8_t>(orig[0] >> 8);
  if (proto == kTcp && !TcpCanStart(l4_flags)) return CommitResult::kInvalid;
  if (free_.empty()) return CommitResult::kFull;
  const uint32_t s1 = FindFreeSlot(orig);
  if (s1 == NF_NO_SLOT) return CommitResult::kFull;
  used_[s1] = 1;
  const uint32_t s2 = FindFreeSlot(reply);
  if (s2 == NF_NO_SLOT) {
    used_[s1] = 0;
    return CommitResult::kFull;
  }
  used_[s2] = 1;
  const uint32_t id = free_.back();
  free_.pop_back();
  Conn& c = conns_[id];
  c = {orig, reply, NF_CT_HDR_WORDS + s1 * NF_CT_SLOT_WORDS,
       NF_CT_HDR_WORDS + s2 * NF_CT_SLOT_WORDS, true};
  uint32_t state[NF_CTS_WORDS] = {0, static_cast<uint32_t>(now_ns / kNsPerS)};
  if (proto == kTcp) state[0] = (l4_flags & 0x02) ? NF_CT_TCP_SYN_SENT : NF_CT_TCP_ESTABLISHED;
  NICFLOW_RETURN_IF_ERROR(rt_.WriteCtAsync(state_base_ + id * NF_CTS_WORDS, state));
  NICFLOW_RETURN_IF_ERROR(WriteSlot(c.orig_at, orig, xlate, 0, id));
  NICFLOW_RETURN_IF_ERROR(WriteSlot(c.reply_at, reply, ReverseKey(orig), 1, id));
  index_.emplace(orig, id << 1);
  index_.emplace(reply, id << 1 | 1);
  ++live_;
  last_commit_ = std::make_pair(orig, reply);
  return CommitResult::kCommitted;
}

absl::Status HostConntrack::RecordAffinity(uint32_t group, const uint32_t client[4], uint64_t label,
                                           uint64_t now_ns) {
  std::array<uint32_t, NF_AFF_KEY_WORDS> key = {group, client[0], client[1], client[2], client[3]};
  uint32_t at;
  if (auto it = affinity_.find(key); it != affinity_.end()) {
    at = it->second;
  } else {
    const uint32_t b = ImageHash(key, NF_AFF_SEED) & (aff_buckets_ - 1);
    uint32_t slot = NF_NO_SLOT;
    for (uint32_t p = 0; p < NF_HASH_MAX_PROBE && slot == NF_NO_SLOT; ++p) {
      for (uint32_t s = 0; s < NF_HASH_BUCKET_SLOTS && slot == NF_NO_SLOT; ++s) {
        const uint32_t cand = ((b + p) & (aff_buckets_ - 1)) * NF_HASH_BUCKET_SLOTS + s;
        if (!aff_used_[cand]) slot = cand;
      }
    }
    if (slot == NF_NO_SLOT) {
      return absl::ResourceExhaustedError("fpga: affinity table bucket chain full");
    }
    aff_used_[slot] = 1;
    at = aff_base_ + slot * NF_AFF_SLOT_WORDS;
    affinity_.emplace(key, at);
  }
  uint32_t w[NF_AFF_SLOT_WORDS] = {};
  for (int i = 0; i < NF_AFF_KEY_WORDS; ++i) w[1 + i] = key[i];
  w[NF_AFF_LABEL_LO] = static_cast<uint32_t>(label);
  w[NF_AFF_LABEL_HI] = static_cast<uint32_t>(label >> 32);
  w[NF_AFF_LAST_LO] = static_cast<uint32_t>(now_ns);
  w[NF_AFF_LAST_HI] = static_cast<uint32_t>(now_ns >> 32);
  NICFLOW_RETURN_IF_ERROR(
      rt_.WriteCtAsync(at + 1, std::span<const uint32_t>(w + 1, NF_AFF_SLOT_WORDS - 1)));
  const uint32_t flags = NF_VALID;
  return rt_.WriteCtAsync(at, {&flags, 1});
}

absl::StatusOr<size_t> HostConntrack::Expire(uint64_t now_ns) {
  std::vector<uint32_t> st(size_t{conns_cap_} * NF_CTS_WORDS);
  NICFLOW_RETURN_IF_ERROR(rt_.ReadCt(state_base_, st));
  const uint64_t now_s = now_ns / kNsPerS;
  size_t n = 0;
  for (uint32_t id = 0; id < conns_cap_; ++id) {
    Conn& c = conns_[id];
    if (!c.in_use) continue;
    const uint32_t state = st[id * NF_CTS_WORDS];
    const uint64_t last = st[id * NF_CTS_WORDS + 1];
    if (last + TimeoutS(static_cast<uint8_t>(c.orig[0] >> 8), state) > now_s) continue;
    NICFLOW_RETURN_IF_ERROR(ClearSlot(c.orig_at));
    NICFLOW_RETURN_IF_ERROR(ClearSlot(c.reply_at));
    used_[(c.orig_at - NF_CT_HDR_WORDS) / NF_CT_SLOT_WORDS] = 0;
    used_[(c.reply_at - NF_CT_HDR_WORDS) / NF_CT_SLOT_WORDS] = 0;
    index_.erase(c.orig);
    index_.erase(c.reply);
    c.in_use = false;
    free_.push_back(id);
    --live_;
    ++n;
  }
  return n;
}

}  // namespace nicflow::hw
