// ApiSource against a replaying API server: recorded lists and watch streams (tests/data), with
// a bookmark, a dropped connection, a 410 Gone ERROR event, a relist and a bad object.
#include "nicflow/k8s/api_source.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "fake_api_server.h"
#include "nicflow/flowtables/status.h"

namespace nicflow::k8s {
namespace {

namespace fl = nicflow::flowtables;
using ::testing::ElementsAre;
using testing::FakeApiServer;
using testing::FakeResponse;
using ::testing::HasSubstr;

constexpr char kNamespaces[] = "/api/v1/namespaces";
constexpr char kPods[] = "/api/v1/pods";
constexpr char kServices[] = "/api/v1/services";
constexpr char kSlices[] = "/apis/discovery.k8s.io/v1/endpointslices";
constexpr char kPolicies[] = "/apis/networking.k8s.io/v1/networkpolicies";
constexpr char kNodes[] = "/api/v1/nodes";

std::string Data(const std::string& name) {
  std::ifstream in(std::string(NICFLOW_K8S_TEST_DATA) + "/" + name);
  std::ostringstream s;
  s << in.rdbuf();
  EXPECT_FALSE(s.str().empty()) << name;
  return s.str();
}

FakeResponse Stream(const std::string& name, FakeResponse::End end) {
  auto r = FakeResponse::StreamFile(std::string(NICFLOW_K8S_TEST_DATA) + "/" + name, end);
  EXPECT_TRUE(r.ok()) << r.status();
  return *std::move(r);
}

// Collects snapshots; tests wait for the one they expect.
class Snapshots {
 public:
  void Add(const fl::ClusterState& s) {
    std::lock_guard<std::mutex> lock(mu_);
    all_.push_back(s);
    cv_.notify_all();
  }
  // Waits for snapshot number `n` (1-based).
  std::optional<fl::ClusterState> Wait(size_t n, int timeout_ms = 5000) {
    std::unique_lock<std::mutex> lock(mu_);
    if (!cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                      [&] { return all_.size() >= n; })) {
      return std::nullopt;
    }
    return all_[n - 1];
  }
  size_t Count() {
    std::lock_guard<std::mutex> lock(mu_);
    return all_.size();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<fl::ClusterState> all_;
};

std::vector<std::string> ServiceNames(const fl::ClusterState& s) {
  std::vector<std::string> names;
  for (const auto& svc : s.services) names.push_back(absl::StrCat(svc.ns, "/", svc.name));
  return names;
}

const fl::Service* FindService(const fl::ClusterState& s, const std::string& name) {
  for (const auto& svc : s.services) {
    if (svc.name == name) return &svc;
  }
  return nullptr;
}

class ApiSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    socket_ =
        absl::StrCat("/tmp/nicflow-k8s-", ::getpid(), "-",
                     ::testing::UnitTest::GetInstance()->current_test_info()->name(), ".sock");
    auto server = FakeApiServer::Start(socket_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    server_->NotFound("/apis/networking.k8s.io/v1/servicecidrs");
    server_->NotFound("/apis/networking.k8s.io/v1beta1/servicecidrs");
  }
  void TearDown() override {
    if (source_) source_->Stop();
    server_->Stop();
  }

  void PushLists(bool services = true) {
    server_->Push(kNamespaces, FakeResponse::Json(Data("namespaces_list.json")));
    server_->Push(kPods, FakeResponse::Json(Data("pods_list.json")));
    if (services) server_->Push(kServices, FakeResponse::Json(Data("services_list.json")));
    server_->Push(kSlices, FakeResponse::Json(Data("endpointslices_list.json")));
    server_->Push(kPolicies, FakeResponse::Json(Data("networkpolicies_list.json")));
    server_->Push(kNodes, FakeResponse::Json(Data("nodes_list.json")));
  }

  WatchOptions FastOptions() {
    WatchOptions o;
    o.debounce = std::chrono::milliseconds(30);
    o.max_delay = std::chrono::milliseconds(300);
    o.initial_backoff = std::chrono::milliseconds(5);
    o.max_backoff = std::chrono::milliseconds(20);
    o.jitter_seed = 42;
    return o;
  }

  void StartSource(ApiSource::EventCallback on_event = nullptr) {
    ApiConfig config;
    config.server = server_->Url();
    config.bearer_token = "test-token";
    auto source = ApiSource::Start(
        config, FastOptions(), [this](const fl::ClusterState& s) { snapshots_.Add(s); },
        std::move(on_event));
    ASSERT_TRUE(source.ok()) << source.status();
    source_ = *std::move(source);
  }

