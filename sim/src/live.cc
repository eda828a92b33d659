#include "nicflow/sim/live.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "nicflow/sim/checksum.h"

namespace nicflow::sim {

// ---- PacketSocket ----

absl::StatusOr<PacketSocket> PacketSocket::Open(const std::string& ifname) {
  const unsigned ifindex = if_nametoindex(ifname.c_str());
  if (ifindex == 0) return absl::NotFoundError(absl::StrCat("interface ", ifname, " not found"));
  const int fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, htons(ETH_P_ALL));
  if (fd < 0) {
    const std::string msg = absl::StrCat("AF_PACKET socket for ", ifname, ": ", strerror(errno));
    return errno == EPERM ? absl::PermissionDeniedError(msg) : absl::InternalError(msg);
  }
  PacketSocket s(fd, static_cast<int>(ifindex));
  const int one = 1;
  setsockopt(fd, SOL_PACKET, PACKET_AUXDATA, &one, sizeof(one));
#ifdef PACKET_IGNORE_OUTGOING
  setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one));
#endif
  sockaddr_ll sll{};
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(ETH_P_ALL);
  sll.sll_ifindex = static_cast<int>(ifindex);
  if (bind(fd, reinterpret_cast<sockaddr*>(&sll), sizeof(sll)) != 0) {
    return absl::InternalError(absl::StrCat("bind to ", ifname, ": ", strerror(errno)));
  }
  // Frames of other interfaces may have queued between socket() and bind(): drop them.
  uint8_t junk[64];
  while (recv(fd, junk, sizeof(junk), MSG_DONTWAIT | MSG_TRUNC) >= 0) {
  }
  return s;
}

PacketSocket& PacketSocket::operator=(PacketSocket&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) close(fd_);
    fd_ = o.fd_;
    ifindex_ = o.ifindex_;
    o.fd_ = -1;
  }
  return *this;
}

PacketSocket::~PacketSocket() {
  if (fd_ >= 0) close(fd_);
}

std::optional<PacketSocket::Received> PacketSocket::Recv(std::span<uint8_t> buf) noexcept {
  for (;;) {
    sockaddr_ll from{};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(tpacket_auxdata))];
    iovec iov{buf.data(), buf.size()};
    msghdr msg{};
    msg.msg_name = &from;
    msg.msg_namelen = sizeof(from);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    const ssize_t n = recvmsg(fd_, &msg, MSG_DONTWAIT | MSG_TRUNC);
    if (n < 0) return std::nullopt;
    if (from.sll_pkttype == PACKET_OUTGOING || static_cast<size_t>(n) > buf.size()) continue;
    Received r;
    r.len = static_cast<size_t>(n);
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == SOL_PACKET && c->cmsg_type == PACKET_AUXDATA) {
        tpacket_auxdata aux;
        std::memcpy(&aux, CMSG_DATA(c), sizeof(aux));
        r.checksum_incomplete = aux.tp_status & TP_STATUS_CSUMNOTREADY;
      }
    }
    return r;
  }
}

absl::Status PacketSocket::Send(std::span<const uint8_t> frame) noexcept {
  sockaddr_ll to{};
  to.sll_family = AF_PACKET;
  to.sll_ifindex = ifindex_;
  to.sll_halen = 6;
  std::memcpy(to.sll_addr, frame.data(), 6);
  if (sendto(fd_, frame.data(), frame.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof(to)) <
      0) {
    return absl::UnavailableError(absl::StrCat("send: ", strerror(errno)));
  }
  return absl::OkStatus();
}

// ---- ARP / NDP ----

namespace {

constexpr size_t kEth = 14;
constexpr uint8_t kNdSolicit = 135;
constexpr uint8_t kNdAdvert = 136;

bool IsArpRequest(std::span<const uint8_t> f) {
  return f.size() >= kEth + 28 && Load16(f.data() + 12) == kEthTypeArp &&
         Load16(f.data() + kEth) == 1 && Load16(f.data() + kEth + 2) == kEthTypeIpv4 &&
         Load16(f.data() + kEth + 6) == 1;
}

bool IsNeighbourSolicitation(std::span<const uint8_t> f) {
  return f.size() >= kEth + 40 + 24 && Load16(f.data() + 12) == kEthTypeIpv6 &&
         f[kEth + 6] == kProtoIcmpv6 && f[kEth + 40] == kNdSolicit;
}

}  // namespace

