// The compiler as a whole: node facts resolution, the stages together, diff stability, and the
// conformance scenarios walked through the compiled program with a small reference walker (the
// simulator in sim/ is the real reference; this keeps the compiler honest on its own).
#include "nicflow/flowtables/compiler.h"

#include <filesystem>
#include <iostream>
#include <random>
#include <set>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nicflow/flowtables/loader.h"
#include "nicflow/flowtables/scenario.h"
#include "service_test_util.h"

namespace nicflow::flowtables {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using namespace ::nicflow::flowtables::testing;  // NOLINT: test helpers

Node MakeNode(std::string name, std::string ip, std::string pod_cidr) {
  Node n;
  n.name = std::move(name);
  n.internal_ips = {Ip(ip)};
  n.pod_cidrs = {Cidr(pod_cidr)};
  return n;
}

ClusterState TwoNodes() {
  ClusterState st;
  st.nodes = {MakeNode("node-a", "192.168.10.11", "10.244.1.0/24"),
              MakeNode("node-b", "192.168.10.12", "10.244.2.0/24")};
  ServiceCidr sc;
  sc.name = "kubernetes";
  sc.cidrs = {Cidr("10.96.0.0/16")};
  st.service_cidrs.push_back(sc);
  return st;
}

TEST(ResolveNodeFacts, TakesTheNamedNodesAddressesAndPodCidrs) {
  ClusterState st = TwoNodes();
  st.nodes[0].external_ips = {Ip("203.0.113.11")};
  CompileOptions o;
  o.node_name = "node-a";
  auto f = ResolveNodeFacts(st, o);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->name, "node-a");
  EXPECT_THAT(f->ips, ElementsAre(Ip("192.168.10.11"), Ip("203.0.113.11")));
  EXPECT_THAT(f->pod_cidrs, ElementsAre(Cidr("10.244.1.0/24")));
  EXPECT_THAT(f->service_cidrs, ElementsAre(Cidr("10.96.0.0/16")));
  // No clusterCIDR configured: the union of every node's podCIDRs.
  EXPECT_THAT(f->cluster_cidrs, ElementsAre(Cidr("10.244.1.0/24"), Cidr("10.244.2.0/24")));
}

TEST(ResolveNodeFacts, FollowsKubeProxyConfiguration) {
  ClusterState st = TwoNodes();
  ProxyConfig pc;
  pc.hostname_override = "node-b";
  pc.cluster_cidrs = {Cidr("10.244.0.0/16")};
  pc.masquerade_all = true;
  pc.detect_local = DetectLocalMode::kNodeCidr;
  pc.node_port_addresses = {Cidr("192.168.10.0/24")};
  st.proxy_config = pc;
  auto f = ResolveNodeFacts(st, {});
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->name, "node-b");
  EXPECT_THAT(f->cluster_cidrs, ElementsAre(Cidr("10.244.0.0/16")));
  EXPECT_TRUE(f->masquerade_all);
  EXPECT_EQ(f->detect_local, DetectLocalMode::kNodeCidr);
  EXPECT_THAT(f->node_port_addresses, ElementsAre(Cidr("192.168.10.0/24")));
  // The caller's node name wins over hostnameOverride.
  CompileOptions o;
  o.node_name = "node-a";
  EXPECT_EQ(ResolveNodeFacts(st, o)->name, "node-a");
}

TEST(ResolveNodeFacts, NodePortAddressesPrimaryMeansThePrimaryAddressPerFamily) {
  ClusterState st = TwoNodes();
  st.nodes[0].internal_ips.push_back(Ip("192.168.20.11"));
  ProxyConfig pc;
  pc.hostname_override = "node-a";
  pc.node_port_primary = true;
  st.proxy_config = pc;
  auto f = ResolveNodeFacts(st, {});
  ASSERT_TRUE(f.ok());
  EXPECT_THAT(f->node_port_addresses, ElementsAre(Cidr("192.168.10.11/32")));
}

TEST(ResolveNodeFacts, TheOnlyNodeIsChosenAndSeveralAreAmbiguous) {
  ClusterState st = TwoNodes();
  auto f = ResolveNodeFacts(st, {});
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(f.status().message(), HasSubstr("node-a, node-b"));
  st.nodes.pop_back();
  EXPECT_EQ(ResolveNodeFacts(st, {})->name, "node-a");
}

