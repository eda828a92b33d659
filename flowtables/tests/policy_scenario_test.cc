// The example NetworkPolicy files, checked at the program level (the policy tables alone; the
// conformance runner checks real packets through the whole pipeline).
#include <map>

#include "gtest/gtest.h"
#include "nicflow/flowtables/loader.h"
#include "nicflow/flowtables/scenario.h"
#include "policy_test_util.h"

namespace nicflow::flowtables {
namespace {

using namespace testing_policy;  // NOLINT: test helpers

absl::StatusOr<Program> CompileForNode(const ClusterState& state, std::string_view node_name,
                                       std::vector<std::string>& notes) {
  ProgramBuilder builder;
  NodeFacts node;
  node.name = std::string(node_name);
  if (absl::Status st = CompilePolicies(state, node, builder, notes); !st.ok()) return st;
  return std::move(builder).Finish();
}

TEST(PolicyScenarios, NetpolExampleProbesHoldInTheCompiledTables) {
  auto scenarios = LoadNetpolScenarios(NICFLOW_SOURCE_DIR "/examples/netpol/scenarios.yaml");
  ASSERT_TRUE(scenarios.ok()) << scenarios.status();
  ASSERT_FALSE(scenarios->empty());
  int probes = 0;
  for (const NetpolScenario& sc : *scenarios) {
    std::vector<std::string> notes;
    auto program = CompileForNode(NetpolScenarioToClusterState(sc), kNetpolNodeName, notes);
    ASSERT_TRUE(program.ok()) << sc.name << ": " << program.status();
    std::map<std::string, IpAddr> ip_of;
    for (const NetpolPod& pod : sc.pods) ip_of[pod.ns + "/" + pod.name] = pod.ip;
    for (const NetpolProbe& probe : sc.probes) {
      for (bool want : {true, false}) {
        for (const auto& [from, to] : want ? probe.allowed : probe.denied) {
          const Packet p{ip_of.at(from), ip_of.at(to), probe.proto, probe.port, 0};
          EXPECT_EQ(FateOf(*program, p) == Fate::kAllow, want)
              << sc.name << ": " << from << " -> " << to << ":" << probe.port;
          ++probes;
        }
      }
    }
  }
  EXPECT_GT(probes, 10);
}

// The shop's policies on node-a, with packets given after Service DNAT (policy sees endpoints).
TEST(PolicyScenarios, ShopPoliciesOnNodeA) {
  ClusterState state;
  ASSERT_TRUE(LoadPaths({NICFLOW_SOURCE_DIR "/examples/shop/cluster.yaml",
                         NICFLOW_SOURCE_DIR "/examples/shop/policies.yaml"},
                        {}, state)
                  .ok());
  std::vector<std::string> notes;
  auto program = CompileForNode(state, "node-a", notes);
  ASSERT_TRUE(program.ok()) << program.status();
  const char *web1 = "10.244.1.10", *cart = "10.244.1.20", *db = "10.244.2.30",
             *prom = "10.244.1.40";
  EXPECT_TRUE(Allowed(*program, web1, cart, 9000));   // cart-from-web, named port api
  EXPECT_FALSE(Allowed(*program, prom, cart, 9000));  // prometheus may not call the API
  EXPECT_TRUE(Allowed(*program, prom, cart, 9101));   // metrics-from-ops, endPort range
  EXPECT_FALSE(Allowed(*program, prom, cart, 9103));
  EXPECT_TRUE(Allowed(*program, "203.0.113.7", web1, 8080));  // web-from-anywhere, named http
  EXPECT_FALSE(Allowed(*program, "203.0.113.7", web1, 80));
  EXPECT_TRUE(Allowed(*program, cart, db, 5432));  // cart-egress to db (remote)
  EXPECT_FALSE(Allowed(*program, cart, "93.184.216.34", 80));
  EXPECT_TRUE(Allowed(*program, cart, "93.184.216.34", 443));
  EXPECT_FALSE(Allowed(*program, cart, "10.1.2.3", 443));  // inside an except
  EXPECT_TRUE(Allowed(*program, cart, "10.96.0.10", 53, Protocol::kUdp));
  EXPECT_TRUE(Allowed(*program, web1, prom, 9090));  // monitoring is not isolated
}

}  // namespace
}  // namespace nicflow::flowtables