std::optional<IpAddr> NeighbourQueryTarget(std::span<const uint8_t> f) {
  if (IsArpRequest(f)) return IpAddr::V4(Load32(f.data() + kEth + 24));
  if (IsNeighbourSolicitation(f)) {
    std::array<uint8_t, 16> t;
    std::memcpy(t.data(), f.data() + kEth + 40 + 8, 16);
    return IpAddr::V6(t);
  }
  return std::nullopt;
}

std::vector<uint8_t> BuildArpRequest(const MacAddr& mac, const IpAddr& target) {
  std::vector<uint8_t> r(60, 0);  // 42 bytes padded to the Ethernet minimum
  std::memset(r.data(), 0xff, 6);
  std::memcpy(r.data() + 6, mac.data(), 6);
  Store16(r.data() + 12, kEthTypeArp);
  uint8_t* a = r.data() + kEth;
  Store16(a, 1);
  Store16(a + 2, kEthTypeIpv4);
  a[4] = 6;
  a[5] = 4;
  Store16(a + 6, 1);  // request
  std::memcpy(a + 8, mac.data(), 6);
  // Sender IP 0.0.0.0 (an ARP probe): the port has no address of its own on the link; Linux
  // answers probes for its addresses straight to the sender's MAC.
  std::memcpy(a + 24, target.bytes().data(), 4);
  return r;
}

std::vector<uint8_t> BuildNeighbourReply(std::span<const uint8_t> req, const IpAddr& target,
                                         const MacAddr& mac) {
  const std::optional<IpAddr> asked = NeighbourQueryTarget(req);
  if (!asked || *asked != target) return {};
  std::vector<uint8_t> r;
  if (target.is_v4()) {
    r.assign(60, 0);  // 42 bytes padded to the Ethernet minimum
    std::memcpy(r.data(), req.data() + 6, 6);
    std::memcpy(r.data() + 6, mac.data(), 6);
    Store16(r.data() + 12, kEthTypeArp);
    uint8_t* a = r.data() + kEth;
    Store16(a, 1);
    Store16(a + 2, kEthTypeIpv4);
    a[4] = 6;
    a[5] = 4;
    Store16(a + 6, 2);  // reply
    std::memcpy(a + 8, mac.data(), 6);
    std::memcpy(a + 14, target.bytes().data(), 4);
    std::memcpy(a + 18, req.data() + kEth + 8, 10);  // requester's MAC and IP
    return r;
  }
  r.assign(kEth + 40 + 32, 0);
  std::memcpy(r.data(), req.data() + 6, 6);
  std::memcpy(r.data() + 6, mac.data(), 6);
  Store16(r.data() + 12, kEthTypeIpv6);
  uint8_t* ip = r.data() + kEth;
  Store32(ip, 0x60000000u);
  Store16(ip + 4, 32);
  ip[6] = kProtoIcmpv6;
  ip[7] = 255;
  std::memcpy(ip + 8, target.bytes().data(), 16);
  const uint8_t* req_src = req.data() + kEth + 8;
  const bool unspecified = std::all_of(req_src, req_src + 16, [](uint8_t b) { return b == 0; });
  if (unspecified) {  // DAD probe: answer to all-nodes
    static constexpr uint8_t kAllNodes[16] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    std::memcpy(ip + 24, kAllNodes, 16);
  } else {
    std::memcpy(ip + 24, req_src, 16);
  }
  uint8_t* icmp = ip + 40;
  icmp[0] = kNdAdvert;
  icmp[4] = unspecified ? 0xa0 : 0xe0;  // router, solicited (unless DAD), override
  std::memcpy(icmp + 8, target.bytes().data(), 16);
  icmp[24] = 2;  // target link-layer address option
  icmp[25] = 1;
  std::memcpy(icmp + 26, mac.data(), 6);
  ParsedPacket p;
  if (ParsePacket(r, p) == ParseError::kNone) RecomputeChecksums(r, p);
  return r;
}

// ---- SoftwareDatapath ----

bool SoftwareDatapath::Owns(std::span<const uint8_t> frame) const noexcept {
  return software_.has_program() && software_.OwnsConnection(frame);
}

