// Live test on compiled manifests: tests/live/cluster.yaml is loaded and compiled the way
// `nicflow compile` does it, the program runs in the simulator, and three pods (network
// namespaces with veth pairs into the simulator's VFs) talk through real kernel sockets:
//   app/client   -> echo ClusterIP 10.97.0.10:80/TCP and :53/UDP, DNATed to app/server; replies
//                   come back reverse-NATed from the ClusterIP;
//   other/intruder -> the same, denied by NetworkPolicy app/echo-from-app-clients (the policy
//                   admits role=client pods of namespace app only).
// The simulator's counters show both: the Service's entries and the policy's allow entries hit,
// the intruder's packets dropped. Needs root (skipped otherwise).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <future>
#include <string>
#include <thread>

#include "cli.h"
#include "netns_pods.h"
#include "nicflow/sim/device.h"
#include "nicflow/sim/live.h"
#include "nicflow/sim/profile.h"

namespace nicflow {
namespace {

namespace ft = flowtables;
using sim::testing::InNetns;
using sim::testing::NetnsPods;

constexpr const char* kClusterIp = "10.97.0.10";

// Sums the packet counters of every entry whose provenance is `origin_prefix`.
uint64_t PacketsFrom(const sim::SimNic& nic, std::string_view origin_prefix) {
  uint64_t sum = 0;
  const ft::Program& p = nic.installed();
  for (const auto& table : p.entries) {
    for (const ft::Entry& e : table) {
      if (!e.origin.ToString().starts_with(origin_prefix)) continue;
      auto c = nic.GetEntryCounters(ft::EntryKey(e));
      if (c.ok()) sum += c->packets;
    }
  }
  return sum;
}

// Serves TCP ping/pong connections on :8080 and UDP pings on :5353 inside `netns` until `stop`
// is set. Returns {tcp connections served, udp datagrams served}.
std::future<std::pair<int, int>> EchoServer(const std::string& netns, std::promise<void>& ready,
                                            const std::atomic<bool>& stop) {
  return InNetns(netns, [&ready, &stop]() -> std::pair<int, int> {
    const int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int us = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    const int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(8080);
    const bool bound =
        bind(ls, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 && listen(ls, 8) == 0;
    a.sin_port = htons(5353);
    const bool ubound = bind(us, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
    ready.set_value();
    std::pair<int, int> served{0, 0};
    pollfd p[2] = {{ls, POLLIN, 0}, {us, POLLIN, 0}};
    while (bound && ubound && !stop) {
      if (poll(p, 2, 50) <= 0) continue;
      if (p[0].revents & POLLIN) {
        const int c = accept(ls, nullptr, nullptr);
        char buf[8];
        if (c >= 0 && recv(c, buf, sizeof(buf), 0) == 4 && send(c, "pong", 4, MSG_NOSIGNAL) == 4)
          ++served.first;
        if (c >= 0) close(c);
      }
      if (p[1].revents & POLLIN) {
        char buf[8];
        sockaddr_in from{};
        socklen_t flen = sizeof(from);
        if (recvfrom(us, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&from), &flen) == 4 &&
            sendto(us, "pong", 4, 0, reinterpret_cast<sockaddr*>(&from), flen) == 4) {
          ++served.second;
        }
      }
    }
    close(ls);
    close(us);
    return served;
  });
}

TEST(LiveCluster, CompiledManifestsServeClusterIpOverTcpAndUdpAndEnforceThePolicy) {
  if (!NetnsPods::Available()) GTEST_SKIP() << "needs root and iproute2 netns";
  cli::ManifestOptions opts;
  opts.files = {std::string(NICFLOW_SOURCE_DIR) + "/tests/live/cluster.yaml"};
  auto compiled = cli::LoadAndCompile(opts);
  ASSERT_TRUE(compiled.ok()) << compiled.status();

  NetnsPods pods;
  for (auto [name, ip] : {std::pair{"app/client", "10.77.1.10"},
                          {"app/server", "10.77.1.20"},
                          {"other/intruder", "10.77.1.30"}}) {
    ASSERT_EQ(pods.Add(name, ip), "") << "setting up pod " << name;
  }
  const auto& client = pods[0];
  const auto& server = pods[1];
  const auto& intruder = pods[2];

  auto nic = sim::SimNic::Create(*sim::BuiltinProfile("unlimited"));
  ASSERT_TRUE(nic->Install(compiled->program).ok());
  sim::LiveDatapath live(*nic);
  const auto gateway = *ft::IpAddr::Parse(sim::testing::kPodGateway);
  for (const auto& p : pods.pods()) {
    auto port = nic->FindPortByName("vf:" + p.name);
    ASSERT_TRUE(port.ok()) << "the compiled program declares a VF for " << p.name;
    ASSERT_TRUE(live.Attach(*port, NetnsPods::PortConfig(p, gateway)).ok());
  }
  std::atomic<bool> stop{false};
  std::thread datapath([&] {
    while (!stop) (void)live.PollOnce(10);
  });

  std::promise<void> ready;
  std::atomic<bool> stop_server{false};
  auto served = EchoServer(server.netns, ready, stop_server);
  ready.get_future().wait();
  const bool client_tcp =
      InNetns(client.netns, [] { return sim::testing::TcpPingPong(kClusterIp, 80, 5000); }).get();
  const bool client_udp =
      InNetns(client.netns, [] { return sim::testing::UdpPingPong(kClusterIp, 53, 3000); }).get();
  const bool intruder_tcp =
      InNetns(intruder.netns, [] { return sim::testing::TcpPingPong(kClusterIp, 80, 1500); }).get();
  const bool intruder_udp =
      InNetns(intruder.netns, [] { return sim::testing::UdpPingPong(kClusterIp, 53, 1000); }).get();
  stop_server = true;
  const auto [tcp_served, udp_served] = served.get();
  stop = true;
  datapath.join();

  EXPECT_TRUE(client_tcp) << "app/client reaches echo over TCP through the ClusterIP";
  EXPECT_TRUE(client_udp) << "app/client reaches echo over UDP through the ClusterIP";
  EXPECT_EQ(tcp_served, 1) << "exactly the client's connection reached the server";
  EXPECT_EQ(udp_served, 1) << "exactly the client's datagram reached the server";
  EXPECT_FALSE(intruder_tcp) << "other/intruder is not admitted by the policy";
  EXPECT_FALSE(intruder_udp) << "other/intruder is not admitted by the policy";

  // The counters tell the same story.
  EXPECT_GE(PacketsFrom(*nic, "Service app/echo"), 4u)
      << "new connections of both pods, both protocols, hit the Service's entries";
  EXPECT_GE(PacketsFrom(*nic, "NetworkPolicy app/echo-from-app-clients"), 2u)
      << "the client's TCP SYN and UDP datagram matched the policy's allow rule";
  EXPECT_GE(nic->counters().drops[static_cast<size_t>(sim::DropReason::kDropAction)], 2u)
      << "the intruder's SYN and datagram were dropped by the ingress isolation";
  EXPECT_GE(nic->counters().ct_committed, 2u);
  auto intruder_port = nic->GetPortCounters(*nic->FindPortByName("vf:other/intruder"));
  ASSERT_TRUE(intruder_port.ok());
  EXPECT_GE(intruder_port->rx_packets, 2u);
  EXPECT_EQ(intruder_port->tx_packets, 0u) << "nothing came back to the intruder";
}

}  // namespace
}  // namespace nicflow