  KindStats StatsOf(ResourceKind kind) {
    for (const KindStats& k : source_->Stats().kinds) {
      if (k.kind == kind) return k;
    }
    ADD_FAILURE() << "no stats for " << ResourceKindName(kind);
    return {};
  }

  std::string socket_;
  std::unique_ptr<FakeApiServer> server_;
  std::unique_ptr<ApiSource> source_;
  Snapshots snapshots_;
};

TEST_F(ApiSourceTest, FirstSnapshotHoldsEveryListedKind) {
  PushLists();
  StartSource();
  auto s = snapshots_.Wait(1);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->namespaces.size(), 2u);
  ASSERT_EQ(s->pods.size(), 2u);
  EXPECT_EQ(s->pods[0].ns, "shop");
  EXPECT_EQ(s->pods[0].node_name, "node-a");
  ASSERT_EQ(s->pods[0].ips.size(), 1u);
  EXPECT_EQ(s->pods[0].ips[0].ToString(), "10.244.1.5");
  EXPECT_THAT(ServiceNames(*s), ElementsAre("shop/web"));
  ASSERT_EQ(s->endpoint_slices.size(), 1u);
  EXPECT_EQ(s->endpoint_slices[0].service_name, "web");
  EXPECT_EQ(s->endpoint_slices[0].endpoints.size(), 2u);
  ASSERT_EQ(s->network_policies.size(), 1u);
  EXPECT_TRUE(s->network_policies[0].affects_ingress);
  ASSERT_EQ(s->nodes.size(), 2u);
  EXPECT_EQ(s->nodes[0].internal_ips[0].ToString(), "192.168.10.11");
  EXPECT_TRUE(s->service_cidrs.empty());
  EXPECT_TRUE(source_->Synced());

  // Every request carried the token, and watches start from each list's resourceVersion.
  ASSERT_TRUE(server_->WaitForRequests(kServices, 2));
  auto reqs = server_->Requests(kServices);
  EXPECT_EQ(reqs[0].headers["authorization"], "Bearer test-token");
  EXPECT_EQ(reqs[0].Param("limit"), "500");
  EXPECT_EQ(reqs[1].Param("watch"), "1");
  EXPECT_EQ(reqs[1].Param("allowWatchBookmarks"), "true");
  EXPECT_EQ(reqs[1].Param("resourceVersion"), "1000");
  KindStats cidrs = StatsOf(ResourceKind::kServiceCidr);
  EXPECT_FALSE(cidrs.served);
  EXPECT_TRUE(cidrs.synced);
}

TEST_F(ApiSourceTest, ReplaysBookmarkDropGoneAndRelist) {
  PushLists();
  StartSource();
  ASSERT_TRUE(snapshots_.Wait(1));

  // Watch 1: ADDED api, MODIFIED web (a second port), BOOKMARK 1010, then the connection drops
  // in the middle of the next event (the recording ends inside it, without a newline).
  server_->Push(kServices, Stream("services_watch_1.jsonl", FakeResponse::End::kDrop));
  auto s2 = snapshots_.Wait(2);
  ASSERT_TRUE(s2);
  EXPECT_THAT(ServiceNames(*s2), ElementsAre("shop/api", "shop/web"));
  ASSERT_NE(FindService(*s2, "web"), nullptr);
  EXPECT_EQ(FindService(*s2, "web")->ports.size(), 2u);
  EXPECT_EQ(FindService(*s2, "api")->ports[0].node_port, 30090);

  // The client reconnects (after a backoff) from the bookmark's version; the cut event (1013)
  // was not applied.
  ASSERT_TRUE(server_->WaitForRequests(kServices, 3));
  EXPECT_EQ(server_->Requests(kServices)[2].Param("resourceVersion"), "1010");
  KindStats st = StatsOf(ResourceKind::kService);
  EXPECT_EQ(st.bookmarks, 1u);
  EXPECT_EQ(st.events, 2u);
  EXPECT_EQ(st.reconnects, 1u);
  EXPECT_THAT(st.last_error, HasSubstr("connection closed in the middle of"));

  // Watch 2: DELETED api, then ERROR 410 Gone: the client lists again.
  server_->Push(kServices, Stream("services_watch_2.jsonl", FakeResponse::End::kHang));
  auto s3 = snapshots_.Wait(3);
  ASSERT_TRUE(s3);
  EXPECT_THAT(ServiceNames(*s3), ElementsAre("shop/web"));
  ASSERT_TRUE(server_->WaitForRequests(kServices, 4));
  auto relist = server_->Requests(kServices)[3];
  EXPECT_EQ(relist.Param("watch"), "");
  EXPECT_EQ(relist.Param("resourceVersion"), "");

  // The relist finds cart (created while we were gone); web is unchanged.
  server_->Push(kServices, FakeResponse::Json(Data("services_relist.json")));
  auto s4 = snapshots_.Wait(4);
  ASSERT_TRUE(s4);
  EXPECT_THAT(ServiceNames(*s4), ElementsAre("shop/cart", "shop/web"));
  ASSERT_TRUE(server_->WaitForRequests(kServices, 5));
  EXPECT_EQ(server_->Requests(kServices)[4].Param("resourceVersion"), "1500");
  st = StatsOf(ResourceKind::kService);
  EXPECT_EQ(st.relists_gone, 1u);
  EXPECT_EQ(st.lists, 2u);

  // Watch 3: a bad update of cart (targetPort 70000) is reported and skipped, keeping the last
  // good cart; db still arrives.
  server_->Push(kServices, Stream("services_watch_3.jsonl", FakeResponse::End::kHang));
  auto s5 = snapshots_.Wait(5);
  ASSERT_TRUE(s5);
  EXPECT_THAT(ServiceNames(*s5), ElementsAre("shop/cart", "shop/db", "shop/web"));
  EXPECT_TRUE(FindService(*s5, "db")->headless);
  EXPECT_EQ(std::get<uint16_t>(FindService(*s5, "cart")->ports[0].target_port), 5353);
  ApiSourceStats all = source_->Stats();
  ASSERT_EQ(all.rejected.size(), 1u);
  EXPECT_THAT(all.rejected[0], HasSubstr("Service shop/cart"));
  EXPECT_THAT(all.rejected[0], HasSubstr("targetPort"));
  EXPECT_THAT(all.rejected[0], HasSubstr("previous version"));
  EXPECT_EQ(StatsOf(ResourceKind::kService).decode_errors, 1u);
  EXPECT_EQ(StatsOf(ResourceKind::kService).resource_version, "1502");
  bool noted = false;
  for (const std::string& note : s5->notes) noted |= note.find("shop/cart") != std::string::npos;
  EXPECT_TRUE(noted);
}

