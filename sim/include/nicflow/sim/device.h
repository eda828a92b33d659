// SimNic: the software SmartNIC. It holds an installed pipeline program (checked against a device
// profile), ports, conntrack and counters, and runs frames through the program with the
// semantics of nicflow/flowtables/ir.h.
//
// Control plane
// -------------
// Install() replaces the whole program; Apply() applies a flowtables::Delta; ApplyOp() one op.
// All three are transactional: every op is checked first (identity, match kinds against the
// table schema, gotos forward, referenced groups present, profile support and capacity, injected
// faults), and only when all pass is anything changed. installed() reads back the program as the
// device holds it (tables, entries sorted by priority then identity, groups by name, ports).
// Counters are kept per entry (by flowtables::EntryKey, kept across ModifyEntry), per table and
// per device.
//
// Data plane
// ----------
// ProcessBatch() runs frames in place: it parses, runs tables from tables[0], applies NAT to the
// frame only when it leaves (so a REJECT answers the frame as it was received), updates
// checksums incrementally, conntrack and counters. Select groups pick a bucket by weighted
// Maglev hashing of the group's hash fields (ClientIP affinity first when configured). Trace()
// runs one packet without side effects and forks at every select group, reporting every path.
// An exact-match flow cache (src/flow_cache.h) in front of the tables replays the outcome of
// established flows; it is transparent: verdicts, rewrites, conntrack and every counter are the
// same with it as without it. ProcessBatch() parses a batch and probes the cache for all of its
// frames first (prefetching what the hits will touch), then runs the frames strictly in order.
//
// A punted frame leaves as it was received, with a PuntState (table, fields, conntrack tuple);
// ResumeFrame() continues it on a SimNic holding the whole program (the software path).
//
// Ports: PortId 0 is the host, 1 the uplink, VFs get ids from 2 in the order their pods are first
// seen and keep them for the device's lifetime.
//
// Thread-safety: none. One thread owns a SimNic; control calls and ProcessBatch must not overlap
// (the live loop in live.h runs both from its owner's thread).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nicflow/flowtables/ir.h"
#include "nicflow/sim/clock.h"
#include "nicflow/sim/conntrack.h"
#include "nicflow/sim/packet.h"
#include "nicflow/sim/profile.h"

namespace nicflow::sim {

using PortId = uint32_t;
inline constexpr PortId kHostPort = 0;
inline constexpr PortId kUplinkPort = 1;
inline constexpr PortId kInvalidPort = 0xffffffffu;

struct PortInfo {
  PortId id = kInvalidPort;
  flowtables::PortRef ref;
  flowtables::PortClass port_class = flowtables::PortClass::kNone;
  std::vector<IpAddr> ips;  ///< pod IPs of a VF, node IPs of the host
  std::string name;         ///< ref.ToString(): "host", "uplink", "vf:ns/pod"
};

enum class Verdict : uint8_t { kForward, kDrop, kReject, kPunt };
std::string_view VerdictName(Verdict v);  ///< "forward", "drop", "reject", "punt"

enum class DropReason : uint8_t {
  kNone,
  kParseError,
  kNoProgram,
  kDropAction,
  kFellOff,   ///< an action list ended without a terminal action or goto
  kNoBucket,  ///< select group with no bucket of positive weight
  kCtFull,
  kCtClash,        ///< commit found the reply tuple taken (Linux drops these too)
  kSnatExhausted,  ///< no free source port in the SNAT range
  kBadRewrite,     ///< NAT to an address of the other family
  kRejectFailed,   ///< the reply did not fit the buffer
  kCount,
};
std::string_view DropReasonName(DropReason r);

struct PacketResult {
  Verdict verdict = Verdict::kDrop;
  DropReason reason = DropReason::kNone;
  ParseError parse_error = ParseError::kNone;
  PortId out_port = kInvalidPort;  ///< forward: output port; reject: the input port
};

/// What a device hands the host with a punted packet so the software datapath can continue
/// exactly where the device stopped (SimNic::ResumeFrame): the table whose action punted, the
/// field vector at that point (pipeline registers meta.*, ct_state, and the header fields as the
/// actions so far rewrote them; the frame itself leaves a punting device as it was received) and
/// the connection tuple the device's first ct lookup saw (what a later commit records as the
/// original direction).
struct PuntState {
  flowtables::TableId table = 0;
  PacketFields fields;
  bool have_orig = false;
  CtTuple orig;
};

/// Frames processed in place. Slots are allocated once; Add() copies a frame in.
class PacketBatch {
 public:
  explicit PacketBatch(size_t capacity, size_t max_frame_bytes = 2048);
  /// False when the batch is full or the frame does not fit a slot.
  bool Add(std::span<const uint8_t> frame, PortId in_port);
  void Clear() { size_ = 0; }
  size_t size() const { return size_; }
  size_t capacity() const { return in_port_.size(); }
  std::span<uint8_t> frame(size_t i) { return {data_.data() + i * max_frame_, len_[i]}; }
  std::span<const uint8_t> frame(size_t i) const {
    return {data_.data() + i * max_frame_, len_[i]};
  }
  PortId in_port(size_t i) const { return in_port_[i]; }
  const PacketResult& result(size_t i) const { return results_[i]; }
  /// The punt state of frame `i`; meaningful only when its result's verdict is kPunt.
  const PuntState& punt(size_t i) const { return punts_[i]; }

