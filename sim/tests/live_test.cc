// Live test: pods are network namespaces with veth pairs into the simulator; a real TCP
// connection to a ClusterIP is DNATed to a pod in another namespace and the reply comes back; a
// policy-denied connection fails; counters show both. Needs root (skipped otherwise).
#include "nicflow/sim/live.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <future>
#include <thread>

#include "nicflow/sim/checksum.h"
#include "test_programs.h"

namespace nicflow::sim {
namespace {

namespace ft = flowtables;
using testing::Ip;

struct LivePod {
  std::string name;  // "ns/x"
  std::string ip;
  std::string netns;
  std::string host_if;
  MacAddr mac{};
};

bool Sh(const std::string& cmd) { return std::system((cmd + " >/dev/null 2>&1").c_str()) == 0; }

std::string ShOut(const std::string& cmd) {
  std::string out;
  if (FILE* f = popen(cmd.c_str(), "r")) {
    char buf[256];
    while (fgets(buf, sizeof(buf), f)) out += buf;
    pclose(f);
  }
  return out;
}

std::optional<MacAddr> ParseMac(const std::string& s) {
  MacAddr m;
  unsigned v[6];
  if (std::sscanf(s.c_str(), "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6) {
    return std::nullopt;
  }
  for (int i = 0; i < 6; ++i) m[i] = static_cast<uint8_t>(v[i]);
  return m;
}

// Runs `fn` on a thread that has entered `netns` (setns affects only the calling thread).
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

// Connects to ip:port within timeout_ms, sends "ping", expects "pong".
bool PingPong(const std::string& ip, uint16_t port, int timeout_ms) {
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
    return false;
  }
  bool ok = send(s, "ping", 4, MSG_NOSIGNAL) == 4;
  p = {s, POLLIN, 0};
  char buf[8] = {};
  ok = ok && poll(&p, 1, timeout_ms) == 1 && recv(s, buf, sizeof(buf), 0) == 4 &&
       std::string(buf, 4) == "pong";
  close(s);
  return ok;
}

class LiveNamespaceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root for network namespaces";
    if (!Sh("ip netns list")) GTEST_SKIP() << "iproute2 with netns support not available";
    const std::string tag = std::to_string(getpid() % 1000000);
    pods_ = {{"ns/a", "10.0.1.1", "", "", {}},
             {"ns/b", "10.0.2.1", "", "", {}},
             {"ns/d", "10.0.1.9", "", "", {}}};
    for (LivePod& p : pods_) {
      const char letter = p.name.back();
      p.netns = "nfsim" + tag + letter;
      p.host_if = "nfs" + tag + letter;
      Sh("ip netns del " + p.netns);  // leftovers of a crashed run
      const std::string n = "ip -n " + p.netns + " ";
      ASSERT_TRUE(Sh("ip netns add " + p.netns));
      created_.push_back(p.netns);
      ASSERT_TRUE(Sh("ip link add " + p.host_if + " type veth peer name eth0 netns " + p.netns));
      ASSERT_TRUE(Sh(n + "addr add " + p.ip + "/32 dev eth0"));
      ASSERT_TRUE(Sh(n + "link set lo up") && Sh(n + "link set eth0 up"));
      ASSERT_TRUE(Sh(n + "route add 169.254.1.1 dev eth0"));
      ASSERT_TRUE(Sh(n + "route add default via 169.254.1.1 dev eth0"));
      // No TSO/GSO: an AF_PACKET reader would see unsegmented super-frames.
      Sh("ip netns exec " + p.netns + " ethtool -K eth0 tx off tso off gso off");
      Sh("sysctl -w net.ipv6.conf." + p.host_if + ".disable_ipv6=1");
      ASSERT_TRUE(Sh("ip link set " + p.host_if + " up"));
      auto mac = ParseMac(ShOut("ip netns exec " + p.netns + " cat /sys/class/net/eth0/address"));
      ASSERT_TRUE(mac);
      p.mac = *mac;
    }
  }
  void TearDown() override {
    for (const std::string& ns : created_) Sh("ip netns del " + ns);  // removes the veth pairs
  }

  std::vector<LivePod> pods_;
  std::vector<std::string> created_;
};