TEST(ResolveNodeFacts, UnknownNodeIsAnError) {
  CompileOptions o;
  o.node_name = "node-z";
  auto f = ResolveNodeFacts(TwoNodes(), o);
  ASSERT_FALSE(f.ok());
  EXPECT_THAT(f.status().message(), HasSubstr("node \"node-z\": no Node object"));
}

TEST(ResolveNodeFacts, InlineFactsWinAndGapsAreFilledFromObjects) {
  ClusterState st = TwoNodes();
  NodeFacts inline_facts;
  inline_facts.name = "node-a";
  inline_facts.ips = {Ip("192.0.2.1")};
  inline_facts.masq.non_masquerade_cidrs = {Cidr("10.0.0.0/8")};
  st.node_facts = inline_facts;
  MasqConfig other;
  other.masq_link_local = true;
  st.masq_config = other;
  auto f = ResolveNodeFacts(st, {});
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_THAT(f->ips, ElementsAre(Ip("192.0.2.1")));
  EXPECT_THAT(f->pod_cidrs, ElementsAre(Cidr("10.244.1.0/24")));
  EXPECT_THAT(f->service_cidrs, ElementsAre(Cidr("10.96.0.0/16")));
  EXPECT_THAT(f->masq.non_masquerade_cidrs, ElementsAre(Cidr("10.0.0.0/8")));
  EXPECT_FALSE(f->masq.masq_link_local);
  CompileOptions o;
  o.node_name = "node-b";
  EXPECT_FALSE(ResolveNodeFacts(st, o).ok());  // facts for another node
}

// A cluster of Services, pods and endpoints on node-a and node-b.
ClusterState ShopLike() {
  ClusterState st = TwoNodes();
  ProxyConfig pc;
  pc.hostname_override = "node-a";
  pc.cluster_cidrs = {Cidr("10.244.0.0/16")};
  st.proxy_config = pc;
  st.pods = {MakePod("shop", "web-1", "node-a", {"10.244.1.10"}),
             MakePod("shop", "web-2", "node-b", {"10.244.2.10"}),
             MakePod("shop", "cart-1", "node-a", {"10.244.1.20"})};
  Service web = MakeService("shop", "web", {"10.96.0.80"},
                            {Port("http", 80, std::string("http"), Protocol::kTcp, 30080)});
  web.type = ServiceType::kNodePort;
  st.services = {web, MakeService("shop", "cart", {"10.96.0.90"}, {Port("http", 80)})};
  st.endpoint_slices = {
      MakeSlice("shop", "web-x1", "web", {Ep("10.244.1.10", "node-a"), Ep("10.244.2.10", "node-b")},
                {EpPort("http", 8080)}),
      MakeSlice("shop", "cart-x1", "cart", {Ep("10.244.1.20", "node-a")}, {EpPort("http", 9000)})};
  return st;
}

Program MustCompile(const ClusterState& st, CompileOptions o = {}) {
  auto r = Compile(st, o);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? std::move(r->program) : Program{};
}

TEST(Compile, EmitsEveryStageAndDeclaresPorts) {
  auto r = Compile(ShopLike(), {});
  ASSERT_TRUE(r.ok()) << r.status();
  const Program& p = r->program;
  EXPECT_TRUE(Validate(p).ok());
  EXPECT_EQ(r->node.name, "node-a");
  for (TableId t :
       {kTableClassify, kTableCtState, kTableService, kTableMasqMark, kTableSnat, kTableForward}) {
    EXPECT_FALSE(p.entries[t].empty()) << p.tables[t].name;
  }
  std::vector<std::string> ports;
  for (const PortDecl& d : p.ports) ports.push_back(d.ref.ToString());
  EXPECT_THAT(ports, ElementsAre("host", "uplink", "vf:shop/cart-1", "vf:shop/web-1"));
  EXPECT_NE(p.FindGroup("svc/shop/web/http/v4/cluster"), nullptr);
}

TEST(Compile, ABadServiceFailsTheWholeCompileUnlessSkipped) {
  ClusterState st = ShopLike();
  st.services.push_back(MakeService("shop", "zz-clash", {"10.96.0.80"}, {Port("x", 81)}));
  auto r = Compile(st, {});
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("Service shop/zz-clash: spec.clusterIPs[0]"));
  CompileOptions skip;
  skip.skip_bad_objects = true;
  r = Compile(st, skip);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(r->notes, ::testing::Contains(HasSubstr("skipped: Service shop/zz-clash")));
}