TEST_F(ApiSourceTest, BurstOfEventsYieldsOneSnapshot) {
  PushLists();
  StartSource();
  ASSERT_TRUE(snapshots_.Wait(1));
  std::vector<std::string> lines;
  for (int i = 0; i < 50; ++i) {
    lines.push_back(absl::StrCat(
        R"({"type":"ADDED","object":{"kind":"Service","apiVersion":"v1","metadata":{"name":"s)", i,
        R"(","namespace":"burst","resourceVersion":")", 2000 + i,
        R"("},"spec":{"clusterIP":"10.96.1.)", i + 1,
        R"(","ports":[{"port":80,"targetPort":8080}]}}})"));
  }
  server_->Push(kServices, FakeResponse::Stream(lines, FakeResponse::End::kHang));
  auto s2 = snapshots_.Wait(2);
  ASSERT_TRUE(s2);
  EXPECT_EQ(s2->services.size(), 51u);
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  EXPECT_EQ(snapshots_.Count(), 2u);
  EXPECT_EQ(source_->Stats().snapshots, 2u);
}

TEST_F(ApiSourceTest, NoSnapshotUntilEveryKindListed) {
  PushLists(/*services=*/false);
  StartSource();
  ASSERT_TRUE(server_->WaitForRequests(kNodes, 2));  // nodes listed and watching
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(snapshots_.Count(), 0u);
  EXPECT_FALSE(source_->Synced());
  server_->Push(kServices, FakeResponse::Json(Data("services_list.json")));
  auto s = snapshots_.Wait(1);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->services.size(), 1u);
  EXPECT_EQ(s->pods.size(), 2u);
}

