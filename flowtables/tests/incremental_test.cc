// The incremental compiler against its oracle: after every change, program() equals a full
// compile of the same state, and the delta equals Diff(old program, new program) op for op.
#include "nicflow/flowtables/incremental.h"

#include <gtest/gtest.h>

#include <random>

#include "absl/strings/str_cat.h"
#include "nicflow/flowtables/compiler.h"

namespace nicflow::flowtables {
namespace {

IpAddr V4(uint32_t a) { return IpAddr::V4(a); }
IpPrefix P4(uint32_t a, int len) { return IpPrefix{IpAddr::V4(a), len}; }

std::string FullEntryText(const Entry& e) {
  return absl::StrCat(e.table, " ", e.priority, " [", MatchesToString(e.match), "] ",
                      ActionsToString(e.actions), " (", e.origin.ToString(), ")");
}

std::string GroupText(const SelectGroup& g) {
  std::string s = g.name + " " + g.origin.ToString();
  for (const Bucket& b : g.buckets) absl::StrAppend(&s, " ", b.label, "/", b.weight);
  absl::StrAppend(&s, " hash", g.hash_fields.size(), " aff", g.affinity_timeout_s.value_or(0));
  return s;
}

std::vector<std::string> ProgramText(const Program& p, bool with_ports) {
  std::vector<std::string> out;
  for (const auto& t : p.entries) {
    for (const Entry& e : t) out.push_back(FullEntryText(e));
  }
  for (const SelectGroup& g : p.groups) out.push_back(GroupText(g));
  if (with_ports) {
    for (const PortDecl& d : p.ports) {
      std::string s = "port " + d.ref.ToString();
      for (const IpAddr& a : d.ips) absl::StrAppend(&s, " ", a.ToString());
      out.push_back(s);
    }
  }
  return out;
}

std::vector<std::string> DeltaText(const Delta& d) {
  std::vector<std::string> out;
  for (const DeltaOp& op : d.ops) {
    const bool group = op.kind == DeltaOp::Kind::kAddGroup ||
                       op.kind == DeltaOp::Kind::kModifyGroup ||
                       op.kind == DeltaOp::Kind::kDeleteGroup;
    out.push_back(absl::StrCat(std::string(DeltaOpKindName(op.kind)), " ",
                               group ? GroupText(op.group) : FullEntryText(op.entry)));
  }
  return out;
}

Labels PodLabels(std::mt19937& rng) {
  static const char* kApps[] = {"web", "db", "cache"};
  static const char* kTiers[] = {"front", "back"};
  return {{"app", kApps[rng() % 3]}, {"tier", kTiers[rng() % 2]}};
}

// A small cluster for node "n1": 3 namespaces, pods on n1 and n2, Services with EndpointSlices,
// policies with pod, namespace and ipBlock peers, numeric and named ports.
struct SmallCluster {
  std::mt19937 rng;
  ClusterState state;
  int next_id = 0;

  explicit SmallCluster(uint32_t seed) : rng(seed) {
    state.nodes.push_back(Node{"n1", {V4(0xc0a80001)}, {}, {P4(0x0a000000, 24)}, {}});
    state.nodes.push_back(Node{"n2", {V4(0xc0a80002)}, {}, {P4(0x0a000100, 24)}, {}});
    state.service_cidrs.push_back(ServiceCidr{"default", {P4(0x0a600000, 16)}, {}});
    ProxyConfig pc;
    pc.hostname_override = "n1";
    pc.cluster_cidrs = {P4(0x0a000000, 16)};
    state.proxy_config = pc;
    for (const char* ns : {"a", "b", "c"}) state.namespaces.push_back(NewNamespace(ns));
    for (int i = 0; i < 24; ++i) state.pods.push_back(NewPod());
    for (int i = 0; i < 8; ++i) {
      state.services.push_back(NewService(i));
      state.endpoint_slices.push_back(NewSlice(state.services.back(), "s0"));
    }
    for (int i = 0; i < 6; ++i) state.network_policies.push_back(NewPolicy());
  }

  Namespace NewNamespace(std::string name) {
    Namespace n{name, {{"team", rng() % 2 ? "x" : "y"}}, {}};
    n.labels["kubernetes.io/metadata.name"] = name;
    return n;
  }

