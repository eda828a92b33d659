// The compiled tables against a direct, slow reading of the NetworkPolicy v1 rules, on random
// clusters (as OVS tests its classifier against a linear one).
#include <cstdio>
#include <random>

#include "gtest/gtest.h"
#include "policy_test_util.h"

namespace nicflow::flowtables {
namespace {

using namespace testing_policy;  // NOLINT: test helpers

// ---- The reference: the API's words, one packet at a time -------------------------------------

class Reference {
 public:
  explicit Reference(const ClusterState& s) : s_(s) {}

  bool Allowed(const Packet& p) const {
    const Pod* src = PodByIp(p.src);
    const Pod* dst = PodByIp(p.dst);
    if (p.flags & kFlagHairpin) return true;  // a pod cannot block access to itself
    // Traffic to and from the pod's own node is always allowed (API docs).
    const bool to_node = p.dst == Ip(kNodeIp) || p.dst == Ip(kNodeIpV6);
    if (src && src->node_name == kNode && !to_node && !Allows(*src, true, p.dst, dst, p)) {
      return false;
    }
    if (dst && dst->node_name == kNode && !(p.flags & kFlagFromHost) &&
        !Allows(*dst, false, p.src, dst, p)) {
      return false;
    }
    return true;
  }

 private:
  const Pod* PodByIp(const IpAddr& ip) const {
    for (const Pod& pod : s_.pods) {
      if (pod.host_network || pod.terminal) continue;
      for (const IpAddr& a : pod.ips) {
        if (a == ip) return &pod;
      }
    }
    return nullptr;
  }

  Labels NamespaceLabels(const std::string& ns) const {
    for (const Namespace& n : s_.namespaces) {
      if (n.name == ns) return n.labels;
    }
    return {{"kubernetes.io/metadata.name", ns}};
  }

  bool PeerAdmits(const NetworkPolicy& pol, const NetworkPolicyPeer& peer, const IpAddr& ip) const {
    if (peer.ip_block) {
      if (!peer.ip_block->cidr.Contains(ip)) return false;
      for (const IpPrefix& e : peer.ip_block->except) {
        if (e.Contains(ip)) return false;
      }
      return true;
    }
    const Pod* pod = PodByIp(ip);
    if (!pod) return false;
    const bool ns_ok = peer.namespace_selector
                           ? peer.namespace_selector->Matches(NamespaceLabels(pod->ns))
                           : pod->ns == pol.ns;
    return ns_ok && (!peer.pod_selector || peer.pod_selector->Matches(pod->labels));
  }

  static bool PortAdmits(const NetworkPolicyPort& port, const Pod* dst, const Packet& p) {
    if (port.protocol != p.proto) return false;
    if (std::holds_alternative<std::monostate>(port.port)) return true;
    if (const auto* n = std::get_if<uint16_t>(&port.port)) {
      return p.dport >= *n && p.dport <= port.end_port.value_or(*n);
    }
    if (!dst) return false;
    for (const ContainerPort& cp : dst->ports) {
      if (cp.name == std::get<std::string>(port.port) && cp.protocol == p.proto) {
        return cp.port == p.dport;
      }
    }
    return false;
  }

  bool Allows(const Pod& pod, bool egress, const IpAddr& peer_ip, const Pod* dst,
              const Packet& p) const {
    bool isolated = false;
    for (const NetworkPolicy& pol : s_.network_policies) {
      if (pol.ns != pod.ns || !pol.pod_selector.Matches(pod.labels)) continue;
      if (!(egress ? pol.affects_egress : pol.affects_ingress)) continue;
      isolated = true;
      for (const NetworkPolicyRule& r : egress ? pol.egress : pol.ingress) {
        bool peer_ok = r.peers.empty();
        for (const auto& peer : r.peers) peer_ok |= PeerAdmits(pol, peer, peer_ip);
        bool port_ok = r.ports.empty();
        for (const auto& port : r.ports) port_ok |= PortAdmits(port, dst, p);
        if (peer_ok && port_ok) return true;
      }
    }
    return !isolated;
  }

  const ClusterState& s_;
};

// ---- Random clusters ---------------------------------------------------------------------------

class Gen {
 public:
  explicit Gen(uint32_t seed) : rng_(seed) {}

  int Int(int n) { return static_cast<int>(rng_() % static_cast<uint32_t>(n)); }
  bool Coin(int percent = 50) { return Int(100) < percent; }

  LabelSelector Selector(const char* k1, const char* k2, std::vector<std::string> vals) {
    LabelSelector s;
    const int kind = Int(6);
    const std::string key = Coin() ? k1 : k2;
    const std::string v = vals[Int(static_cast<int>(vals.size()))];
    if (kind == 1) s.match_labels[key] = v;
    using Op = LabelSelector::Op;
    if (kind == 2) s.match_expressions.push_back({key, Op::kIn, {v, vals[0]}});
    if (kind == 3) s.match_expressions.push_back({key, Op::kNotIn, {v}});
    if (kind == 4) s.match_expressions.push_back({key, Op::kExists, {}});
    if (kind == 5) s.match_expressions.push_back({key, Op::kDoesNotExist, {}});
    return s;
  }
  LabelSelector PodSelector() { return Selector("app", "tier", {"w", "d", "c"}); }
  LabelSelector NsSelector() { return Selector("env", "team", {"a", "b"}); }