TEST_F(ApiSourceTest, HeartbeatOnlyUpdateChangesNothingAndEventsAreDelivered) {
  std::mutex mu;
  std::vector<std::string> events;
  PushLists();
  StartSource([&](const ObjectEvent& ev) {
    std::lock_guard<std::mutex> lock(mu);
    events.push_back(absl::StrCat(ev.type == ObjectEvent::Type::kAdded ? "+" : "~",
                                  Sv(ResourceKindName(ev.kind)), " ", ev.ns, "/", ev.name));
  });
  ASSERT_TRUE(snapshots_.Wait(1));
  {
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_EQ(events.size(), 9u);  // 2 namespaces, 2 pods, 1 service, slice, policy, 2 nodes
  }
  server_->Push(kNodes, Stream("nodes_watch_1.jsonl", FakeResponse::End::kHang));
  ASSERT_TRUE(server_->WaitForRequests(kNodes, 2));
  for (int i = 0; i < 100 && StatsOf(ResourceKind::kNode).resource_version != "1250"; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(StatsOf(ResourceKind::kNode).resource_version, "1250");
  EXPECT_EQ(StatsOf(ResourceKind::kNode).events, 1u);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(snapshots_.Count(), 1u);
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(events.size(), 9u);
}

TEST_F(ApiSourceTest, GoneOnTheWatchRequestRelists) {
  PushLists();
  StartSource();
  ASSERT_TRUE(snapshots_.Wait(1));
  server_->Push(kPods, FakeResponse::Json(
                           R"({"kind":"Status","apiVersion":"v1","status":"Failure",)"
                           R"("message":"too old resource version","reason":"Expired","code":410})",
                           410));
  // The relist no longer has the second pod: it is deleted from the store.
  server_->Push(
      kPods,
      FakeResponse::Json(
          R"({"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"3000"},"items":[)"
          R"({"metadata":{"name":"web-7d4b9c6f5-abcde","namespace":"shop","labels":{"app":"web"}},)"
          R"("spec":{"nodeName":"node-a"},"status":{"phase":"Running","podIP":"10.244.1.5"}}]})"));
  auto s2 = snapshots_.Wait(2);
  ASSERT_TRUE(s2);
  ASSERT_EQ(s2->pods.size(), 1u);
  EXPECT_EQ(s2->pods[0].name, "web-7d4b9c6f5-abcde");
  EXPECT_EQ(StatsOf(ResourceKind::kPod).relists_gone, 1u);
  ASSERT_TRUE(server_->WaitForRequests(kPods, 4));
  EXPECT_EQ(server_->Requests(kPods)[3].Param("resourceVersion"), "3000");
}

TEST_F(ApiSourceTest, ForbiddenIsReportedAndRetried) {
  server_->Push(
      kNamespaces,
      FakeResponse::Json(
          R"({"kind":"Status","apiVersion":"v1","status":"Failure",)"
          R"("message":"namespaces is forbidden: User \"system:serviceaccount:kube-system:nicflow\" cannot list resource \"namespaces\"","reason":"Forbidden","code":403})",
          403));
  PushLists();
  StartSource();
  auto s = snapshots_.Wait(1);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->namespaces.size(), 2u);
  KindStats ns = StatsOf(ResourceKind::kNamespace);
  EXPECT_THAT(ns.last_error, HasSubstr("HTTP 403"));
  EXPECT_THAT(ns.last_error, HasSubstr("cannot list resource"));
  EXPECT_EQ(ns.lists, 1u);
}

TEST_F(ApiSourceTest, PagedListIsAssembled) {
  server_->Push(
      kNamespaces,
      FakeResponse::Json(
          R"({"kind":"NamespaceList","apiVersion":"v1","metadata":{"resourceVersion":"77","continue":"tok/1="},)"
          R"("items":[{"metadata":{"name":"a"}}]})"));
  server_->Push(
      kNamespaces,
      FakeResponse::Json(
          R"({"kind":"NamespaceList","apiVersion":"v1","metadata":{"resourceVersion":"78"},)"
          R"("items":[{"metadata":{"name":"b"}}]})"));
  server_->Push(kPods, FakeResponse::Json(Data("pods_list.json")));
  server_->Push(kServices, FakeResponse::Json(Data("services_list.json")));
  server_->Push(kSlices, FakeResponse::Json(Data("endpointslices_list.json")));
  server_->Push(kPolicies, FakeResponse::Json(Data("networkpolicies_list.json")));
  server_->Push(kNodes, FakeResponse::Json(Data("nodes_list.json")));
  StartSource();
  auto s = snapshots_.Wait(1);
  ASSERT_TRUE(s);
  ASSERT_EQ(s->namespaces.size(), 2u);
  EXPECT_EQ(s->namespaces[1].name, "b");
  auto reqs = server_->Requests(kNamespaces);
  ASSERT_GE(reqs.size(), 3u);
  EXPECT_EQ(reqs[1].Param("continue"), "tok%2F1%3D");
  EXPECT_EQ(reqs[2].Param("resourceVersion"), "78");
}

TEST(ApiSourceStart, RejectsBadConfig) {
  ApiConfig config;
  config.server = "ftp://x";
  auto s = ApiSource::Start(config, [](const fl::ClusterState&) {});
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("ftp://x"));
  config.server = "http://127.0.0.1:1";
  WatchOptions o;
  o.kinds.clear();
  EXPECT_EQ(ApiSource::Start(config, o, [](const fl::ClusterState&) {}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace nicflow::k8s
