// Live packet I/O: SimNic ports attached to Linux interfaces (typically the host ends of veth
// pairs whose other ends sit in network namespaces acting as pods).
//
// Each attached port gets an AF_PACKET socket bound to its interface. PollOnce() waits for
// frames on any of them, runs a burst through the SimNic and sends every forwarded frame out of
// the output port's interface (REJECT replies out of the input one). The simulator is an L3
// device, like a NIC that routes for its VFs: frames leave with the port's own MAC as source
// and the port's peer MAC (learned from frames received on it, or set) as destination.
//
// Pods need a gateway: the port answers ARP requests and IPv6 neighbour solicitations for its
// gateway addresses (and, with proxy_all, for any address but the pod's own), which is what a
// NIC-based setup needs too since nothing else answers on a VF's link. A frame for a port whose
// peer MAC is not known yet is dropped and an ARP request for its IPv4 destination goes out
// instead (as a router does); the reply teaches the peer MAC. Two simulated NICs joined by their
// uplinks learn each other this way through their proxy ARP.
//
// Frames the kernel hands over with a checksum still to be completed (TP_STATUS_CSUMNOTREADY,
// from a sender with TX checksum offload) get their checksums computed before processing.
//
// Punted frames: with a software path set (SetSoftwarePath: a second SimNic holding the whole,
// unplaced program), a frame the device punts is finished there, resuming at the table where the
// device punted with the registers it handed over (SimNic::ResumeFrame), and leaves by the output
// port's interface. Connections the software path committed are its own: their later packets and
// replies are steered to it before the device sees them (the device's conntrack does not know
// them), as a host driver would install a steering rule for a connection it owns. Without a
// software path punted frames are dropped (counted as punted by the device).
//
// Thread-safety: none; the owning thread calls PollOnce() and any SimNic control method between
// polls.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nicflow/sim/device.h"

namespace nicflow::sim {

using MacAddr = std::array<uint8_t, 6>;

/// An AF_PACKET socket bound to one interface (RAII: the fd closes with the object).
class PacketSocket {
 public:
  /// Errors: NotFound (no such interface), PermissionDenied (needs CAP_NET_RAW), Internal.
  static absl::StatusOr<PacketSocket> Open(const std::string& ifname);
  PacketSocket(PacketSocket&& o) noexcept : fd_(o.fd_), ifindex_(o.ifindex_) { o.fd_ = -1; }
  PacketSocket& operator=(PacketSocket&& o) noexcept;
  PacketSocket(const PacketSocket&) = delete;
  PacketSocket& operator=(const PacketSocket&) = delete;
  ~PacketSocket();

  struct Received {
    size_t len = 0;
    bool checksum_incomplete = false;  ///< the kernel left the L4 checksum to be completed
  };
  /// Non-blocking receive of one incoming frame; nullopt when none is queued. Frames this
  /// host sent out of the interface are skipped.
  std::optional<Received> Recv(std::span<uint8_t> buf) noexcept;
  /// Sends one frame. Errors: Unavailable with errno text.
  absl::Status Send(std::span<const uint8_t> frame) noexcept;
  int fd() const { return fd_; }

 private:
  PacketSocket(int fd, int ifindex) : fd_(fd), ifindex_(ifindex) {}
  int fd_ = -1;
  int ifindex_ = 0;
};

struct LivePortConfig {
  std::string ifname;
  MacAddr mac{};  ///< our MAC on this link; zero: 02:00:00:00:xx:xx derived from the port id
  std::optional<MacAddr> peer_mac;  ///< unset: learned from received frames
  std::vector<IpAddr> gateway_ips;  ///< answered by ARP / NDP proxy
  bool proxy_all = false;           ///< answer for any address except the peer's own
};

/// The software datapath behind a device: finishes what the device punts and owns the
/// connections it committed. Ports are matched by name (the two SimNics may number VFs
/// differently). Used by LiveDatapath; usable without sockets (tests).
class SoftwareDatapath {
 public:
  SoftwareDatapath(SimNic& device, SimNic& software) : device_(device), software_(software) {}

  struct Stats {
    uint64_t resumed = 0;     ///< punted frames continued in software
    uint64_t steered = 0;     ///< frames of software-owned connections sent straight to it
    uint64_t unfinished = 0;  ///< dropped: no software program yet, or a port it does not declare
  };

  /// True when the software path owns the frame's connection (steer it, skip the device).
  bool Owns(std::span<const uint8_t> frame) const noexcept;
  /// Runs a frame of an owned connection in software. `in_port` and the result's out_port are
  /// the device's port ids.
  PacketResult Steer(std::span<uint8_t> buf, size_t& len, PortId in_port) noexcept;
  /// Continues a frame the device punted (`buf` holds it as the device received it).
  PacketResult Resume(std::span<uint8_t> buf, size_t& len, PortId in_port,
                      const PuntState& punt) noexcept;
  /// One frame the whole way: steered, or through the device and resumed when punted.
  PacketResult Process(std::span<uint8_t> buf, size_t& len, PortId in_port) noexcept;

  const Stats& stats() const { return stats_; }
  SimNic& software() { return software_; }

 private:
  std::optional<PortId> ToSoftware(PortId device_port) const;
  PacketResult ToDevice(PacketResult r) const;

  SimNic& device_;
  SimNic& software_;
  Stats stats_;
};

struct LiveStats {
  uint64_t rx = 0, tx = 0, tx_errors = 0, arp_replies = 0, nd_replies = 0;
  uint64_t no_peer_mac = 0;   ///< frames dropped because the port's peer MAC was not known yet
  uint64_t arp_requests = 0;  ///< ARP requests sent for such frames' IPv4 destinations
};

class LiveDatapath {
 public:
  explicit LiveDatapath(SimNic& nic);
  ~LiveDatapath();

  /// Attaches a SimNic port to an interface. Errors: those of PacketSocket::Open, NotFound for
  /// an unknown port, AlreadyExists when the port is attached.
  absl::Status Attach(PortId port, LivePortConfig config);
  /// Waits up to `timeout_ms` for frames, processes what arrived; returns frames received.
  absl::StatusOr<size_t> PollOnce(int timeout_ms);
  const LiveStats& stats() const { return stats_; }
  /// Finishes punted frames (and owns their connections) on `software`; null: punts are dropped.
  void SetSoftwarePath(SoftwareDatapath* software) { software_ = software; }

 private:
  struct Port;
  bool AnswerNeighbourQuery(Port& port, std::span<const uint8_t> frame);
  void Transmit(PortId out, std::span<uint8_t> frame);

  SimNic& nic_;
  std::vector<std::unique_ptr<Port>> ports_;  // indexed by attach order
  std::vector<int> port_index_;               // PortId -> index in ports_, -1 if detached
  PacketBatch batch_;
  LiveStats stats_;
  SoftwareDatapath* software_ = nullptr;
};

/// Builds an ARP reply or an IPv6 neighbour advertisement answering `request` for `target` with
/// `mac`; empty when `request` is not an ARP request / neighbour solicitation for `target`.
/// Exposed for tests.
std::vector<uint8_t> BuildNeighbourReply(std::span<const uint8_t> request, const IpAddr& target,
                                         const MacAddr& mac);
/// Builds a broadcast ARP request (a probe: sender IP 0.0.0.0) from `mac` for IPv4 `target`.
std::vector<uint8_t> BuildArpRequest(const MacAddr& mac, const IpAddr& target);
/// The address an ARP request or neighbour solicitation asks about, if it is one.
std::optional<IpAddr> NeighbourQueryTarget(std::span<const uint8_t> frame);

}  // namespace nicflow::sim