std::optional<PortId> SoftwareDatapath::ToSoftware(PortId device_port) const {
  if (device_port >= device_.ports().size()) return std::nullopt;
  absl::StatusOr<PortId> p = software_.FindPortByName(device_.ports()[device_port].name);
  if (!p.ok()) return std::nullopt;
  return *p;
}

PacketResult SoftwareDatapath::ToDevice(PacketResult r) const {
  if (r.out_port == kInvalidPort || r.out_port >= software_.ports().size()) return r;
  absl::StatusOr<PortId> p = device_.FindPortByName(software_.ports()[r.out_port].name);
  if (!p.ok()) {
    r.verdict = Verdict::kDrop;
    r.out_port = kInvalidPort;
    return r;
  }
  r.out_port = *p;
  return r;
}

PacketResult SoftwareDatapath::Steer(std::span<uint8_t> buf, size_t& len, PortId in_port) noexcept {
  const std::optional<PortId> in = ToSoftware(in_port);
  if (!in) {
    ++stats_.unfinished;
    return {};
  }
  ++stats_.steered;
  return ToDevice(software_.ProcessFrame(buf, len, *in));
}

PacketResult SoftwareDatapath::Resume(std::span<uint8_t> buf, size_t& len, PortId in_port,
                                      const PuntState& punt) noexcept {
  const std::optional<PortId> in = ToSoftware(in_port);
  if (!in || !software_.has_program()) {
    ++stats_.unfinished;
    return {};
  }
  ++stats_.resumed;
  return ToDevice(software_.ResumeFrame(buf, len, *in, punt));
}

PacketResult SoftwareDatapath::Process(std::span<uint8_t> buf, size_t& len,
                                       PortId in_port) noexcept {
  if (Owns(buf.first(len))) return Steer(buf, len, in_port);
  std::vector<uint8_t> received(buf.begin(), buf.begin() + static_cast<ptrdiff_t>(len));
  PuntState punt;
  const PacketResult r = device_.ProcessFrame(buf, len, in_port, &punt);
  if (r.verdict != Verdict::kPunt) return r;
  // A punting device leaves the frame as received; start from that copy all the same.
  std::copy(received.begin(), received.end(), buf.begin());
  len = received.size();
  return Resume(buf, len, in_port, punt);
}

// ---- LiveDatapath ----

struct LiveDatapath::Port {
  PortId id;
  LivePortConfig cfg;
  PacketSocket sock;
  MacAddr mac;
  std::optional<MacAddr> peer_mac;
};

LiveDatapath::LiveDatapath(SimNic& nic) : nic_(nic), batch_(64, 9216 + 64) {}
LiveDatapath::~LiveDatapath() = default;

absl::Status LiveDatapath::Attach(PortId port, LivePortConfig config) {
  if (port >= nic_.ports().size()) {
    return absl::NotFoundError(absl::StrCat("port ", port, " does not exist"));
  }
  if (port < port_index_.size() && port_index_[port] >= 0) {
    return absl::AlreadyExistsError(
        absl::StrCat("port ", nic_.ports()[port].name, " is already attached"));
  }
  absl::StatusOr<PacketSocket> sock = PacketSocket::Open(config.ifname);
  if (!sock.ok()) return sock.status();
  MacAddr mac = config.mac;
  if (mac == MacAddr{}) {
    mac = {0x02, 0, 0, 0, static_cast<uint8_t>(port >> 8), static_cast<uint8_t>(port)};
  }
  auto p = std::make_unique<Port>(Port{port, config, std::move(*sock), mac, config.peer_mac});
  if (port_index_.size() <= port) port_index_.resize(port + 1, -1);
  port_index_[port] = static_cast<int>(ports_.size());
  ports_.push_back(std::move(p));
  return absl::OkStatus();
}

bool LiveDatapath::AnswerNeighbourQuery(Port& port, std::span<const uint8_t> frame) {
  const std::optional<IpAddr> target = NeighbourQueryTarget(frame);
  if (!target) return false;
  const auto& gws = port.cfg.gateway_ips;
  const auto& own = nic_.ports()[port.id].ips;
  bool answer = std::find(gws.begin(), gws.end(), *target) != gws.end();
  if (port.cfg.proxy_all && std::find(own.begin(), own.end(), *target) == own.end()) answer = true;
  if (answer) {
    const std::vector<uint8_t> reply = BuildNeighbourReply(frame, *target, port.mac);
    if (!reply.empty() && port.sock.Send(reply).ok()) {
      ++(target->is_v4() ? stats_.arp_replies : stats_.nd_replies);
    }
  }
  return true;
}

