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

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <future>
#include <thread>

#include "netns_pods.h"
#include "nicflow/sim/checksum.h"
#include "test_programs.h"

namespace nicflow::sim {
namespace {

namespace ft = flowtables;
using testing::Ip;

class LiveNamespaceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing::NetnsPods::Available()) GTEST_SKIP() << "needs root and iproute2 netns";
    for (auto [name, ip] :
         {std::pair{"ns/a", "10.0.1.1"}, {"ns/b", "10.0.2.1"}, {"ns/d", "10.0.1.9"}}) {
      const std::string failed = pods_.Add(name, ip);
      ASSERT_EQ(failed, "") << "setting up pod " << name;
    }
  }

  testing::NetnsPods pods_;
};

TEST_F(LiveNamespaceTest, ClusterIpConnectionIsDnatedAcrossNamespacesAndPolicyDenies) {
  std::vector<testing::MiniPod> mini;
  for (const testing::NetnsPod& p : pods_.pods()) mini.push_back({p.name, p.ip});
  auto nic = SimNic::Create(*BuiltinProfile("unlimited"));
  ASSERT_TRUE(
      nic->Install(testing::MiniProgram(mini, "10.96.0.10", 80, {"10.0.2.1"}, "10.0.1.9")).ok());
  LiveDatapath live(*nic);
  for (const testing::NetnsPod& p : pods_.pods()) {
    ASSERT_TRUE(live.Attach(*nic->FindPortByName("vf:" + p.name),
                            testing::NetnsPods::PortConfig(p, Ip(testing::kPodGateway)))
                    .ok());
  }
  std::atomic<bool> stop{false};
  std::thread datapath([&] {
    while (!stop) (void)live.PollOnce(10);
  });

  std::promise<void> listening;
  auto server = testing::InNetns(pods_[1].netns, [&]() -> int {
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
  const bool allowed = testing::InNetns(pods_[0].netns, [] {
                         return testing::TcpPingPong("10.96.0.10", 80, 5000);
                       }).get();
  const bool denied = testing::InNetns(pods_[2].netns, [] {
                        return testing::TcpPingPong("10.96.0.10", 80, 1500);
                      }).get();
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

TEST(Neighbour, ArpProbeForAnUnknownPeerIsAnsweredByTheFarEndsProxy) {
  const MacAddr ours{0x02, 0, 0, 0, 0, 1}, theirs{0x02, 0, 0, 0, 0, 2};
  const std::vector<uint8_t> probe = BuildArpRequest(ours, Ip("10.77.2.20"));
  ASSERT_EQ(probe.size(), 60u);
  EXPECT_TRUE(std::all_of(probe.begin(), probe.begin() + 6, [](uint8_t b) { return b == 0xff; }))
      << "broadcast";
  EXPECT_EQ(Load16(probe.data() + 14 + 6), 1) << "ARP request";
  EXPECT_EQ(Load32(probe.data() + 14 + 14), 0u) << "a probe: no sender address";
  ASSERT_EQ(NeighbourQueryTarget(probe), Ip("10.77.2.20"));
  const std::vector<uint8_t> reply = BuildNeighbourReply(probe, Ip("10.77.2.20"), theirs);
  ASSERT_EQ(reply.size(), 60u);
  EXPECT_TRUE(std::equal(ours.begin(), ours.end(), reply.begin())) << "back to the prober";
  EXPECT_TRUE(std::equal(theirs.begin(), theirs.end(), reply.begin() + 6))
      << "the source MAC the prober learns as its peer";
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