  Pod NewPod() {
    const int id = next_id++;
    Pod p;
    p.ns = std::string(1, static_cast<char>('a' + id % 3));
    p.name = absl::StrCat("pod", id);
    p.labels = PodLabels(rng);
    p.node_name = rng() % 2 ? "n1" : "n2";
    const uint32_t base = p.node_name == "n1" ? 0x0a000000 : 0x0a000100;
    p.ips = {V4(base + 2 + static_cast<uint32_t>(id))};
    p.ports = {ContainerPort{"http", static_cast<uint16_t>(8000 + rng() % 2), Protocol::kTcp}};
    return p;
  }

  Service NewService(int i) {
    Service s;
    s.ns = std::string(1, static_cast<char>('a' + i % 3));
    s.name = absl::StrCat("svc", i);
    s.cluster_ips = {V4(0x0a600000 + 10 + static_cast<uint32_t>(i))};
    s.ports = {ServicePort{"http", Protocol::kTcp, 80, std::string("http"), 0}};
    if (i % 3 == 1) {
      s.type = ServiceType::kNodePort;
      s.ports[0].node_port = static_cast<uint16_t>(30000 + i);
      s.external_traffic_local = i % 2 == 0;
    }
    return s;
  }

  Endpoint RandomEndpoint() {
    const Pod& p = state.pods[rng() % state.pods.size()];
    Endpoint e;
    e.addresses = p.ips.empty() ? std::vector<IpAddr>{V4(0x0a000050)} : p.ips;
    e.node_name = p.node_name;
    e.ready = rng() % 4 != 0;
    e.serving = e.ready || rng() % 2;
    e.terminating = !e.ready;
    e.target_pod = absl::StrCat(p.ns, "/", p.name);
    return e;
  }

  EndpointSlice NewSlice(const Service& svc, const std::string& suffix) {
    EndpointSlice s;
    s.ns = svc.ns;
    s.name = absl::StrCat(svc.name, "-", suffix);
    s.service_name = svc.name;
    s.family = IpFamily::kV4;
    s.ports = {EndpointPort{"http", Protocol::kTcp, 8080}};
    const int n = static_cast<int>(rng() % 4);
    for (int i = 0; i < n; ++i) s.endpoints.push_back(RandomEndpoint());
    return s;
  }

  LabelSelector AppSelector() {
    static const char* kApps[] = {"web", "db", "cache"};
    LabelSelector sel;
    sel.match_labels = {{"app", kApps[rng() % 3]}};
    return sel;
  }

  NetworkPolicyRule RandomRule() {
    NetworkPolicyRule r;
    switch (rng() % 4) {
      case 0:
        r.peers.push_back(NetworkPolicyPeer{AppSelector(), std::nullopt, std::nullopt});
        break;
      case 1: {
        LabelSelector ns;
        ns.match_labels = {{"team", rng() % 2 ? "x" : "y"}};
        r.peers.push_back(NetworkPolicyPeer{AppSelector(), ns, std::nullopt});
        break;
      }
      case 2:
        r.peers.push_back(NetworkPolicyPeer{std::nullopt, std::nullopt,
                                            IpBlock{P4(0x0a000000, 24), {P4(0x0a000010, 28)}}});
        break;
      default:
        break;  // every peer
    }
    NetworkPolicyPort port;
    if (rng() % 2) {
      port.port.emplace<std::string>("http");
    } else {
      port.port.emplace<uint16_t>(8080);
    }
    r.ports.push_back(std::move(port));
    return r;
  }

  NetworkPolicy NewPolicy() {
    NetworkPolicy p;
    const int id = next_id++;
    p.ns = std::string(1, static_cast<char>('a' + id % 3));
    p.name = absl::StrCat("pol", id);
    p.pod_selector = AppSelector();
    p.affects_ingress = true;
    p.affects_egress = rng() % 2;
    p.ingress.push_back(RandomRule());
    if (p.affects_egress) p.egress.push_back(RandomRule());
    return p;
  }

  template <typename T>
  T& Pick(std::vector<T>& v) {
    return v[rng() % v.size()];
  }

