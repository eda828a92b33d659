// FpgaPipeline: the FPGA backend as one object -- a table image of the installed program, the
// match-action kernel on an OpenCL device, and the host half of the datapath (the slow path).
//
// Design
// ------
// The kernel does everything per packet that hardware can do with bounded state: parsing, every
// table, select groups, NAT, checksums, counters, and conntrack *lookups* in a device-memory
// connection table. What needs an unbounded search or an allocation is the host's, after the
// batch, in packet order (docs/fpga.md, "Slow path"):
//   * CtCommit of a connection the table does not hold: the host commits it (the same rules as
//     nicflow::sim::Conntrack::Commit: exists / clash / invalid / full) and writes both tuples
//     into the device table, so the connection's later packets are fast-path hits;
//   * SNAT source-port allocation when the original port is out of range or taken;
//   * ClientIP affinity records of first packets;
//   * REJECT replies (TCP RST, ICMP/ICMPv6 port unreachable), built from the received frame.
// The end result per packet -- verdict, output port, frame, counters -- is what the simulator
// produces. The device runs a batch's packets concurrently, so a packet can miss a connection (or
// affinity record) an earlier packet of the same batch created; the host finds those packets
// from the tuples the kernel reports, takes their counts back and runs them again, so the result
// is the sequential one.
//
// Updates: Apply() encodes a delta into the image's host mirror and pushes only the changed
// words, through the double buffer (atomic for packets).
//
// Thread-safety: none; one owner.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "nicflow/flowtables/ir.h"
#include "nicflow/hw/image.h"
#include "nicflow/hw/kernel_runtime.h"

namespace nicflow::hw {

enum class FpgaVerdict : uint8_t { kForward, kDrop, kReject, kPunt };
std::string_view FpgaVerdictName(FpgaVerdict v);  ///< "forward", "drop", "reject", "punt"

/// One table the packet visited.
struct FpgaHit {
  flowtables::TableId table = 0;
  bool hit = false;   ///< an entry matched (false: the default actions ran)
  uint32_t slot = 0;  ///< action slot (entry identity via TableImage::OwnerOf)
};

struct FpgaResult {
  FpgaVerdict verdict = FpgaVerdict::kDrop;
  uint8_t parse_error = 0;                      ///< nicflow::sim::ParseError values; 0 none
  std::optional<flowtables::PortRef> out_port;  ///< forward: where it leaves
  uint32_t out_port_index = 0xffffffffu;
  uint32_t flags = 0;  ///< NF_RF_* of the kernel
  uint8_t ct_state = 0;
  uint32_t meta_flags = 0;
  bool slow_path = false;  ///< the host finished something for this packet
  std::vector<FpgaHit> hits;
  std::optional<std::string> group;  ///< the last select group run and the bucket it chose
  std::string bucket;
};

/// A packet in and out: `frame` is replaced by the frame as it leaves (rewritten, or the REJECT
/// reply); `in_port` is the device port number, `port_class` a flowtables::PortClass value.
struct FpgaPacket {
  std::vector<uint8_t> frame;
  uint32_t in_port = 0;
  uint8_t port_class = 0;
  FpgaResult result;
};

struct FpgaEntryCounters {
  uint64_t packets = 0, bytes = 0;
};
struct FpgaTableCounters {
  uint64_t hits = 0, misses = 0, bytes = 0, ties = 0;
};
struct FpgaDeviceCounters {
  uint64_t rx = 0, parse_errors = 0, fell_off = 0, punts = 0, slow_path = 0, ct_hits = 0;
  uint64_t ct_committed = 0;  ///< by the host slow path
  /// Final verdicts of the packets ProcessBatch returned, counted by the host driver: the slow
  /// path may still turn a forward into a drop (no source port left) and a REJECT whose reply
  /// cannot be built is a drop, so the kernel's own view is not final. Parse errors are drops,
  /// as in the simulator's DeviceCounters.
  uint64_t forwarded = 0, dropped = 0, rejected = 0, punted = 0;
};

struct FpgaOptions {
  DeviceSelector selector;
  ImageGeometry geometry;
  /// The clock conntrack and affinity use (ns); default: steady clock.
  std::function<uint64_t()> now_ns;
};

class HostConntrack;  // hw/src/host_conntrack.h

class FpgaPipeline {
 public:
  /// Opens the device and builds the kernel. Errors: those of KernelRuntime::Open.
  static absl::StatusOr<std::unique_ptr<FpgaPipeline>> Create(FpgaOptions options);
  ~FpgaPipeline();

  const DeviceInfo& device() const;
  ImageCapacity capacity() const;

  /// Encodes `p` into a fresh image and loads it (counters restart; connections are kept).
  /// Errors: those of TableImage::Create (Unimplemented / ResourceExhausted name the culprit).
  absl::Status Install(const flowtables::Program& p);
  /// Applies a delta atomically (all or nothing, then one flip). Errors: FailedPrecondition
  /// without an installed program; those of TableImage::Apply.
  absl::Status Apply(const flowtables::Delta& d);
  bool has_program() const;
  const flowtables::Program& installed() const;  ///< requires has_program()
  const TableImage& image() const;               ///< requires has_program()

  /// Runs a batch through the kernel, then the slow path in packet order.
  absl::Status ProcessBatch(std::span<FpgaPacket> packets);

  /// Counters. Errors: NotFound for an entry key not installed / a table id out of range.
  absl::StatusOr<FpgaEntryCounters> GetEntryCounters(std::string_view entry_key) const;
  absl::StatusOr<FpgaTableCounters> GetTableCounters(flowtables::TableId t) const;
  absl::StatusOr<FpgaDeviceCounters> GetDeviceCounters() const;

  size_t connections() const;  ///< live connections the host committed
  /// Removes connections idle past their protocol timeout (Linux's defaults); returns how many.
  absl::StatusOr<size_t> ExpireConntrack();

  /// Forgets every connection and affinity record (host and device).
  absl::Status ClearConntrack();

  /// Reads which image copy is active and both copies (tests of the double buffer).
  KernelRuntime& runtime();

 private:
  FpgaPipeline(FpgaOptions options, std::unique_ptr<KernelRuntime> rt);
  absl::Status PushNewCounters();
  void SlowPath(FpgaPacket& p, std::span<const uint32_t> res, uint64_t now);
  void Finish(FpgaPacket& p, std::span<const uint32_t> res, size_t i, uint64_t now);
  bool Stale(std::span<const uint32_t> res) const;
  void NoteBatchState(std::span<const uint32_t> res, const FpgaPacket& p);
  absl::Status RevertCounters(std::span<const std::vector<uint32_t>> results,
                              std::span<const uint32_t> lens);
  uint32_t CtWords() const;

  FpgaOptions options_;
  std::unique_ptr<KernelRuntime> rt_;
  std::unique_ptr<TableImage> image_;
  std::unique_ptr<HostConntrack> ct_;
  BatchOutput out_;
  std::vector<BatchFrame> frames_;
  uint64_t ct_committed_ = 0;
  uint64_t forwarded_ = 0, dropped_ = 0, rejected_ = 0, punted_ = 0;  // final verdicts
  // Connection tuples and affinity clients created by the batch round being finished.
  absl::flat_hash_set<std::array<uint32_t, 10>> batch_tuples_;
  absl::flat_hash_set<std::array<uint32_t, 10>> batch_clients_;
};

}  // namespace nicflow::hw