  NetworkPolicyPeer Peer() {
    switch (Int(4)) {
      case 0:
        return PodPeer(PodSelector());
      case 1:
        return NsPeer(NsSelector());
      case 2:
        return NsPodPeer(NsSelector(), PodSelector());
      default:
        break;
    }
    if (Coin(25)) return BlockPeer("fd00::/120", {"fd00::/126"});
    const int len = 22 + Int(3);
    IpBlock b{IpPrefix{IpAddr::V4(0x0a000000u + (Int(4) << 8)).Masked(len), len}, {}};
    if (Coin()) b.except.push_back(IpPrefix{IpAddr::V4(0x0a000000u + (Int(4) << 8)), 24 + Int(5)});
    return NetworkPolicyPeer{{}, {}, b};
  }

  NetworkPolicyPort PolicyPort() {
    const Protocol proto = Coin(60) ? Protocol::kTcp : Coin() ? Protocol::kUdp : Protocol::kSctp;
    switch (Int(4)) {
      case 0:
        return AllPortsOf(proto);
      case 1:
        return NamedPort(Coin() ? "http" : "dns", proto);
      case 2:
        return Port(80, proto, Coin() ? std::optional<uint16_t>(8080) : std::nullopt);
      default:
        return Port(Coin() ? 53 : 81, proto);
    }
  }

  NetworkPolicy Policy(int i) {
    NetworkPolicy p;
    p.ns = kNamespaces[Int(4)];
    p.name = "p" + std::to_string(i);
    p.pod_selector = Coin(30) ? LabelSelector{} : PodSelector();
    p.affects_ingress = Coin(70);
    p.affects_egress = !p.affects_ingress || Coin(40);
    for (auto* rules : {&p.ingress, &p.egress}) {
      for (int r = Int(3); r > 0; --r) {
        NetworkPolicyRule rule;
        for (int k = Int(3); k > 0; --k) rule.peers.push_back(Peer());
        for (int k = Int(3); k > 0; --k) rule.ports.push_back(PolicyPort());
        rules->push_back(rule);
      }
    }
    return p;
  }

  ClusterState Cluster() {
    ClusterState s;
    for (int i = 0; i < 3; ++i) {  // "w" has no Namespace object
      Labels l;
      if (Coin(70)) l["env"] = Coin() ? "a" : "b";
      if (Coin(50)) l["team"] = Coin() ? "a" : "b";
      s.namespaces.push_back(MakeNamespace(kNamespaces[i], l));
    }
    for (int i = 0; i < 10; ++i) {
      Labels l;
      if (Coin(80)) l["app"] = std::string(1, "wdc"[Int(3)]);
      if (Coin(40)) l["tier"] = std::string(1, "wdc"[Int(3)]);
      std::vector<std::string> ips{"10.0." + std::to_string(Int(4)) + "." + std::to_string(i + 1)};
      if (Coin(30)) ips.push_back("fd00::" + std::to_string(i + 1));
      std::vector<ContainerPort> ports;
      if (Coin(60))
        ports.push_back({"http", static_cast<uint16_t>(Coin() ? 80 : 8080), Protocol::kTcp});
      if (Coin(40)) ports.push_back({"dns", 53, Coin() ? Protocol::kUdp : Protocol::kTcp});
      Pod pod = MakePod(kNamespaces[Int(4)], "pod" + std::to_string(i), l, ips,
                        Coin(75) ? "n1" : "n2", ports);
      pod.host_network = Coin(5);
      s.pods.push_back(pod);
    }
    for (int i = Int(5) + 1; i > 0; --i) s.network_policies.push_back(Policy(i));
    return s;
  }

 private:
  static constexpr const char* kNamespaces[4] = {"x", "y", "z", "w"};
  std::mt19937 rng_;
};

std::vector<IpAddr> Addresses(const ClusterState& s) {
  std::vector<IpAddr> out{Ip("192.0.2.1"), Ip("10.0.3.200"), Ip("2001:db8::1"),
                          Ip("fd00::2"),   Ip(kNodeIp),      Ip(kNodeIpV6)};
  for (const Pod& p : s.pods) out.insert(out.end(), p.ips.begin(), p.ips.end());
  return out;
}

TEST(PolicyReference, CompiledTablesAgreeWithTheApiRulesOnRandomClusters) {
  int checked = 0, denied = 0;
  for (uint32_t seed = 1; seed <= 400; ++seed) {
    Gen gen(seed);
    const ClusterState s = gen.Cluster();
    const Compiled c = CompileOrDie(s);
    const Reference ref(s);
    const std::vector<IpAddr> addrs = Addresses(s);
    for (const IpAddr& src : addrs) {
      for (const IpAddr& dst : addrs) {
        if (src.family() != dst.family()) continue;
        for (Protocol proto : {Protocol::kTcp, Protocol::kUdp, Protocol::kSctp}) {
          for (uint16_t port : {53, 80, 81, 1000, 8080}) {
            // Hairpin is what masq_mark flags a pod reaching itself through a Service.
            const uint32_t flags = (src == dst ? uint32_t{kFlagHairpin} : 0u) |
                                   (gen.Coin(10) ? uint32_t{kFlagFromHost} : 0u);
            const Packet p{src, dst, proto, port, flags};
            const Walk w = Trace(c.program, p);
            ASSERT_EQ(w.error, "");
            ASSERT_EQ(w.fate == Fate::kAllow, ref.Allowed(p))
                << "seed " << seed << ": " << src.ToString() << " -> " << dst.ToString() << " "
                << static_cast<int>(proto) << "/" << port << " flags " << p.flags;
            ++checked;
            denied += w.fate != Fate::kAllow;
          }
        }
      }
    }
  }
  std::printf("checked %d packets, %d denied\n", checked, denied);
  // The generator must exercise both outcomes, or the comparison proves little.
  EXPECT_GT(denied, checked / 10);
  EXPECT_LT(denied, checked * 9 / 10);
}

}  // namespace
}  // namespace nicflow::flowtables