  // A random change of a random kind that fits the current state.
  ObjectChange RandomChange() {
    using K = ObjectChange::Kind;
    switch (rng() % 12) {
      case 0:
      case 1: {  // endpoint moves, appears, disappears or flips readiness
        EndpointSlice s = Pick(state.endpoint_slices);
        const int op = static_cast<int>(rng() % 3);
        if (op == 0 || s.endpoints.empty()) {
          s.endpoints.push_back(RandomEndpoint());
        } else if (op == 1) {
          s.endpoints.erase(s.endpoints.begin() + static_cast<long>(rng() % s.endpoints.size()));
        } else {
          Endpoint& e = s.endpoints[rng() % s.endpoints.size()];
          e.ready = !e.ready;
          e.terminating = !e.ready;
        }
        return {K::kUpdated, s};
      }
      case 2: {  // a second slice for a Service, or one deleted
        if (state.endpoint_slices.size() > 4 && rng() % 2) {
          return {K::kDeleted, Pick(state.endpoint_slices)};
        }
        return {K::kAdded, NewSlice(Pick(state.services), absl::StrCat("x", next_id++))};
      }
      case 3: {  // service port / type change, add or delete
        if (rng() % 3 == 0) {
          if (state.services.size() > 3 && rng() % 2) return {K::kDeleted, Pick(state.services)};
          return {K::kAdded, NewService(100 + next_id++)};
        }
        Service s = Pick(state.services);
        s.ports[0].port = static_cast<uint16_t>(80 + rng() % 3);
        s.internal_traffic_local = rng() % 2;
        return {K::kUpdated, s};
      }
      case 4:
      case 5: {  // pod relabel, ports, node or termination
        Pod p = Pick(state.pods);
        switch (rng() % 4) {
          case 0:
            p.labels = PodLabels(rng);
            break;
          case 1:
            p.ports[0].port = static_cast<uint16_t>(8000 + rng() % 3);
            break;
          case 2:
            p.terminal = !p.terminal;
            break;
          default:
            p.labels["app"] = "web";
            break;
        }
        return {K::kUpdated, p};
      }
      case 6: {
        if (state.pods.size() > 10 && rng() % 2) return {K::kDeleted, Pick(state.pods)};
        return {K::kAdded, NewPod()};
      }
      case 7:
      case 8: {  // policy add, delete or rewrite
        if (state.network_policies.size() > 2 && rng() % 3 == 0) {
          return {K::kDeleted, Pick(state.network_policies)};
        }
        if (rng() % 2) return {K::kAdded, NewPolicy()};
        NetworkPolicy p = Pick(state.network_policies);
        p.pod_selector = AppSelector();
        p.ingress = {RandomRule()};
        return {K::kUpdated, p};
      }
      case 9:
      case 10: {  // namespace relabel, or a new one
        if (rng() % 4 == 0) return {K::kAdded, NewNamespace(absl::StrCat("ns", next_id++))};
        Namespace n = Pick(state.namespaces);
        n.labels["team"] = n.labels["team"] == "x" ? "y" : "x";
        return {K::kUpdated, n};
      }
      default: {  // node facts: the full-recompile path
        Node n = state.nodes[0];
        n.internal_ips = {V4(0xc0a80001 + static_cast<uint32_t>(rng() % 2) * 10)};
        return {K::kUpdated, n};
      }
    }
  }
};

CompileOptions Options() {
  CompileOptions o;
  o.node_name = "n1";
  return o;
}

// One change checked against the oracle.
void CheckChange(IncrementalCompiler& inc, ClusterState& oracle_state, const ObjectChange& c) {
  SCOPED_TRACE(ObjectChangeName(c));
  const Program before = inc.program();
  ASSERT_TRUE(ApplyChange(oracle_state, c).ok());
  auto full = Compile(oracle_state, Options());
  auto delta = inc.Apply(c);
  if (!full.ok()) {
    // Rejected as the full compile rejects it, and nothing changed.
    ASSERT_FALSE(delta.ok()) << "full compile failed: " << full.status();
    EXPECT_EQ(ProgramText(inc.program(), true), ProgramText(before, true));
    return;
  }
  ASSERT_TRUE(delta.ok()) << delta.status();
  EXPECT_EQ(ProgramText(inc.program(), true), ProgramText(full->program, true));
  auto oracle = Diff(before, full->program);
  ASSERT_TRUE(oracle.ok());
  EXPECT_EQ(DeltaText(*delta), DeltaText(*oracle));
  Program applied = before;
  ASSERT_TRUE(ApplyDelta(applied, *delta).ok());
  EXPECT_EQ(ProgramText(applied, false), ProgramText(full->program, false));
}

TEST(IncrementalCompiler, RandomChangeSequencesMatchFullCompileAndDiff) {
  for (uint32_t seed = 1; seed <= 8; ++seed) {
    SCOPED_TRACE(absl::StrCat("seed ", seed));
    SmallCluster c(seed);
    auto inc = IncrementalCompiler::Create(c.state, Options());
    ASSERT_TRUE(inc.ok()) << inc.status();
    for (int step = 0; step < 60; ++step) {
      SCOPED_TRACE(absl::StrCat("step ", step));
      const ObjectChange change = c.RandomChange();
      ClusterState oracle = (*inc)->state();
      CheckChange(**inc, oracle, change);
      if (HasFatalFailure() || HasFailure()) return;
      c.state = (*inc)->state();
    }
    const IncrementalStats& st = (*inc)->stats();
    EXPECT_GT(st.incremental, 3 * st.full_recompiles) << st.last_fallback_reason;
    EXPECT_GT(st.changes, 40u);
  }
}

// Targeted changes, each checked against the oracle and answered without a full compile.
class IncrementalTargeted : public ::testing::Test {
 protected:
  void SetUp() override {
    auto inc = IncrementalCompiler::Create(cluster_.state, Options());
    ASSERT_TRUE(inc.ok()) << inc.status();
    inc_ = std::move(*inc);
  }
  void Check(const ObjectChange& c) {
    ClusterState oracle = inc_->state();
    const auto full_before = inc_->stats().full_recompiles;
    CheckChange(*inc_, oracle, c);
    EXPECT_EQ(inc_->stats().full_recompiles, full_before) << inc_->stats().last_fallback_reason;
  }
  template <typename T>
  T Copy(const std::vector<T>& v, size_t i) {
    return v.at(i);
  }
  SmallCluster cluster_{7};
  std::unique_ptr<IncrementalCompiler> inc_;
};

TEST_F(IncrementalTargeted, EndpointAddRemoveAndReadyFlipTouchAHandfulOfEntries) {
  EndpointSlice s = Copy(inc_->state().endpoint_slices, 0);
  s.endpoints.push_back(cluster_.RandomEndpoint());
  Check({ObjectChange::Kind::kUpdated, s});
  s.endpoints.back().ready = !s.endpoints.back().ready;
  s.endpoints.back().terminating = !s.endpoints.back().ready;
  Check({ObjectChange::Kind::kUpdated, s});
  s.endpoints.erase(s.endpoints.begin());
  ClusterState oracle = inc_->state();
  ASSERT_TRUE(ApplyChange(oracle, {ObjectChange::Kind::kUpdated, s}).ok());
  auto d = inc_->Apply({ObjectChange::Kind::kUpdated, s});
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_LE(d->ops.size(), 8u);
}

TEST_F(IncrementalTargeted, ServicePortChange) {
  Service svc = Copy(inc_->state().services, 1);
  svc.ports[0].port = 8443;
  Check({ObjectChange::Kind::kUpdated, svc});
}

TEST_F(IncrementalTargeted, PodRelabelChangesPolicyMembership) {
  for (size_t i = 0; i < inc_->state().pods.size(); ++i) {
    Pod p = Copy(inc_->state().pods, i);
    if (p.node_name != "n1") continue;
    p.labels["app"] = p.labels["app"] == "web" ? "db" : "web";
    Check({ObjectChange::Kind::kUpdated, p});
  }
}

TEST_F(IncrementalTargeted, NamespaceLabelChange) {
  Namespace n = Copy(inc_->state().namespaces, 0);
  n.labels["team"] = n.labels["team"] == "x" ? "y" : "x";
  Check({ObjectChange::Kind::kUpdated, n});
}

TEST_F(IncrementalTargeted, PolicyAddAndDelete) {
  NetworkPolicy p = cluster_.NewPolicy();
  Check({ObjectChange::Kind::kAdded, p});
  Check({ObjectChange::Kind::kDeleted, p});
}

TEST_F(IncrementalTargeted, BadChangesAreRejectedAndChangeNothing) {
  const Program before = inc_->program();
  NetworkPolicy bad = cluster_.NewPolicy();
  bad.ingress[0].peers = {NetworkPolicyPeer{}};  // neither selector nor ipBlock
  auto d = inc_->Apply({ObjectChange::Kind::kAdded, bad});
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find(bad.name), std::string::npos) << d.status();
  Service dup = Copy(inc_->state().services, 0);
  d = inc_->Apply({ObjectChange::Kind::kAdded, dup});
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument) << d.status();
  Pod ghost = cluster_.NewPod();
  d = inc_->Apply({ObjectChange::Kind::kDeleted, ghost});
  EXPECT_EQ(d.status().code(), absl::StatusCode::kNotFound) << d.status();
  EXPECT_EQ(ProgramText(inc_->program(), true), ProgramText(before, true));
  EXPECT_EQ(inc_->state().network_policies.size(), cluster_.state.network_policies.size());
}

}  // namespace
}  // namespace nicflow::flowtables