TEST_F(LiveNamespaceTest, ClusterIpConnectionIsDnatedAcrossNamespacesAndPolicyDenies) {
  std::vector<testing::MiniPod> mini;
  for (const LivePod& p : pods_) mini.push_back({p.name, p.ip});
  auto nic = SimNic::Create(*BuiltinProfile("unlimited"));
  ASSERT_TRUE(
      nic->Install(testing::MiniProgram(mini, "10.96.0.10", 80, {"10.0.2.1"}, "10.0.1.9")).ok());
  LiveDatapath live(*nic);
  for (const LivePod& p : pods_) {
    LivePortConfig cfg;
    cfg.ifname = p.host_if;
    cfg.gateway_ips = {Ip("169.254.1.1")};
    cfg.peer_mac = p.mac;
    ASSERT_TRUE(live.Attach(*nic->FindPortByName("vf:" + p.name), cfg).ok());
  }
  std::atomic<bool> stop{false};
  std::thread datapath([&] {
    while (!stop) (void)live.PollOnce(10);
  });

  std::promise<void> listening;
  auto server = InNetns(pods_[1].netns, [&]() -> int {
    const int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(8080);
    bind(ls, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    listen(ls, 4);
    listening.set_value();
    int served = 0;
    pollfd p{ls, POLLIN, 0};
    while (poll(&p, 1, 4000) == 1) {
      const int c = accept(ls, nullptr, nullptr);
      char buf[8];
      if (recv(c, buf, sizeof(buf), 0) == 4 && send(c, "pong", 4, MSG_NOSIGNAL) == 4) ++served;
      close(c);
      if (served == 1) break;
    }
    close(ls);
    return served;
  });
  listening.get_future().wait();
  const bool allowed =
      InNetns(pods_[0].netns, [] { return PingPong("10.96.0.10", 80, 5000); }).get();
  const bool denied =
      InNetns(pods_[2].netns, [] { return PingPong("10.96.0.10", 80, 1500); }).get();
  const int served = server.get();
  stop = true;
  datapath.join();

  EXPECT_TRUE(allowed) << "pod a reaches the ClusterIP's endpoint in pod b and gets the reply";
  EXPECT_EQ(served, 1);
  EXPECT_FALSE(denied) << "pod d is denied by the policy";
  EXPECT_GT(live.stats().arp_replies, 0u);
  const ft::Program& prog = nic->installed();
  EXPECT_GE(nic->GetEntryCounters(ft::EntryKey(prog.entries[testing::kMiniService][0]))->packets,
            2u)
      << "both connection attempts hit the Service";
  EXPECT_GE(nic->GetEntryCounters(ft::EntryKey(prog.entries[testing::kMiniPolicy][0]))->packets, 1u)
      << "the denied SYN (and its retransmissions) hit the deny rule";
  EXPECT_GE(nic->counters().drops[static_cast<size_t>(DropReason::kDropAction)], 1u);
  EXPECT_GE(nic->counters().forwarded, 6u) << "handshake, data and teardown both ways";
  EXPECT_GE(nic->counters().ct_committed, 1u);
}

TEST(Neighbour, ArpRequestForTheGatewayGetsAReplyWithThePortMac) {
  std::vector<uint8_t> req(42, 0);
  std::fill(req.begin(), req.begin() + 6, 0xff);
  const MacAddr pod{0x0a, 1, 2, 3, 4, 5};
  std::copy(pod.begin(), pod.end(), req.begin() + 6);
  Store16(req.data() + 12, kEthTypeArp);
  uint8_t* a = req.data() + 14;
  Store16(a, 1);
  Store16(a + 2, kEthTypeIpv4);
  a[4] = 6, a[5] = 4;
  Store16(a + 6, 1);
  std::copy(pod.begin(), pod.end(), a + 8);
  Store32(a + 14, 0x0a000101);
  Store32(a + 24, 0xa9fe0101);  // 169.254.1.1
  const MacAddr gw{0x02, 0, 0, 0, 0, 9};
  EXPECT_TRUE(BuildNeighbourReply(req, Ip("169.254.1.2"), gw).empty());
  const std::vector<uint8_t> r = BuildNeighbourReply(req, Ip("169.254.1.1"), gw);
  ASSERT_EQ(r.size(), 60u);
  EXPECT_TRUE(std::equal(pod.begin(), pod.end(), r.begin())) << "to the requester";
  EXPECT_EQ(Load16(r.data() + 14 + 6), 2) << "ARP reply";
  EXPECT_TRUE(std::equal(gw.begin(), gw.end(), r.begin() + 14 + 8));
  EXPECT_EQ(Load32(r.data() + 14 + 14), 0xa9fe0101u);
  EXPECT_EQ(Load32(r.data() + 14 + 24), 0x0a000101u);
}

TEST(Neighbour, NeighbourSolicitationGetsAnAdvertisementWithValidChecksum) {
  PacketSpec s;
  s.proto = kProtoIcmpv6;
  s.src = Ip("fd00::5");
  s.dst = Ip("ff02::1:ff00:1");
  s.payload_len = 16;
  std::vector<uint8_t> req = *BuildPacket(s);
  uint8_t* icmp = req.data() + 14 + 40;
  icmp[0] = 135;
  const auto target = Ip("fd00::1").bytes();
  std::copy(target.begin(), target.end(), icmp + 8);
  EXPECT_EQ(NeighbourQueryTarget(req), Ip("fd00::1"));
  const std::vector<uint8_t> r = BuildNeighbourReply(req, Ip("fd00::1"), {2, 0, 0, 0, 0, 7});
  ASSERT_FALSE(r.empty());
  ParsedPacket p;
  ASSERT_EQ(ParsePacket(r, p), ParseError::kNone);
  EXPECT_EQ(p.fields.get(Field::kIcmpType).lo, 136u);
  EXPECT_EQ(SrcAddr(p), Ip("fd00::1"));
  EXPECT_EQ(DstAddr(p), Ip("fd00::5"));
  EXPECT_TRUE(ChecksumsValid(r, p));
}

}  // namespace
}  // namespace nicflow::sim