 private:
  friend class SimNic;
  size_t max_frame_;
  size_t size_ = 0;
  std::vector<uint8_t> data_;
  std::vector<uint32_t> len_;
  std::vector<PortId> in_port_;
  std::vector<PacketResult> results_;
  std::vector<PuntState> punts_;
};

struct EntryCounters {
  uint64_t packets = 0;
  uint64_t bytes = 0;
};
struct TableCounters {
  uint64_t packets = 0;  ///< lookups
  uint64_t bytes = 0;
  uint64_t hits = 0;
  uint64_t misses = 0;  ///< default actions ran
  uint64_t ties = 0;    ///< equal-priority overlaps seen (the compiler promises none)
};
struct PortCounters {
  uint64_t rx_packets = 0, rx_bytes = 0, tx_packets = 0, tx_bytes = 0;
};
struct DeviceCounters {
  uint64_t rx_packets = 0, rx_bytes = 0;
  uint64_t forwarded = 0, dropped = 0, rejected = 0, punted = 0;
  uint64_t ct_committed = 0;
  std::array<uint64_t, static_cast<size_t>(ParseError::kCount)> parse_errors{};
  std::array<uint64_t, static_cast<size_t>(DropReason::kCount)> drops{};
};

/// The exact-match flow cache in front of the pipeline (see SimNic::Options::flow_cache_entries).
struct FlowCacheStats {
  uint64_t hits = 0;
  uint64_t misses = 0;  ///< lookups that found nothing usable (including stale entries)
  uint64_t insertions = 0;
  uint64_t invalidations = 0;  ///< program changes that emptied the cache
  uint64_t uncacheable = 0;    ///< interpreter runs whose outcome could not be cached
};

/// One packet to trace, described like `nicflow trace` arguments.
struct TraceRequest {
  PortId in_port = kUplinkPort;
  uint8_t proto = kProtoTcp;
  IpAddr src;
  uint16_t src_port = 0;  ///< 0: an ephemeral port is chosen (40000)
  IpAddr dst;
  uint16_t dst_port = 0;
  uint8_t tcp_flags = kTcpSyn;
};

struct TraceStep {
  flowtables::TableId table_id = 0;
  std::string table;
  bool miss = false;  ///< default actions ran
  int32_t priority = 0;
  std::string match;               ///< flowtables::MatchesToString of the entry ("" on a miss)
  std::string actions;             ///< flowtables::ActionsToString of what ran
  std::string origin;              ///< flowtables::Origin::ToString ("" on a miss)
  std::vector<std::string> notes;  ///< e.g. "group g: bucket 10.0.0.1:80", "ct_state=trk|new"
};

struct TracePath {
  Verdict verdict = Verdict::kDrop;
  DropReason reason = DropReason::kNone;
  std::vector<TraceStep> steps;
  PortId out_port = kInvalidPort;
  std::string out_port_name;  ///< "vf:ns/pod", "uplink", "host"; "" unless forwarded
  IpAddr src, dst;            ///< as the packet leaves
  uint16_t src_port = 0, dst_port = 0;
  bool translated = false;           ///< destination rewritten
  bool masquerade = false;           ///< source rewritten
  std::vector<std::string> buckets;  ///< "group: label" chosen on this path
  uint8_t ct_state = 0;
  uint32_t meta_flags = 0;
};

struct TraceResult {
  /// forward if any path forwards, else reject if any rejects, else punt if any punts, else drop.
  Verdict verdict = Verdict::kDrop;
  std::vector<TracePath> paths;
  /// Distinct "ip:port" ("[v6]:port") destinations of the forwarded paths, in path order.
  std::vector<std::string> destinations;
  bool translated = false;             ///< some forwarded path was DNATed
  bool masquerade = false;             ///< some forwarded path was source-NATed
  std::vector<std::string> out_ports;  ///< distinct output port names of forwarded paths
};

class SimNic {
 public:
  struct Options {
    const Clock* clock = nullptr;  ///< default: a SteadyClock owned by the device
    CtTimeouts ct_timeouts;
    uint32_t conntrack_capacity = 0;  ///< 0: the profile's (or 65536 if the profile has none)
    /// Entries of the exact-match flow cache that replays established flows without running the
    /// tables (results and counters are identical either way); 0 disables it. 128 bytes each,
    /// allocated when the first flow is cached.
    uint32_t flow_cache_entries = 32768;
  };

