// End-to-end on two simulated nodes, with the real binaries a user runs:
//
//   node-a: nicflow-simnic (uplink=veth A, vf:app/client)  <- nicflowd --config a.yaml
//   node-b: nicflow-simnic (uplink=veth B, vf:app/server-1, vf:app/server-2) <- nicflowd b.yaml
//   veth A <-> veth B is the wire between the nodes; pods are network namespaces.
//
// Both agents watch one manifests directory (as a ConfigMap would feed them). The test writes
// Namespaces, Nodes, Pods, a Service (ClusterIP and NodePort, TCP and UDP), its EndpointSlice
// and later a NetworkPolicy, and checks with real sockets: ClusterIP and NodePort from node-a's
// client reach node-b's servers; a policy blocks and its removal unblocks; removing an endpoint
// moves new connections while an established one keeps its endpoint; restarting both agents
// drops no connection and is zero device operations; `nicflow dump-flows -o json` counts
// exactly the packets sent. Needs root and netns (skipped otherwise).
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <iostream>
#include <map>
#include <memory>
#include <set>

#include "e2e_util.h"

namespace nicflow::e2e {
namespace {

using sim::testing::InNetns;
using sim::testing::NetnsPods;
using json = nlohmann::json;

constexpr const char* kClusterIp = "10.97.0.10";
constexpr const char* kNodeAIp = "192.168.77.1";
constexpr const char* kNodeBIp = "192.168.77.2";
constexpr uint16_t kTcpPort = 80, kUdpPort = 53, kTcpNodePort = 30080, kUdpNodePort = 30053;

constexpr const char* kCluster = R"(apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clusterCIDR: 10.77.0.0/16
---
apiVersion: networking.k8s.io/v1
kind: ServiceCIDR
metadata: {name: kubernetes}
spec: {cidrs: [10.97.0.0/16]}
---
apiVersion: v1
kind: Node
metadata: {name: node-a}
spec: {podCIDRs: [10.77.1.0/24]}
status: {addresses: [{type: InternalIP, address: 192.168.77.1}]}
---
apiVersion: v1
kind: Node
metadata: {name: node-b}
spec: {podCIDRs: [10.77.2.0/24]}
status: {addresses: [{type: InternalIP, address: 192.168.77.2}]}
---
apiVersion: v1
kind: Namespace
metadata: {name: app, labels: {kubernetes.io/metadata.name: app}}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: app, labels: {role: client}}
spec: {nodeName: node-a, containers: [{name: c, image: busybox}]}
status: {podIP: 10.77.1.10, podIPs: [{ip: 10.77.1.10}]}
---
apiVersion: v1
kind: Pod
metadata: {name: server-1, namespace: app, labels: {app: echo}}
spec: {nodeName: node-b, containers: [{name: echo, image: echo}]}
status: {podIP: 10.77.2.20, podIPs: [{ip: 10.77.2.20}]}
---
apiVersion: v1
kind: Pod
metadata: {name: server-2, namespace: app, labels: {app: echo}}
spec: {nodeName: node-b, containers: [{name: echo, image: echo}]}
status: {podIP: 10.77.2.21, podIPs: [{ip: 10.77.2.21}]}
---
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: app}
spec:
  type: NodePort
  clusterIP: 10.97.0.10
  selector: {app: echo}
  ports:
    - {name: tcp, port: 80, targetPort: 8080, nodePort: 30080, protocol: TCP}
    - {name: udp, port: 53, targetPort: 5353, nodePort: 30053, protocol: UDP}
)";

// The EndpointSlice of app/echo with the given server pods (all on node-b).
std::string EndpointSlice(const std::vector<std::pair<std::string, std::string>>& servers) {
  std::string y = R"(apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: echo-x1
  namespace: app
  labels: {kubernetes.io/service-name: echo}
addressType: IPv4
ports:
  - {name: tcp, port: 8080, protocol: TCP}
  - {name: udp, port: 5353, protocol: UDP}
endpoints:
)";
  for (const auto& [name, ip] : servers) {
    y += "  - addresses: [" + ip + "]\n";
    y += "    conditions: {ready: true, serving: true, terminating: false}\n";
    y += "    nodeName: node-b\n";
    y += "    targetRef: {kind: Pod, namespace: app, name: " + name + "}\n";
  }
  return y;
}

