// Growth and stability of the policy tables: entries grow with peers + ports + rules, tags and
// bits stay put so Diff() of two compiles stays small.
#include <algorithm>
#include <cstdio>
#include <set>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "gtest/gtest.h"
#include "policy_sets.h"
#include "policy_test_util.h"

namespace nicflow::flowtables {
namespace {

using namespace testing_policy;  // NOLINT: test helpers

constexpr int kNamespaces = 8, kApps = 4, kPodsPerApp = 6;

std::string PodIp(int ns, int app, int i) {
  return "10." + std::to_string(ns) + "." + std::to_string(app) + "." + std::to_string(i + 1);
}

// A namespace-per-team cluster: in each namespace a default deny, and per app an allow policy
// from the app's clients (pods of another app, a namespace, a CIDR with an except) on a few ports.
// Half the pods run on this node.
ClusterState Generated() {
  ClusterState s;
  s.namespaces.push_back(MakeNamespace("monitoring", {{"role", "monitoring"}}));
  s.pods.push_back(MakePod("monitoring", "prom", {{"app", "prom"}}, {"10.200.0.1"}, "n2"));
  for (int n = 0; n < kNamespaces; ++n) {
    const std::string ns = "team" + std::to_string(n);
    s.namespaces.push_back(MakeNamespace(ns, {{"team", std::to_string(n % 3)}}));
    for (int a = 0; a < kApps; ++a) {
      for (int i = 0; i < kPodsPerApp; ++i) {
        s.pods.push_back(MakePod(ns, "app" + std::to_string(a) + "-" + std::to_string(i),
                                 {{"app", "app" + std::to_string(a)}}, {PodIp(n, a, i)},
                                 i % 2 == 0 ? "n1" : "n2", {{"http", 8080, Protocol::kTcp}}));
      }
    }
    s.network_policies.push_back(IngressPolicy(ns, "default-deny", Sel(), {}));
    for (int a = 0; a < kApps; ++a) {
      NetworkPolicyRule from_clients{
          {PodPeer(Sel({{"app", "app" + std::to_string((a + 1) % kApps)}})),
           NsPeer(Sel({{"role", "monitoring"}})), BlockPeer("172.16.0.0/12", {"172.16.5.0/24"})},
          {Port(8080), Port(9000, Protocol::kTcp, 9100), NamedPort("http"),
           Port(53, Protocol::kUdp)}};
      NetworkPolicyRule from_team{{NsPeer(Sel({{"team", std::to_string(n % 3)}}))}, {Port(443)}};
      s.network_policies.push_back(IngressPolicy(ns, "allow-app" + std::to_string(a),
                                                 Sel({{"app", "app" + std::to_string(a)}}),
                                                 {from_clients, from_team}));
    }
  }
  return s;
}

// peers + ports + rules of the policies that select a local pod, each rule counted once, a
// selector peer counted as the pod addresses it admits.
size_t InputSize(const ClusterState& s) {
  const PolicyIndex index(s);
  size_t total = 0;
  for (const NetworkPolicy& p : s.network_policies) {
    for (const NetworkPolicyRule& r : p.ingress) {
      total += 1 + r.ports.size();
      for (const NetworkPolicyPeer& peer : r.peers) {
        if (peer.ip_block) {
          total += 1 + peer.ip_block->except.size();
          continue;
        }
        NetworkPolicyRule one{{peer}, {}};
        total += PeerPodAddrs(index, p, one).size();
      }
    }
  }
  return total;
}

// Entries a direct translation needs: per rule, selected local pods x peer addresses x ports.
size_t DirectTranslationSize(const ClusterState& s) {
  const PolicyIndex index(s);
  size_t total = 0;
  for (const NetworkPolicy& p : s.network_policies) {
    size_t selected = 0;
    for (const Pod* pod : index.PodsIn(p.ns)) {
      selected += pod->node_name == kNode && p.pod_selector.Matches(pod->labels);
    }
    for (const NetworkPolicyRule& r : p.ingress) {
      total += selected * PeerPodAddrs(index, p, r).size() * std::max<size_t>(1, r.ports.size());
    }
  }
  return total;
}

TEST(PolicyScale, PeerAndRuleEntriesStayWithinOneAndAHalfTimesPeersPortsAndRules) {
  const ClusterState s = Generated();
  const Compiled c = CompileOrDie(s);
  const size_t entries =
      c.program.entries[kTableIngressPeer].size() + c.program.entries[kTableIngressRule].size();
  const size_t input = InputSize(s);
  std::printf("peer+rule entries %zu, peers+ports+rules %zu, ratio %.2f; pod entries %zu\n",
              entries, input, static_cast<double>(entries) / input,
              c.program.entries[kTableIngressPod].size());
  EXPECT_LE(entries * 2, input * 3);
  // The pod table holds one entry per isolated local pod address, plus the host and hairpin
  // bypasses.
  EXPECT_EQ(c.program.entries[kTableIngressPod].size(),
            static_cast<size_t>(kNamespaces * kApps * kPodsPerApp / 2 + 2));
  // Even with few ports per rule, a direct translation (selected pod x peer x port) is larger.
  const size_t direct = DirectTranslationSize(s);
  std::printf("direct translation would need %zu entries (%.1fx)\n", direct,
              static_cast<double>(direct) / entries);
  EXPECT_LT(entries * 3, direct);
}

TEST(PolicyScale, ARuleWithPPeersAndQPortsCostsPPlusQEntries) {
  ClusterState s;
  s.namespaces.push_back(MakeNamespace("x"));
  s.pods.push_back(MakePod("x", "server", {{"app", "server"}}, {"10.0.0.1"}));
  for (int i = 0; i < 100; ++i) {
    s.pods.push_back(MakePod("x", "client" + std::to_string(i), {{"app", "client"}},
                             {"10.0.1." + std::to_string(i + 1)}, "n2"));
  }
  std::vector<NetworkPolicyPort> ports;
  for (uint16_t q = 0; q < 20; ++q) ports.push_back(Port(static_cast<uint16_t>(8000 + 10 * q)));
  s.network_policies.push_back(IngressPolicy("x", "p", Sel({{"app", "server"}}),
                                             {{{PodPeer(Sel({{"app", "client"}}))}, ports}}));
  const Compiled c = CompileOrDie(s);
  EXPECT_EQ(c.program.entries[kTableIngressPeer].size(), 100u);
  EXPECT_EQ(c.program.entries[kTableIngressRule].size(), 20u + 1u);  // + the isolation drop
  EXPECT_TRUE(Allowed(c.program, "10.0.1.77", "10.0.0.1", 8190));
  EXPECT_FALSE(Allowed(c.program, "10.0.1.77", "10.0.0.1", 8191));
}

size_t DeltaSize(const Program& a, const Program& b) {
  auto d = Diff(a, b);
  EXPECT_TRUE(d.ok()) << d.status();
  return d.ok() ? d->ops.size() : 0;
}

TEST(PolicyScale, UnrelatedChangesLeaveThePolicyTablesAlone) {
  ClusterState s = Generated();
  const Compiled before = CompileOrDie(s);
  // A pod in a namespace without policies that no peer admits, and a policy selecting nobody.
  s.namespaces.push_back(MakeNamespace("other"));
  s.pods.push_back(MakePod("other", "o", {{"app", "o"}}, {"10.99.0.1"}));
  s.network_policies.push_back(IngressPolicy("other", "nobody", Sel({{"app", "none"}}), {}));
  EXPECT_EQ(DeltaSize(before.program, CompileOrDie(s).program), 0u);
}

TEST(PolicyScale, ANewPeerPodChangesOnlyThePeerEntriesThatAdmitIt) {
  ClusterState s = Generated();
  const Compiled before = CompileOrDie(s);
  // One more monitoring pod: admitted by the from_clients rule of every app's set on this node.
  s.pods.push_back(MakePod("monitoring", "prom2", {{"app", "prom"}}, {"10.200.0.2"}, "n2"));
  const Compiled after = CompileOrDie(s);
  const size_t sets = kNamespaces * kApps;
  EXPECT_EQ(DeltaSize(before.program, after.program), sets);
  auto d = Diff(before.program, after.program);
  for (const DeltaOp& op : d->ops) {
    EXPECT_EQ(op.kind, DeltaOp::Kind::kAddEntry);
    EXPECT_EQ(op.entry.table, kTableIngressPeer);
  }
}

TEST(PolicyScale, ANewLocalPodJoiningAnExistingSetAddsOnlyItsPodEntry) {
  ClusterState s = Generated();
  const Compiled before = CompileOrDie(s);
  s.pods.push_back(MakePod("team0", "app0-new", {{"app", "app0"}}, {"10.0.0.100"}, "n1",
                           {{"http", 8080, Protocol::kTcp}}));
  const Compiled after = CompileOrDie(s);
  // Its pod entry, plus one peer entry in each set whose rules admit it: the `team` selector
  // admits team0 into team0, team3 and team6, four app sets each (app3's pod selector admits
  // app0 too, into a set that already gets the entry).
  EXPECT_EQ(DeltaSize(before.program, after.program), 1u + 3 * kApps);
}

TEST(PolicyScale, TagsDependOnlyOnTheSetAndCollisionsResolveDeterministically) {
  // Find two keys whose hashes collide (a birthday search over 32 bits: ~10^5 keys).
  absl::flat_hash_map<uint32_t, std::string> seen;
  std::string k1, k2;
  for (int i = 0; k1.empty(); ++i) {
    std::vector<PolicySet> one(1);
    one[0].key = "ingress ns/p" + std::to_string(i);
    AssignTags(one);
    auto [it, inserted] = seen.emplace(one[0].tag, one[0].key);
    if (!inserted) std::tie(k1, k2) = std::make_pair(it->second, one[0].key);
  }
  std::vector<PolicySet> fwd(2), rev(2);
  fwd[0].key = rev[1].key = k1;
  fwd[1].key = rev[0].key = k2;
  AssignTags(fwd);
  AssignTags(rev);
  ASSERT_EQ(fwd[0].key, rev[0].key);  // both sorted by key
  EXPECT_EQ(fwd[0].tag, rev[0].tag);
  EXPECT_EQ(fwd[1].tag, rev[1].tag);
  EXPECT_NE(fwd[0].tag, fwd[1].tag);
  EXPECT_NE(fwd[0].tag, 0u);
  EXPECT_NE(fwd[1].tag, 0u);
  std::vector<PolicySet> alone(1);
  alone[0].key = fwd[0].key;
  AssignTags(alone);
  EXPECT_EQ(alone[0].tag, fwd[0].tag);  // the first in key order keeps its own hash
}

}  // namespace
}  // namespace nicflow::flowtables