size_t DiffSize(const Program& a, const Program& b) {
  auto d = Diff(a, b);
  EXPECT_TRUE(d.ok()) << d.status();
  return d.ok() ? d->ops.size() : 999;
}

TEST(Compile, OneEndpointMoreOrLessChangesAHandfulOfEntries) {
  ClusterState st = ShopLike();
  const Program base = MustCompile(st);
  ClusterState remote = st;
  remote.endpoint_slices[0].endpoints.push_back(Ep("10.244.2.11", "node-b"));
  EXPECT_EQ(DiffSize(base, MustCompile(remote)), 1u);  // the group
  ClusterState local = st;
  local.endpoint_slices[0].endpoints.push_back(Ep("10.244.1.11", "node-a"));
  EXPECT_LE(DiffSize(base, MustCompile(local)), 2u);  // the group and its hairpin entry
  ClusterState fewer = st;
  fewer.endpoint_slices[0].endpoints.pop_back();
  EXPECT_LE(DiffSize(base, MustCompile(fewer)), 8u);
  // The last endpoint going away turns the Service's frontends into REJECT: still a handful.
  ClusterState none = st;
  none.endpoint_slices[1].endpoints.clear();
  EXPECT_LE(DiffSize(base, MustCompile(none)), 8u);
}

TEST(Compile, LoadOrderDoesNotChangeTheProgram) {
  ClusterState st = ShopLike();
  const Program base = MustCompile(st);
  std::mt19937 rng(11);
  for (int i = 0; i < 5; ++i) {
    std::shuffle(st.pods.begin(), st.pods.end(), rng);
    std::shuffle(st.services.begin(), st.services.end(), rng);
    std::shuffle(st.endpoint_slices.begin(), st.endpoint_slices.end(), rng);
    std::shuffle(st.nodes.begin(), st.nodes.end(), rng);
    EXPECT_EQ(DiffSize(base, MustCompile(st)), 0u) << "shuffle " << i;
  }
}

TEST(Compile, ShopExampleCompilesForTheNodeItsKubeProxyConfigurationNames) {
  const std::string dir = std::string(NICFLOW_SOURCE_DIR) + "/examples/shop/";
  ClusterState st;
  ASSERT_TRUE(
      LoadPaths({dir + "cluster.yaml", dir + "kube-proxy.yaml", dir + "policies.yaml"}, {}, st)
          .ok());
  auto r = Compile(st, {});
  ASSERT_TRUE(r.ok()) << r.status();
  const Program& p = r->program;
  EXPECT_EQ(r->node.name, "node-a");
  EXPECT_THAT(r->node.cluster_cidrs, ElementsAre(Cidr("10.244.0.0/16")));
  const Entry* node_port = Lookup(p, kTableService, Pkt("203.0.113.7", "192.168.10.11", 30080));
  EXPECT_THAT(Backends(p, node_port), ElementsAre("10.244.1.10:8080", "10.244.2.10:8080"));
  EXPECT_EQ(FlagsSet(node_port) & kFlagMasq, kFlagMasq);
  EXPECT_TRUE(IsReject(Lookup(p, kTableService, Pkt("10.244.1.10", "10.96.0.99", 80))));
  EXPECT_TRUE(IsDrop(Lookup(p, kTableService, Pkt("10.244.1.10", "10.96.7.7", 80))));
  const SelectGroup* cart = p.FindGroup("svc/shop/cart/http/v4/cluster");
  ASSERT_NE(cart, nullptr);
  EXPECT_EQ(cart->affinity_timeout_s, 600u);
  EXPECT_EQ(p.ports.size(), 5u);  // host, uplink, web-1, cart-1, prom-0
}

// ---------------------------------------------------------------------------------------------
// A reference walk through the program: every path a new connection's first packet can take
// (one per bucket of each group on the way), with its fate, DNAT and whether it was SNATed.

struct Outcome {
  enum class Fate { kOut, kDrop, kReject } fate = Fate::kDrop;
  std::optional<std::pair<IpAddr, uint16_t>> dnat;
  bool snat = false;
  std::string trace;
};

struct WalkState {
  std::map<Field, U128> fields;
  std::optional<std::pair<IpAddr, uint16_t>> dnat;
  bool snat = false;
  std::string trace;
};

const Entry* LookupFields(const Program& p, TableId table, const std::map<Field, U128>& f) {
  const Entry* best = nullptr;
  for (const Entry& e : p.entries[table]) {
    bool all = std::all_of(e.match.begin(), e.match.end(),
                           [&](const FieldMatch& m) { return FieldMatches(m, f); });
    if (all && (best == nullptr || e.priority > best->priority)) best = &e;
  }
  return best;
}