// Isolates the echo pods for ingress and admits nothing.
constexpr const char* kDenyPolicy = R"(apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: echo-deny-all, namespace: app}
spec:
  podSelector: {matchLabels: {app: echo}}
  policyTypes: [Ingress]
)";

// Answers "who" with `name` on TCP :8080 (any number of open connections) and UDP :5353 inside
// `netns` until `stop`.
std::future<void> EchoServer(const std::string& netns, const std::string& name,
                             std::promise<bool>& ready, const std::atomic<bool>& stop) {
  return InNetns(netns, [name, &ready, &stop] {
    const int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int us = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    const int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(8080);
    bool ok = bind(ls, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 && listen(ls, 64) == 0;
    a.sin_port = htons(5353);
    ok = ok && bind(us, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
    ready.set_value(ok);
    std::vector<pollfd> fds = {{ls, POLLIN, 0}, {us, POLLIN, 0}};
    while (ok && !stop) {
      if (poll(fds.data(), fds.size(), 50) <= 0) continue;
      char buf[64];
      if (fds[0].revents & POLLIN) {
        const int c = accept4(ls, nullptr, nullptr, SOCK_CLOEXEC);
        if (c >= 0) fds.push_back({c, POLLIN, 0});
      }
      if (fds[1].revents & POLLIN) {
        sockaddr_in from{};
        socklen_t flen = sizeof(from);
        if (recvfrom(us, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&from), &flen) > 0) {
          sendto(us, name.data(), name.size(), 0, reinterpret_cast<sockaddr*>(&from), flen);
        }
      }
      for (size_t i = 2; i < fds.size();) {
        if (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) {
          if (recv(fds[i].fd, buf, sizeof(buf), 0) <= 0 ||
              send(fds[i].fd, name.data(), name.size(), MSG_NOSIGNAL) < 0) {
            close(fds[i].fd);
            fds.erase(fds.begin() + static_cast<std::ptrdiff_t>(i));
            continue;
          }
        }
        fds[i].revents = 0;
        ++i;
      }
    }
    for (const pollfd& p : fds) close(p.fd);
  });
}

// One simulated node: its nicflow-simnic and nicflowd processes and their sockets.
struct Node {
  std::string name;
  std::string dir;
  std::vector<std::string> attach;  // PORT=IFNAME
  std::unique_ptr<ChildProcess> simnic;
  std::unique_ptr<ChildProcess> agent;

  std::string SimnicSocket() const { return dir + "/simnic-" + name + ".sock"; }
  std::string AgentSocket() const { return dir + "/nicflowd-" + name + ".sock"; }
  std::string Config() const { return dir + "/nicflowd-" + name + ".yaml"; }
};

std::string Bin(const std::string& name) {
  return std::string(NICFLOW_BINARY_DIR) + "/host/" + name;
}

class TwoNodes : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!NetnsPods::Available()) GTEST_SKIP() << "needs root and iproute2 network namespaces";
    for (const char* b : {"nicflowd", "nicflow-simnic", "nicflow"}) {
      ASSERT_TRUE(fs::exists(Bin(b))) << Bin(b) << " not built";
    }
    std::string tmpl = (fs::temp_directory_path() / "nicflow-e2e-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    manifests_ = dir_ + "/manifests";
    fs::create_directories(manifests_);
    WriteFileAtomically(manifests_ + "/cluster.yaml", kCluster);
    WriteFileAtomically(manifests_ + "/endpoints.yaml", EndpointSlice(kServers));

    for (auto [name, ip] :
         std::vector<std::pair<std::string, std::string>>{{"app/client", "10.77.1.10"},
                                                          {"app/server-1", "10.77.2.20"},
                                                          {"app/server-2", "10.77.2.21"}}) {
      ASSERT_EQ(pods_.Add(name, ip), "") << "setting up pod " << name;
    }
    const std::string id = std::to_string(getpid() % 100000);
    ASSERT_EQ(wire_.Create("nfupa" + id, "nfupb" + id), "");
    a_ = {"node-a", dir_, {"uplink=nfupa" + id, "vf:app/client=" + pods_[0].host_if}, {}, {}};
    b_ = {"node-b",
          dir_,
          {"uplink=nfupb" + id, "vf:app/server-1=" + pods_[1].host_if,
           "vf:app/server-2=" + pods_[2].host_if},
          {},
          {}};
    for (Node* n : {&a_, &b_}) {
      StartSimnic(*n);
      WriteFileAtomically(n->Config(),
                          "node: " + n->name + "\nbackend: {type: sim, profile: " + ProfileOf(*n) +
                              ", "
                              "simnic_socket: " +
                              n->SimnicSocket() + "}\ninputs: {manifests: " + manifests_ +
                              "}\ncontrol: {socket: " + n->AgentSocket() +
                              "}\nmetrics: {address: \"\"}\nreconcile: "
                              "{debounce_ms: 50, resync_s: 0}\n");
      StartAgent(*n);
    }
    for (Node* n : {&a_, &b_}) ASSERT_TRUE(WaitHealthy(*n)) << Logs();
    for (size_t i = 1; i <= 2; ++i) {
      std::promise<bool> ready;
      servers_.push_back(EchoServer(pods_[i].netns, kServers[i - 1].first, ready, stop_servers_));
      ASSERT_TRUE(ready.get_future().get()) << "echo server in " << pods_[i].name;
    }
  }

  void TearDown() override {
    stop_servers_ = true;
    for (auto& s : servers_) s.wait();
    for (Node* n : {&a_, &b_}) {
      n->agent.reset();
      n->simnic.reset();
    }
    if (HasFailure()) std::cerr << Logs();
    std::error_code ec;
    if (!dir_.empty()) fs::remove_all(dir_, ec);
  }

  void StartSimnic(Node& n) {
    std::vector<std::string> argv = {Bin("nicflow-simnic"), "--socket", n.SimnicSocket(),
                                     "--profile", ProfileOf(n)};
    for (const std::string& a : n.attach) {
      argv.push_back("--attach");
      argv.push_back(a);
    }
    n.simnic = std::make_unique<ChildProcess>(argv, dir_ + "/simnic-" + n.name + ".log");
    ASSERT_TRUE(Eventually([&] { return fs::exists(n.SimnicSocket()); })) << Logs();
  }

  void StartAgent(Node& n) {
    n.agent = std::make_unique<ChildProcess>(
        std::vector<std::string>{Bin("nicflowd"), "--config", n.Config()},
        dir_ + "/nicflowd-" + n.name + ".log");
  }

  json Cli(const Node& n, const std::string& cmd) {
    return CliJson(Bin("nicflow"), cmd + " --socket " + n.AgentSocket() + " -o json");
  }

  bool WaitHealthy(const Node& n) {
    return Eventually([&] {
      json s = Cli(n, "status");
      return s.is_object() && s.value("healthy", false) && s.value("syncs", 0) >= 1;
    });
  }

  uint64_t Syncs(const Node& n) {
    json s = Cli(n, "status");
    return s.is_object() ? s.value("syncs", uint64_t{0}) : 0;
  }

  // Waits until both agents have synced after `before` and are healthy again.
  bool WaitSynced(const std::map<std::string, uint64_t>& before) {
    return Eventually([&] {
      for (const Node* n : {&a_, &b_}) {
        json s = Cli(*n, "status");
        if (!s.is_object() || s.value("syncs", uint64_t{0}) <= before.at(n->name) ||
            !s.value("healthy", false)) {
          return false;
        }
      }
      return true;
    });
  }
  std::map<std::string, uint64_t> SyncsNow() {
    return {{a_.name, Syncs(a_)}, {b_.name, Syncs(b_)}};
  }

  // Sum of `packets` over the entries of `table` whose origin is (kind, namespace/name).
  uint64_t Packets(const Node& n, const std::string& table, const std::string& kind,
                   const std::string& object) {
    const json flows = Cli(n, "dump-flows");
    uint64_t sum = 0;
    for (const json& t : flows.value("tables", json::array())) {
      if (t.value("name", "") != table) continue;
      for (const json& e : t.value("entries", json::array())) {
        const json o = e.value("origin", json::object());
        if (o.value("kind", "") == kind &&
            o.value("namespace", "") + "/" + o.value("name", "") == object) {
          sum += e.value("packets", uint64_t{0});
        }
      }
    }
    return sum;
  }

  template <typename Fn>
  auto FromClient(Fn fn) {
    return InNetns(pods_[0].netns, fn).get();
  }

  std::string Logs() const {
    std::string out;
    for (const char* f :
         {"simnic-node-a.log", "simnic-node-b.log", "nicflowd-node-a.log", "nicflowd-node-b.log"}) {
      out += std::string("---- ") + f + "\n" + ReadFile(dir_ + "/" + f);
    }
    return out;
  }

  const std::vector<std::pair<std::string, std::string>> kServers = {{"server-1", "10.77.2.20"},
                                                                     {"server-2", "10.77.2.21"}};
  std::string ProfileOf(const Node& n) const {
    return n.name == "node-a" ? profile_a_ : "unlimited";
  }

  std::string profile_a_ = "unlimited";  // node-a's simnic profile (a restricted one punts)
  std::string dir_, manifests_;
  NetnsPods pods_;
  VethPair wire_;
  Node a_, b_;
  std::atomic<bool> stop_servers_{false};
  std::vector<std::future<void>> servers_;
};

