// Connection tracking with NAT bindings, as the simulated NIC keeps it.
//
// Model (Linux nf_conntrack, as OVS exposes it through ct_state)
// --------------------------------------------------------------
// A connection is created by CtCommit, never by a lookup. It has two tuples: `orig`, the packet
// as it was before this pass applied any NAT, and `reply`, the tuple a reply carries: the
// translated original tuple reversed. Both tuples index the table, so a lookup of either
// direction finds the connection, and tells which direction matched:
//   original direction -> the packet is rewritten to the translated tuple (DNAT/SNAT applied),
//   reply direction    -> the packet is rewritten to the reverse of `orig` (reverse NAT).
// A tuple is (zone, family, proto, src, dst, src port, dst port); ICMP echo uses its identifier
// as both ports, other ICMP and port-less protocols use zero.
//
// Protocol state follows Linux closely enough for timeouts to be right (defaults from
// Documentation/networking/nf_conntrack-sysctl.rst): TCP SYN_SENT 120 s, SYN_RECV 60 s,
// ESTABLISHED 5 days, FIN_WAIT 120 s, CLOSE_WAIT 60 s, LAST_ACK 30 s, TIME_WAIT 120 s, CLOSE 10 s;
// UDP 30 s, 120 s once replied; SCTP 3 s until the peer answers (COOKIE_WAIT), 210 s established,
// 3 s shutting down, 10 s closed; ICMP 30 s; others 600 s. TCP picks up mid-stream connections from
// a bare ACK (nf_conntrack_tcp_loose=1); a first segment with SYN+ACK, FIN or RST, or any segment
// with an impossible flag combination, is invalid.
//
// Capacity is fixed at construction (like nf_conntrack_max). Slots are reserved once; the hash
// index grows geometrically with the number of live connections, so the per-packet path
// allocates only when the table reaches a new high-water mark (amortised, like a resize). Expired
// entries are removed lazily by Find() and in bulk by Expire().
//
// Thread-safety: none; the owning device serialises access.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "nicflow/flowtables/ir.h"

namespace nicflow::sim {

using flowtables::U128;

struct CtTuple {
  U128 src;
  U128 dst;
  uint16_t src_port = 0;
  uint16_t dst_port = 0;
  uint8_t proto = 0;
  bool v6 = false;
  uint16_t zone = 0;

  friend bool operator==(const CtTuple&, const CtTuple&) = default;
};
/// A cheap, well-mixed hash for the conntrack index (absl's generic combine of seven values costs
/// more than the probe it feeds).
struct CtTupleHash {
  size_t operator()(const CtTuple& t) const noexcept {
    const uint64_t a = t.src.lo * 0x9e3779b97f4a7c15ull ^ t.src.hi;
    const uint64_t b = t.dst.lo * 0xc2b2ae3d27d4eb4full ^ t.dst.hi;
    const uint64_t c = uint64_t{t.src_port} << 48 | uint64_t{t.dst_port} << 32 |
                       uint64_t{t.proto} << 24 | uint64_t{t.v6} << 16 | t.zone;
    uint64_t h = a ^ (b << 31 | b >> 33) ^ (c * 0x165667b19e3779f9ull);
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93ull;
    h ^= h >> 32;
    return h;
  }
};

/// The tuple of the other direction (addresses and ports swapped).
CtTuple Reverse(const CtTuple& t);

enum class TcpState : uint8_t {
  kNone,
  kSynSent,
  kSynRecv,
  kEstablished,
  kFinWait,
  kCloseWait,
  kLastAck,
  kTimeWait,
  kClose,
};
std::string_view TcpStateName(TcpState s);

enum class CtDir : uint8_t { kOriginal = 0, kReply = 1 };

/// Timeouts in seconds; the defaults are Linux's.
struct CtTimeouts {
  uint32_t tcp_syn_sent = 120, tcp_syn_recv = 60, tcp_established = 432000, tcp_fin_wait = 120,
           tcp_close_wait = 60, tcp_last_ack = 30, tcp_time_wait = 120, tcp_close = 10;
  uint32_t udp = 30, udp_stream = 120;
  uint32_t sctp_cookie_wait = 3, sctp_established = 210, sctp_shutdown = 3, sctp_closed = 10;
  uint32_t icmp = 30, generic = 600;
};

struct CtEntry {
  CtTuple orig;
  CtTuple reply;
  bool dnat = false;  ///< orig.dst differs from the translated destination
  bool snat = false;  ///< orig.src differs from the translated source
  bool seen_reply = false;
  TcpState tcp = TcpState::kNone;
  uint8_t sctp_closing = 0;  ///< 1 shutting down, 2 closed
  uint8_t fin_seen = 0;      ///< bit per direction
  uint64_t expires_ns = 0;
  uint64_t packets[2] = {0, 0};
  uint64_t bytes[2] = {0, 0};
  /// Unique per commit for the table's lifetime (never reused, not even after Clear()), so a
  /// cached reference (slot, id) tells whether the slot still holds the same connection.
  uint64_t id = 0;
  bool in_use = false;
};

struct CtHit {
  uint32_t slot = 0;
  CtDir dir = CtDir::kOriginal;
};

enum class CtCommitResult : uint8_t {
  kCommitted,  ///< new connection recorded
  kExists,     ///< the tuple already belongs to a connection (nothing changed)
  kFull,       ///< no free slot (the packet should be dropped, as Linux does)
  kClash,      ///< the reply tuple belongs to another connection (dropped, as Linux does)
  kInvalid,    ///< the packet cannot start a connection (e.g. TCP RST)
};

/// Whether a first TCP segment with these flags can start a tracked connection.
bool TcpCanStart(uint8_t tcp_flags) noexcept;

class Conntrack {
 public:
  explicit Conntrack(uint32_t capacity, CtTimeouts timeouts = {});