void RunTable(const Program& p, TableId t, WalkState s, std::vector<Outcome>& out);

void RunActions(const Program& p, std::vector<Action> acts, WalkState s,
                std::vector<Outcome>& out) {
  for (size_t i = 0; i < acts.size(); ++i) {
    const Action& a = acts[i];
    auto finish = [&](Outcome::Fate fate) {
      out.push_back(Outcome{fate, s.dnat, s.snat, s.trace});
    };
    if (std::holds_alternative<DropAction>(a)) return finish(Outcome::Fate::kDrop);
    if (std::holds_alternative<RejectAction>(a)) return finish(Outcome::Fate::kReject);
    if (std::holds_alternative<OutputAction>(a) || std::holds_alternative<PuntAction>(a)) {
      return finish(Outcome::Fate::kOut);
    }
    if (const auto* g = std::get_if<GotoAction>(&a)) return RunTable(p, g->table, s, out);
    if (const auto* sf = std::get_if<SetFieldAction>(&a)) {
      U128& v = s.fields[sf->field];
      v = (v & ~sf->mask) | (sf->value & sf->mask);
    } else if (const auto* d = std::get_if<DnatAction>(&a)) {
      s.fields[d->addr.is_v4() ? Field::kIpv4Dst : Field::kIpv6Dst] = U128::FromIp(d->addr);
      if (d->port != 0) s.fields[Field::kL4Dst] = U128::Of(d->port);
      s.dnat = {d->addr, d->port};
    } else if (const auto* sn = std::get_if<SnatAction>(&a)) {
      s.fields[sn->addr.is_v4() ? Field::kIpv4Src : Field::kIpv6Src] = U128::FromIp(sn->addr);
      s.snat = true;
    } else if (std::holds_alternative<CtLookupAction>(a)) {
      s.fields[Field::kCtState] = U128::Of(kCtTrk | kCtNew);
    } else if (const auto* grp = std::get_if<GroupAction>(&a)) {
      const SelectGroup* g = p.FindGroup(grp->group);
      for (const Bucket& b : g->buckets) {
        std::vector<Action> rest = b.actions;
        rest.insert(rest.end(), acts.begin() + i + 1, acts.end());
        RunActions(p, rest, s, out);
      }
      return;
    }
  }
  out.push_back(Outcome{Outcome::Fate::kDrop, s.dnat, s.snat, s.trace + " fell off"});
}

void RunTable(const Program& p, TableId t, WalkState s, std::vector<Outcome>& out) {
  const Entry* e = LookupFields(p, t, s.fields);
  s.trace += absl::StrCat(" ", p.tables[t].name, "[",
                          e == nullptr ? "default" : e->origin.ToString(), "]");
  RunActions(p, e == nullptr ? p.tables[t].default_actions : e->actions, s, out);
}

PortClass EntryPortClass(const ScenarioPacket& pkt, const NodeFacts& node) {
  if (pkt.in_port) {
    if (*pkt.in_port == "host") return PortClass::kHost;
    if (*pkt.in_port == "pod") return PortClass::kPod;
    return PortClass::kUplink;
  }
  if (std::find(node.ips.begin(), node.ips.end(), pkt.src) != node.ips.end()) {
    return PortClass::kHost;
  }
  for (const IpPrefix& c : node.cluster_cidrs) {
    if (c.Contains(pkt.src)) return PortClass::kPod;
  }
  return PortClass::kUplink;
}

std::vector<Outcome> Walk(const Program& p, const NodeFacts& node, const ScenarioPacket& pkt) {
  WalkState s;
  for (Field f : {Field::kInPort, Field::kEthType, Field::kCtState, Field::kMetaFlags,
                  Field::kMetaSrcSet, Field::kMetaDstSet, Field::kMetaPeerBits}) {
    s.fields[f] = U128{};
  }
  s.fields[Field::kEthType] = U128::Of(pkt.src.is_v4() ? 0x0800 : 0x86dd);
  s.fields[Field::kMetaPortClass] = U128::Of(static_cast<uint8_t>(EntryPortClass(pkt, node)));
  s.fields[pkt.src.is_v4() ? Field::kIpv4Src : Field::kIpv6Src] = U128::FromIp(pkt.src);
  s.fields[pkt.dst.is_v4() ? Field::kIpv4Dst : Field::kIpv6Dst] = U128::FromIp(pkt.dst);
  s.fields[Field::kIpProto] = U128::Of(static_cast<uint8_t>(pkt.proto));
  s.fields[Field::kL4Src] = U128::Of(40000);
  s.fields[Field::kL4Dst] = U128::Of(pkt.dst_port);
  std::vector<Outcome> out;
  RunTable(p, 0, s, out);
  return out;
}