bool IsServer(const std::string& who) { return who == "server-1" || who == "server-2"; }

// node-a's simnic runs the ConnectX-6 Dx profile: no select groups, so every Service frontend is
// a punt entry and the ClusterIP is placed in software there.
class TwoNodesPunting : public TwoNodes {
 protected:
  void SetUp() override {
    profile_a_ = "connectx6dx";
    TwoNodes::SetUp();
  }
};

// A real TCP connection from app/client to the ClusterIP: node-a's device punts the SYN at
// `service`; nicflow-simnic's software path DNATs it to a server on node-b and sends it out of the
// uplink; the server's answers come back on node-a's uplink, belong to the software path's
// connection (the device's conntrack does not know it) and are reverse-NATed there.
TEST_F(TwoNodesPunting, ClusterIpPlacedInSoftwareAnswersOverTcp) {
  const json status = Cli(a_, "status");
  ASSERT_GT(status["placement"].value("in_software", 0), 0) << status.dump();
  std::string who;
  EXPECT_TRUE(Eventually([&] {
    who = FromClient([] { return TcpWho(kClusterIp, kTcpPort, 1500); });
    return IsServer(who);
  })) << "answer: '"
      << who << "'\n"
      << Logs();
  const json stats = Cli(a_, "stats");
  ASSERT_TRUE(stats.contains("software_path")) << stats.dump();
  const json& sw = stats["software_path"];
  std::cout << "$ nicflow stats (node-a)\n"
            << sim::testing::ShOut(Bin("nicflow") + " stats --socket " + a_.AgentSocket() +
                                   " 2>/dev/null");
  EXPECT_GE(sw.value("resumed", 0), 1) << sw.dump();
  EXPECT_GE(sw.value("steered", 0), 1) << "the server's answers: " << sw.dump();
  EXPECT_GE(stats["datapath"].value("punted", 0), 1) << stats.dump();
}

