#include "cluster_gen.h"

#include <random>

namespace nicflow::bench {

namespace {

using namespace flowtables;

IpAddr PodIp(int node, int slot) {
  // node n owns 10.(n / 256).(n % 256).0/24 ... shifted by 1 so 10.0.0.0/24 is unused.
  uint32_t base = (10u << 24) | (static_cast<uint32_t>(node + 1) << 8);
  return IpAddr::V4(base + static_cast<uint32_t>(slot % 250) + 2);
}

void AddNodes(const ClusterShape& s, ClusterState& st) {
  for (int n = 0; n < s.nodes; ++n) {
    Node node;
    node.name = "node-" + std::to_string(n);
    node.internal_ips = {IpAddr::V4((192u << 24) | ((168u << 16) + static_cast<uint32_t>(n) + 10))};
    node.pod_cidrs = {IpPrefix{PodIp(n, 0).Masked(24), 24}};
    st.nodes.push_back(node);
  }
  ProxyConfig pc;
  pc.hostname_override = "node-0";
  pc.cluster_cidrs = {*IpPrefix::Parse("10.0.0.0/8")};
  st.proxy_config = pc;
  st.service_cidrs.push_back({"kubernetes", {*IpPrefix::Parse("10.96.0.0/12")}, {}});
}

void AddPods(const ClusterShape& s, ClusterState& st) {
  for (int ns = 0; ns < s.namespaces; ++ns) {
    std::string name = "ns-" + std::to_string(ns);
    st.namespaces.push_back(
        {name,
         {{"kubernetes.io/metadata.name", name}, {"team", "t" + std::to_string(ns % 10)}},
         {}});
  }
  std::vector<int> per_node(s.nodes, 0);
  for (int i = 0; i < s.pods; ++i) {
    Pod p;
    int node = i % s.nodes;
    p.ns = "ns-" + std::to_string(i % s.namespaces);
    p.name = "pod-" + std::to_string(i);
    p.labels = {{"app", "app-" + std::to_string(i % 500)}, {"tier", i % 3 == 0 ? "web" : "api"}};
    p.node_name = "node-" + std::to_string(node);
    p.ips = {PodIp(node, per_node[node]++)};
    p.ports = {{"http", 8080, Protocol::kTcp}, {"metrics", 9100, Protocol::kTcp}};
    st.pods.push_back(std::move(p));
  }
}

constexpr int kNodePorts = 32767 - 30000 + 1;

void AddServices(const ClusterShape& s, std::mt19937_64& rng, ClusterState& st) {
  for (int i = 0; i < s.services; ++i) {
    Service svc;
    svc.ns = "ns-" + std::to_string(i % s.namespaces);
    svc.name = "svc-" + std::to_string(i);
    uint32_t ip = (10u << 24) | ((96u << 16) + static_cast<uint32_t>(i) + 10);
    svc.cluster_ips = {IpAddr::V4(ip)};
    svc.selector = Labels{{"app", "app-" + std::to_string(i % 500)}};
    ServicePort port{"http", Protocol::kTcp, 80, std::string("http"), 0};
    // Every tenth Service is a NodePort while the default node port range (30000-32767, 2,768
    // ports) lasts, as in a real cluster: above ~27,680 Services the rest are ClusterIP only
    // (wrapping around the range gave Services colliding node ports the compiler rejects).
    if (i % 10 == 1 && i / 10 < kNodePorts) {
      svc.type = ServiceType::kNodePort;
      port.node_port = static_cast<uint16_t>(30000 + i / 10);
    }
    svc.ports.push_back(port);
    if (i % 4 == 0) svc.ports.push_back({"metrics", Protocol::kTcp, 9100, uint16_t{9100}, 0});
    st.services.push_back(svc);

    EndpointSlice slice;
    slice.ns = svc.ns;
    slice.name = svc.name + "-abc";
    slice.service_name = svc.name;
    slice.family = IpFamily::kV4;
    slice.ports = {{"http", Protocol::kTcp, 8080}, {"metrics", Protocol::kTcp, 9100}};
    for (int e = 0; e < s.endpoints_per_service; ++e) {
      const Pod& pod = st.pods[rng() % st.pods.size()];
      Endpoint ep;
      ep.addresses = pod.ips;
      ep.node_name = pod.node_name;
      ep.target_pod = pod.ns + "/" + pod.name;
      slice.endpoints.push_back(ep);
    }
    st.endpoint_slices.push_back(std::move(slice));
  }
}

NetworkPolicyPeer RandomPeer(std::mt19937_64& rng, const ClusterShape& s) {
  NetworkPolicyPeer peer;
  switch (rng() % 4) {
    case 0:
      peer.pod_selector = LabelSelector{{{"app", "app-" + std::to_string(rng() % 500)}}, {}};
      break;
    case 1:
      peer.namespace_selector = LabelSelector{{{"team", "t" + std::to_string(rng() % 10)}}, {}};
      peer.pod_selector = LabelSelector{{{"tier", "web"}}, {}};
      break;
    case 2: {
      uint32_t net = (172u << 24) | (static_cast<uint32_t>(rng() % 16 + 16) << 16);
      IpBlock block{{IpAddr::V4(net), 16}, {{IpAddr::V4(net | (1u << 8)), 24}}};
      peer.ip_block = block;
      break;
    }
    default:
      peer.namespace_selector = LabelSelector{{},
                                              {{"kubernetes.io/metadata.name",
                                                LabelSelector::Op::kIn,
                                                {"ns-" + std::to_string(rng() % s.namespaces)}}}};
  }
  return peer;
}

void AddPolicies(const ClusterShape& s, std::mt19937_64& rng, GeneratedCluster& g) {
  for (int i = 0; i < s.policies; ++i) {
    NetworkPolicy np;
    np.ns = "ns-" + std::to_string(i % s.namespaces);
    np.name = "np-" + std::to_string(i);
    np.pod_selector = LabelSelector{{{"app", "app-" + std::to_string(rng() % 500)}}, {}};
    np.affects_ingress = true;
    np.affects_egress = i % 5 == 0;
    auto make_rule = [&] {
      NetworkPolicyRule r;
      int peers = 1 + static_cast<int>(rng() % 3);
      for (int p = 0; p < peers; ++p) r.peers.push_back(RandomPeer(rng, s));
      int ports = 1 + static_cast<int>(rng() % 3);
      for (int q = 0; q < ports; ++q) {
        NetworkPolicyPort port;
        switch (q) {
          case 0:
            port.port = uint16_t{8080};
            break;
          case 1:
            port.port = std::string("metrics");
            break;
          default:
            port.port = uint16_t{10000};
            port.end_port = 10100;
        }
        r.ports.push_back(port);
      }
      g.peers += peers;
      g.ports += ports;
      g.rules += 1;
      return r;
    };
    np.ingress.push_back(make_rule());
    if (np.affects_egress) np.egress.push_back(make_rule());
    g.state.network_policies.push_back(std::move(np));
  }
}

}  // namespace

GeneratedCluster GenerateCluster(const ClusterShape& shape) {
  GeneratedCluster g;
  std::mt19937_64 rng(shape.seed);
  AddNodes(shape, g.state);
  AddPods(shape, g.state);
  AddServices(shape, rng, g.state);
  AddPolicies(shape, rng, g);
  g.node_name = "node-0";
  return g;
}

void MoveOneEndpoint(ClusterState& state, size_t slice, size_t index, uint64_t salt) {
  EndpointSlice& s = state.endpoint_slices.at(slice);
  const Pod& pod = state.pods[(salt * 7919 + index) % state.pods.size()];
  Endpoint& ep = s.endpoints.at(index);
  ep.addresses = pod.ips;
  ep.node_name = pod.node_name;
  ep.target_pod = pod.ns + "/" + pod.name;
}

}  // namespace nicflow::bench