// Checks one packet's paths against its expectation; returns a message when they disagree.
std::string Check(const ScenarioPacket& pkt, const std::vector<Outcome>& outs) {
  std::set<std::pair<IpAddr, uint16_t>> got;
  std::string why;
  for (const Outcome& o : outs) {
    auto want = pkt.verdict == ExpectedVerdict::kDrop     ? Outcome::Fate::kDrop
                : pkt.verdict == ExpectedVerdict::kReject ? Outcome::Fate::kReject
                                                          : Outcome::Fate::kOut;
    if (o.fate != want) why += absl::StrCat(" fate mismatch via", o.trace, ";");
    if (want == Outcome::Fate::kOut && o.snat != pkt.masq) {
      why += absl::StrCat(" masq ", o.snat, " via", o.trace, ";");
    }
    if (o.dnat) got.insert(*o.dnat);
    if (pkt.verdict == ExpectedVerdict::kForward && o.dnat) why += " unexpected DNAT;";
  }
  if (pkt.verdict == ExpectedVerdict::kDnat) {
    std::set<std::pair<IpAddr, uint16_t>> want(pkt.endpoints.begin(), pkt.endpoints.end());
    if (got != want) {
      std::string g;
      for (const auto& [a, port] : got) g += FormatEndpoint(a, port) + " ";
      why += absl::StrCat(" DNAT to {", g, "} via", outs.empty() ? "" : outs[0].trace, ";");
    }
  }
  return why;
}

std::vector<std::string> ServiceScenarioFiles() {
  std::vector<std::string> files = {std::string(NICFLOW_SOURCE_DIR) +
                                    "/examples/shop/scenarios.yaml"};
  const std::filesystem::path dir =
      std::filesystem::path(NICFLOW_SOURCE_DIR) / "tests/conformance/scenarios";
  if (std::filesystem::exists(dir)) {
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
      const std::string name = e.path().filename().string();
      if (name.ends_with(".yaml") && !name.starts_with("netpol-")) {
        files.push_back(e.path().string());
      }
    }
  }
  std::sort(files.begin() + 1, files.end());
  return files;
}

// Scenarios whose input does not reach the compiler as written yet, with the reason. A listed
// scenario that starts passing fails the test, so the list cannot go stale.
const std::map<std::string, std::string>& KnownInputGaps() {
  // Packets whose input the scenario parser cannot express yet; none today.
  static const auto* gaps = new std::map<std::string, std::string>{};
  return *gaps;
}

TEST(Compile, ServiceConformanceScenariosHoldOnTheCompiledProgram) {
  int packets = 0;
  for (const std::string& file : ServiceScenarioFiles()) {
    auto scenarios = LoadServiceScenarios(file);
    if (!scenarios.ok()) {
      // Loading is the loader's business (loader_test); this test is about the compiler.
      std::cerr << "skipping " << file << ": " << scenarios.status() << "\n";
      continue;
    }
    for (const ServiceScenario& sc : *scenarios) {
      CompileOptions o;
      o.node_name = sc.node_name;
      auto r = Compile(sc.state, o);
      ASSERT_TRUE(r.ok()) << file << ": " << sc.name << ": " << r.status();
      for (const ScenarioPacket& pkt : sc.packets) {
        ++packets;
        std::string why = Check(pkt, Walk(r->program, r->node, pkt));
        if (auto gap = KnownInputGaps().find(sc.name + ": " + pkt.name);
            gap != KnownInputGaps().end()) {
          if (!why.empty()) continue;
          why = "passes now: remove it from KnownInputGaps (" + gap->second + ")";
        }
        EXPECT_EQ(why, "") << std::filesystem::path(file).filename().string() << ": " << sc.name
                           << ": " << pkt.name << " (expect " << pkt.expect << ", masq " << pkt.masq
                           << ")";
      }
    }
  }
  EXPECT_GT(packets, 100);
  std::cout << packets << " scenario packets walked\n";
}

}  // namespace
}  // namespace nicflow::flowtables