TEST_F(TwoNodes, ClusterIpAndNodePortReachEndpointsOnTheOtherNodeOverTcpAndUdp) {
  // The first packets of each path also teach the simulated NICs their neighbours (ARP), so the
  // first attempts may be lost to that; TCP retransmits, the poll retries.
  struct Target {
    const char* ip;
    uint16_t port;
    bool tcp;
  };
  for (const Target t :
       {Target{kClusterIp, kTcpPort, true}, Target{kClusterIp, kUdpPort, false},
        Target{kNodeBIp, kTcpNodePort, true}, Target{kNodeBIp, kUdpNodePort, false},
        Target{kNodeAIp, kTcpNodePort, true}, Target{kNodeAIp, kUdpNodePort, false}}) {
    std::string who;
    EXPECT_TRUE(Eventually([&] {
      who = FromClient(
          [&] { return t.tcp ? TcpWho(t.ip, t.port, 1500) : UdpWho(t.ip, t.port, 500); });
      return IsServer(who);
    })) << "app/client on node-a reaches "
        << t.ip << ":" << t.port << (t.tcp ? "/TCP" : "/UDP") << " served on node-b; answer: '"
        << who << "'\n"
        << Logs();
  }

  // Both endpoints serve the ClusterIP over new connections.
  std::set<std::string> seen;
  for (int i = 0; i < 40 && seen.size() < 2; ++i) {
    seen.insert(FromClient([] { return TcpWho(kClusterIp, kTcpPort, 3000); }));
  }
  EXPECT_EQ(seen, (std::set<std::string>{"server-1", "server-2"}));
}