  /// Finds the connection a tuple belongs to; an expired one is removed and not found.
  std::optional<CtHit> Find(const CtTuple& t, uint64_t now_ns) noexcept;
  /// The same without side effects (traces).
  std::optional<CtHit> Peek(const CtTuple& t, uint64_t now_ns) const noexcept;

  /// Advances protocol state for a packet of a found connection and refreshes its timeout.
  /// `l4_flags` is the TCP flags byte or the first SCTP chunk type. Returns false when the packet
  /// is invalid for the connection's state (it is then not accounted).
  bool Track(CtHit hit, uint8_t l4_flags, uint32_t bytes, uint64_t now_ns) noexcept;
  /// Whether Track() would accept the packet (traces).
  bool WouldAccept(CtHit hit, uint8_t l4_flags) const noexcept;

  /// Records a connection whose first packet had tuple `orig` and leaves (original direction)
  /// with tuple `translated`.
  CtCommitResult Commit(const CtTuple& orig, const CtTuple& translated, uint8_t l4_flags,
                        uint32_t bytes, uint64_t now_ns) noexcept;

  /// Whether some connection uses `t` as its original or reply tuple (source port allocation).
  bool InUse(const CtTuple& t) const noexcept { return index_.contains(t); }

  /// Removes every expired connection; returns how many.
  size_t Expire(uint64_t now_ns);
  void Clear();

  const CtEntry& entry(uint32_t slot) const { return slots_[slot]; }
  /// Whether `slot` still holds connection `id` and it has not expired: a flow cache's
  /// remembered hit is then what Find() would return for the connection's tuples.
  bool IsLive(uint32_t slot, uint64_t id, uint64_t now_ns) const noexcept {
    return slot < slots_.size() && slots_[slot].in_use && slots_[slot].id == id &&
           slots_[slot].expires_ns > now_ns;
  }
  /// Hints the CPU to load the index slot a lookup of `t` starts at.
  void PrefetchTuple(const CtTuple& t) const noexcept { index_.prefetch(t); }
  /// Hints the CPU to load a connection before a batch uses it.
  void Prefetch(uint32_t slot) const noexcept {
    if (slot >= slots_.size()) return;
    const char* p = reinterpret_cast<const char*>(&slots_[slot]);
    for (size_t off = 0; off < sizeof(CtEntry); off += 64) __builtin_prefetch(p + off);
  }
  size_t size() const { return size_; }
  uint32_t capacity() const { return capacity_; }
  /// Live connections (for dumps and tests).
  std::vector<CtEntry> Snapshot() const;

 private:
  uint64_t TimeoutNs(const CtEntry& e) const noexcept;
  void Erase(uint32_t slot) noexcept;

  CtTimeouts timeouts_;
  uint32_t capacity_;
  // Reserved to `capacity_` up front and grown by push_back (never reallocating), so a large
  // table costs address space, not time, until it fills.
  std::vector<CtEntry> slots_;
  std::vector<uint32_t> free_;  // recycled slots
  // tuple -> slot << 1 | direction
  absl::flat_hash_map<CtTuple, uint32_t, CtTupleHash> index_;
  size_t size_ = 0;
  uint64_t next_id_ = 1;
};

}  // namespace nicflow::sim