void LiveDatapath::Transmit(PortId out, std::span<uint8_t> frame) {
  if (out >= port_index_.size() || port_index_[out] < 0) {
    ++stats_.tx_errors;  // output to a port with no interface
    return;
  }
  Port& p = *ports_[port_index_[out]];
  if (!p.peer_mac) {
    // Like a router without a neighbour entry: drop the frame and ask for the destination; the
    // reply (a pod's kernel, or the far end's proxy ARP on an uplink) teaches us the peer's MAC
    // and the sender's retransmission gets through.
    ++stats_.no_peer_mac;
    if (frame.size() >= kEth + 20 && Load16(frame.data() + 12) == kEthTypeIpv4) {
      const std::vector<uint8_t> query =
          BuildArpRequest(p.mac, IpAddr::V4(Load32(frame.data() + kEth + 16)));
      if (p.sock.Send(query).ok()) ++stats_.arp_requests;
    }
    return;
  }
  std::memcpy(frame.data(), p.peer_mac->data(), 6);
  std::memcpy(frame.data() + 6, p.mac.data(), 6);
  if (p.sock.Send(frame).ok()) {
    ++stats_.tx;
  } else {
    ++stats_.tx_errors;
  }
}

absl::StatusOr<size_t> LiveDatapath::PollOnce(int timeout_ms) {
  std::vector<pollfd> fds;
  for (const auto& p : ports_) fds.push_back({p->sock.fd(), POLLIN, 0});
  const int rc = poll(fds.data(), fds.size(), timeout_ms);
  if (rc < 0 && errno != EINTR) return absl::InternalError(absl::StrCat("poll: ", strerror(errno)));
  if (rc <= 0) return 0;
  std::vector<uint8_t> buf(9216 + 64);
  batch_.Clear();
  size_t received = 0;
  for (size_t i = 0; i < ports_.size(); ++i) {
    if (!(fds[i].revents & POLLIN)) continue;
    Port& p = *ports_[i];
    for (int burst = 0; burst < 16 && batch_.size() < batch_.capacity(); ++burst) {
      const std::optional<PacketSocket::Received> r = p.sock.Recv(buf);
      if (!r) break;
      ++received;
      ++stats_.rx;
      std::span<uint8_t> frame(buf.data(), r->len);
      if (frame.size() < kEth) continue;
      if (!p.cfg.peer_mac) {
        MacAddr src;
        std::memcpy(src.data(), frame.data() + 6, 6);
        if (!(src[0] & 1)) p.peer_mac = src;
      }
      if (AnswerNeighbourQuery(p, frame) || Load16(frame.data() + 12) == kEthTypeArp) continue;
      if (r->checksum_incomplete) {
        ParsedPacket pp;
        if (ParsePacket(frame, pp) == ParseError::kNone) RecomputeChecksums(frame, pp);
      }
      if (software_ != nullptr && software_->Owns(frame)) {
        size_t len = frame.size();
        const PacketResult res = software_->Steer(buf, len, p.id);
        if (res.verdict == Verdict::kForward || res.verdict == Verdict::kReject) {
          Transmit(res.out_port, {buf.data(), len});
        }
        continue;
      }
      batch_.Add(frame, p.id);
    }
  }
  nic_.ProcessBatch(batch_);
  for (size_t k = 0; k < batch_.size(); ++k) {
    const PacketResult& res = batch_.result(k);
    if (res.verdict == Verdict::kForward || res.verdict == Verdict::kReject) {
      Transmit(res.out_port, batch_.frame(k));
    } else if (res.verdict == Verdict::kPunt && software_ != nullptr) {
      const std::span<const uint8_t> frame = batch_.frame(k);
      std::copy(frame.begin(), frame.end(), buf.begin());
      size_t len = frame.size();
      const PacketResult sw = software_->Resume(buf, len, batch_.in_port(k), batch_.punt(k));
      if (sw.verdict == Verdict::kForward || sw.verdict == Verdict::kReject) {
        Transmit(sw.out_port, {buf.data(), len});
      }
    }
  }
  return received;
}

}  // namespace nicflow::sim