TEST_F(TwoNodes, DumpFlowsCountsExactlyThePacketsSent) {
  // Warm up until both endpoints have answered over UDP: node-b's NIC drops the first frame
  // towards a pod whose MAC it has not learned yet (and asks for it), so a counted flow must
  // not be the first one to reach either server.
  std::set<std::string> warm;
  ASSERT_TRUE(Eventually([&] {
    for (uint16_t src = 21000; src < 21040 && warm.size() < 2; ++src) {
      const std::string who = FromClient([src] { return UdpWho(kClusterIp, kUdpPort, 500, src); });
      if (IsServer(who)) warm.insert(who);
    }
    return warm.size() == 2;
  })) << "both servers answer over UDP; seen "
      << warm.size() << "\n"
      << Logs();
  const uint64_t svc_a = Packets(a_, "service", "Service", "app/echo");
  const uint64_t to_client = Packets(a_, "forward", "Pod", "app/client");
  const uint64_t to_servers =
      Packets(b_, "forward", "Pod", "app/server-1") + Packets(b_, "forward", "Pod", "app/server-2");

  // Each flow from its own source port below the ephemeral range: a port the kernel handed out
  // again would be an established flow in conntrack and skip the Service's entries.
  constexpr int kFlows = 20;
  int answered = 0;
  for (int i = 0; i < kFlows; ++i) {
    const auto src = static_cast<uint16_t>(20000 + i);
    answered += IsServer(FromClient([src] { return UdpWho(kClusterIp, kUdpPort, 3000, src); }));
  }
  ASSERT_EQ(answered, kFlows) << "every datagram was answered (one packet each way per flow)";

  EXPECT_EQ(Packets(a_, "service", "Service", "app/echo") - svc_a, uint64_t{kFlows})
      << "node-a: each new flow's datagram hit the Service's entries once (DNAT)";
  EXPECT_EQ(Packets(a_, "forward", "Pod", "app/client") - to_client, uint64_t{kFlows})
      << "node-a: each answer was forwarded to the client's VF";
  EXPECT_EQ(Packets(b_, "forward", "Pod", "app/server-1") +
                Packets(b_, "forward", "Pod", "app/server-2") - to_servers,
            uint64_t{kFlows})
      << "node-b: each datagram was forwarded to a server's VF";
}