  static std::unique_ptr<SimNic> Create(DeviceProfile profile, Options options);
  static std::unique_ptr<SimNic> Create(DeviceProfile profile) { return Create(profile, {}); }
  ~SimNic();
  SimNic(const SimNic&) = delete;
  SimNic& operator=(const SimNic&) = delete;

  const DeviceProfile& profile() const;

  // ---- Control plane (all transactional) ----

  /// Replaces the installed program. Errors: InvalidArgument (Validate() or a match the table
  /// schema does not declare), Unimplemented / ResourceExhausted (profile), an injected fault.
  [[nodiscard]] absl::Status Install(const flowtables::Program& p);
  /// Applies a delta atomically. Errors as Install, plus FailedPrecondition when an op does not
  /// fit the installed program (adding an existing entry, deleting a missing one, a goto
  /// backwards, a group still referenced) and when nothing is installed.
  [[nodiscard]] absl::Status Apply(const flowtables::Delta& d);
  [[nodiscard]] absl::Status ApplyOp(const flowtables::DeltaOp& op);
  /// The program as installed (empty Program when none).
  const flowtables::Program& installed() const;
  bool has_program() const;

  /// Fails the `nth` control operation from now (1 = the next) with `status`. An op is one delta
  /// op; Install counts one op per group and per entry. The failing call changes nothing.
  void InjectFault(uint64_t nth, absl::Status status);
  void ClearFaults();
  uint64_t operations() const;  ///< control operations attempted so far

  // ---- Ports ----
  const std::vector<PortInfo>& ports() const;
  std::optional<PortId> FindPort(const flowtables::PortRef& ref) const;
  /// The VF (or the host) whose declared addresses include `ip`: the port a packet from that
  /// address enters by (`nicflow trace` picks the pod's VF this way); nullopt if none.
  std::optional<PortId> PortOwning(const IpAddr& ip) const;
  /// "host", "uplink" or "vf:ns/pod". Errors: NotFound.
  absl::StatusOr<PortId> FindPortByName(std::string_view name) const;
  /// Declares ports and their addresses (Install declares Program::ports). VFs beyond the
  /// profile's max_vfs: ResourceExhausted.
  absl::Status DeclarePorts(const std::vector<flowtables::PortDecl>& ports);

  // ---- Counters ----
  /// Errors: NotFound when no installed entry has that key.
  absl::StatusOr<EntryCounters> GetEntryCounters(std::string_view entry_key) const;
  absl::StatusOr<TableCounters> GetTableCounters(flowtables::TableId table) const;
  absl::StatusOr<PortCounters> GetPortCounters(PortId port) const;
  const DeviceCounters& counters() const;
  void ResetCounters();
  const FlowCacheStats& flow_cache_stats() const;

  // ---- Data plane ----
  /// Runs every frame of the batch; results and rewritten frames replace the inputs.
  void ProcessBatch(PacketBatch& batch) noexcept;
  /// Runs one frame in `buf` (its first `len` bytes; `buf.size()` is the capacity a REJECT reply
  /// may use). `len` is updated when the frame is replaced by a reply.
  /// A punted frame's PuntState is written to `*punt` when `punt` is not null.
  PacketResult ProcessFrame(std::span<uint8_t> buf, size_t& len, PortId in_port,
                            PuntState* punt = nullptr) noexcept;
  /// The software datapath's entry point: continues a frame another device punted, from
  /// `state.table` with `state`'s fields (registers and rewritten headers), on this device's
  /// tables, conntrack and counters (the flow cache is not used). `buf` holds the frame as that
  /// device received it; `in_port` is this device's id of the port it came in on. A table out
  /// of range drops the frame (kFellOff).
  PacketResult ResumeFrame(std::span<uint8_t> buf, size_t& len, PortId in_port,
                           const PuntState& state) noexcept;
  /// True when this device's conntrack holds a live connection (either direction, zone 0) the
  /// frame belongs to: the connection is this device's, so its packets should come here.
  bool OwnsConnection(std::span<const uint8_t> frame) const noexcept;

  /// Traces one packet without side effects. Errors: InvalidArgument (bad request),
  /// FailedPrecondition (no program), NotFound (unknown port).
  absl::StatusOr<TraceResult> Trace(const TraceRequest& req) const;
  absl::StatusOr<TraceResult> TraceFrame(std::span<const uint8_t> frame, PortId in_port) const;

  const Conntrack& conntrack() const;
  /// Removes expired connections and affinity records; returns the connections removed.
  size_t ExpireConntrack();
  void ClearConntrack();

  struct State;  // private, in src/device_state.h

 private:
  explicit SimNic(std::unique_ptr<State> s);
  std::unique_ptr<State> s_;
};

}  // namespace nicflow::sim
