// Pods as network namespaces for live tests: each pod is a netns with `eth0` (its address /32,
// default route via a link-local gateway) paired with a veth on the host side that the
// simulator's live datapath attaches to. Needs root; `NetnsPods::Available()` says whether the
// machine can run them. Namespaces (and with them the veth pairs) are removed on destruction.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <future>
#include <optional>
#include <string>
#include <vector>

#include "nicflow/sim/live.h"

namespace nicflow::sim::testing {

inline bool Sh(const std::string& cmd) {
  return std::system((cmd + " >/dev/null 2>&1").c_str()) == 0;
}

inline std::string ShOut(const std::string& cmd) {
  std::string out;
  if (FILE* f = popen(cmd.c_str(), "r")) {
    char buf[256];
    while (fgets(buf, sizeof(buf), f)) out += buf;
    pclose(f);
  }
  return out;
}

inline std::optional<MacAddr> ParseMac(const std::string& s) {
  MacAddr m;
  unsigned v[6];
  if (std::sscanf(s.c_str(), "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6) {
    return std::nullopt;
  }
  for (int i = 0; i < 6; ++i) m[i] = static_cast<uint8_t>(v[i]);
  return m;
}

/// The link-local gateway every pod namespace routes through; the live datapath answers its ARP.
inline constexpr const char* kPodGateway = "169.254.1.1";

struct NetnsPod {
  std::string name;  ///< "ns/x", the pod's VF is "vf:ns/x"
  std::string ip;
  std::string netns;
  std::string host_if;
  MacAddr mac{};
};

class NetnsPods {
 public:
  static bool Available() { return geteuid() == 0 && Sh("ip netns list"); }

  NetnsPods() = default;
  NetnsPods(const NetnsPods&) = delete;
  NetnsPods& operator=(const NetnsPods&) = delete;
  ~NetnsPods() {
    for (const std::string& ns : created_) Sh("ip netns del " + ns);
  }

  /// Creates the namespace and veth pair of pod `name` with address `ip`; "" on success, else
  /// the failing command.
  std::string Add(const std::string& name, const std::string& ip) {
    NetnsPod p{name, ip, "", "", {}};
    const std::string id = std::to_string(getpid() % 100000) + "x" + std::to_string(pods_.size());
    p.netns = "nfpod" + id;
    p.host_if = "nfv" + id;
    Sh("ip netns del " + p.netns);  // leftovers of a crashed run
    const std::string n = "ip -n " + p.netns + " ";
    const std::vector<std::string> cmds = {
        "ip netns add " + p.netns,
        "ip link add " + p.host_if + " type veth peer name eth0 netns " + p.netns,
        n + "addr add " + p.ip + "/32 dev eth0",
        n + "link set lo up",
        n + "link set eth0 up",
        n + "route add " + kPodGateway + " dev eth0",
        n + "route add default via " + kPodGateway + " dev eth0",
        "ip link set " + p.host_if + " up",
    };
    for (size_t i = 0; i < cmds.size(); ++i) {
      if (!Sh(cmds[i])) return cmds[i];
      if (i == 0) created_.push_back(p.netns);
    }
    // No TSO/GSO: an AF_PACKET reader would see unsegmented super-frames.
    Sh("ip netns exec " + p.netns + " ethtool -K eth0 tx off tso off gso off");
    Sh("sysctl -w net.ipv6.conf." + p.host_if + ".disable_ipv6=1");
    auto mac = ParseMac(ShOut("ip netns exec " + p.netns + " cat /sys/class/net/eth0/address"));
    if (!mac) return "reading the MAC of eth0 in " + p.netns;
    p.mac = *mac;
    pods_.push_back(p);
    return "";
  }

  const std::vector<NetnsPod>& pods() const { return pods_; }
  const NetnsPod& operator[](size_t i) const { return pods_[i]; }

  /// The live port configuration for pod `p` (gateway address, the pod's MAC).
  static LivePortConfig PortConfig(const NetnsPod& p, IpAddr gateway) {
    LivePortConfig cfg;
    cfg.ifname = p.host_if;
    cfg.gateway_ips = {gateway};
    cfg.peer_mac = p.mac;
    return cfg;
  }

 private:
  std::vector<NetnsPod> pods_;
  std::vector<std::string> created_;
};

/// Runs `fn` on a thread that has entered `netns` (setns affects only the calling thread).
template <typename Fn>
auto InNetns(const std::string& netns, Fn fn) {
  return std::async(std::launch::async, [netns, fn]() -> decltype(fn()) {
    const int fd = open(("/var/run/netns/" + netns).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) {
      if (fd >= 0) close(fd);
      return decltype(fn())();
    }
    close(fd);
    return fn();
  });
}

/// Connects over TCP within `timeout_ms`; the fd (blocking again) or -1.
inline int TcpConnect(const std::string& ip, uint16_t port, int timeout_ms) {
  const int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
  connect(s, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  pollfd p{s, POLLOUT, 0};
  int err = -1;
  socklen_t len = sizeof(err);
  if (poll(&p, 1, timeout_ms) != 1 || getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len) != 0 ||
      err != 0) {
    close(s);
    return -1;
  }
  fcntl(s, F_SETFL, 0);
  return s;
}

/// Connects over TCP to ip:port within timeout_ms, sends "ping", expects "pong".
inline bool TcpPingPong(const std::string& ip, uint16_t port, int timeout_ms) {
  const int s = TcpConnect(ip, port, timeout_ms);
  if (s < 0) return false;
  bool ok = send(s, "ping", 4, MSG_NOSIGNAL) == 4;
  pollfd p{s, POLLIN, 0};
  char buf[8] = {};
  ok = ok && poll(&p, 1, timeout_ms) == 1 && recv(s, buf, sizeof(buf), 0) == 4 &&
       std::string(buf, 4) == "pong";
  close(s);
  return ok;
}

/// Sends one UDP "ping" to ip:port and waits up to timeout_ms for "pong" from that address.
inline bool UdpPingPong(const std::string& ip, uint16_t port, int timeout_ms) {
  const int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
  bool ok =
      connect(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 && send(s, "ping", 4, 0) == 4;
  pollfd p{s, POLLIN, 0};
  char buf[8] = {};
  ok = ok && poll(&p, 1, timeout_ms) == 1 && recv(s, buf, sizeof(buf), 0) == 4 &&
       std::string(buf, 4) == "pong";
  close(s);
  return ok;
}

}  // namespace nicflow::sim::testing