TEST_F(TwoNodes, NetworkPolicyFileBlocksAndItsRemovalUnblocks) {
  ASSERT_TRUE(Eventually([&] {
    return IsServer(FromClient([] { return TcpWho(kClusterIp, kTcpPort, 1500); }));
  })) << Logs();

  auto before = SyncsNow();
  WriteFileAtomically(manifests_ + "/policy.yaml", kDenyPolicy);
  ASSERT_TRUE(WaitSynced(before)) << Logs();
  EXPECT_EQ(FromClient([] { return TcpWho(kClusterIp, kTcpPort, 1500); }), "")
      << "the deny-all policy blocks new TCP connections";
  EXPECT_EQ(FromClient([] { return UdpWho(kClusterIp, kUdpPort, 500); }), "")
      << "the deny-all policy blocks new UDP flows";
  EXPECT_EQ(FromClient([] { return TcpWho(kNodeBIp, kTcpNodePort, 1500); }), "")
      << "the deny-all policy blocks the NodePort too";

  before = SyncsNow();
  fs::remove(manifests_ + "/policy.yaml");
  ASSERT_TRUE(WaitSynced(before)) << Logs();
  EXPECT_TRUE(Eventually([&] {
    return IsServer(FromClient([] { return TcpWho(kClusterIp, kTcpPort, 1500); }));
  })) << "removing the policy admits TCP again";
  EXPECT_TRUE(Eventually([&] {
    return IsServer(FromClient([] { return UdpWho(kClusterIp, kUdpPort, 500); }));
  })) << "removing the policy admits UDP again";
}

TEST_F(TwoNodes, RemovedEndpointTakesNoNewConnectionsButKeepsItsEstablishedOne) {
  int conn = -1;
  std::string first;
  ASSERT_TRUE(Eventually([&] {
    if (conn >= 0) close(conn);
    conn = FromClient([] { return TcpConnect(kClusterIp, kTcpPort, 1500); });
    first = Ask(conn, 1500);
    return IsServer(first);
  })) << Logs();
  const std::string remaining = first == "server-1" ? "server-2" : "server-1";

  auto before = SyncsNow();
  WriteFileAtomically(manifests_ + "/endpoints.yaml",
                      EndpointSlice({*std::find_if(kServers.begin(), kServers.end(), [&](auto& s) {
                        return s.first == remaining;
                      })}));
  ASSERT_TRUE(WaitSynced(before)) << Logs();
  for (const Node* n : {&a_, &b_}) {
    const json compile = Cli(*n, "status").value("compile", json::object());
    EXPECT_GE(compile.value("incremental", uint64_t{0}), 1u)
        << n->name << ": the EndpointSlice file change was compiled incrementally; "
        << compile.dump();
  }

  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(FromClient([] { return TcpWho(kClusterIp, kTcpPort, 3000); }), remaining)
        << "new connection " << i << " goes to the remaining endpoint";
  }
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(Ask(conn, 3000), first)
        << "the established connection keeps its removed endpoint (conntrack holds it)";
  }
  close(conn);
}

TEST_F(TwoNodes, RestartingBothAgentsDropsNoEstablishedConnection) {
  int tcp = -1;
  std::string server;
  ASSERT_TRUE(Eventually([&] {
    if (tcp >= 0) close(tcp);
    tcp = FromClient([] { return TcpConnect(kClusterIp, kTcpPort, 1500); });
    server = Ask(tcp, 1500);
    return IsServer(server);
  })) << Logs();
  const uint64_t ops_before = Cli(a_, "status").value("device_ops", uint64_t{0});
  ASSERT_GT(ops_before, 0u);

  for (Node* n : {&a_, &b_}) {
    n->agent->Stop(SIGKILL);
    StartAgent(*n);
  }
  for (Node* n : {&a_, &b_}) {
    ASSERT_TRUE(WaitHealthy(*n)) << Logs();
    const json status = Cli(*n, "status");
    EXPECT_EQ(status.value("device_ops", uint64_t{1}), 0u)
        << n->name << ": the restarted agent found the device in sync (no flush, no reinstall)";
  }
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(Ask(tcp, 3000), server) << "the connection opened before the restart still works";
  }
  close(tcp);
  EXPECT_TRUE(IsServer(FromClient([] { return TcpWho(kClusterIp, kTcpPort, 3000); })))
      << "new connections work after the restart";
  EXPECT_TRUE(IsServer(FromClient([] { return UdpWho(kNodeBIp, kUdpNodePort, 1000); })))
      << "the NodePort works after the restart";
}

}  // namespace
}  // namespace nicflow::e2e
