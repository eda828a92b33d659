// The object store: snapshots patched after a few changes (and rebuilt after many) match a
// reference model; rejections keep the last good object and show in the notes.
#include "object_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <random>

#include "absl/strings/str_cat.h"

namespace nicflow::k8s::internal {
namespace {

namespace fl = nicflow::flowtables;
using ::testing::HasSubstr;

DecodedObject Pod(int i, int node) {
  auto pod = nlohmann::json::parse(
      absl::StrCat(R"({"metadata":{"name":"p)", i, R"(","namespace":"ns)", i % 7, R"("},)",
                   R"("spec":{"nodeName":"node-)", node, R"("},"status":{"podIP":"10.1.)", i / 250,
                   ".", i % 250, R"("}})"));
  auto d = DecodeApiObject(InfoOf(ResourceKind::kPod), pod);
  EXPECT_TRUE(d.ok()) << d.status();
  return *std::move(d);
}

TEST(ObjectStore, PatchedSnapshotsMatchTheReferenceModel) {
  ObjectStore store;
  std::map<std::string, std::string> model;  // key -> node name
  fl::ClusterState state;
  std::mt19937 rng(7);
  for (int round = 0; round < 40; ++round) {
    // Mostly a few changes (patched in place), every fifth round many (rebuilt).
    int changes = round % 5 == 4 ? 400 : static_cast<int>(rng() % 12);
    for (int c = 0; c < changes; ++c) {
      int i = static_cast<int>(rng() % 300);
      DecodedObject d = Pod(i, static_cast<int>(rng() % 4));
      std::string key = ObjectKey(d.ns, d.name);
      if (rng() % 3 == 0) {
        store.Remove(ResourceKind::kPod, d.ns, d.name, "");
        model.erase(key);
      } else {
        model[key] = std::get<fl::Pod>(d.object).node_name;
        store.Upsert(ResourceKind::kPod, std::move(d));
      }
    }
    store.Refresh(state);
    ASSERT_EQ(state.pods.size(), model.size()) << "round " << round;
    size_t j = 0;
    for (const auto& [key, node] : model) {
      EXPECT_EQ(ObjectKey(state.pods[j].ns, state.pods[j].name), key) << "round " << round;
      EXPECT_EQ(state.pods[j].node_name, node) << "round " << round;
      ++j;
    }
  }
}

TEST(ObjectStore, UnchangedUpdateIsNoChangeAndRejectionKeepsTheLastGoodObject) {
  ObjectStore store;
  ASSERT_TRUE(store.Upsert(ResourceKind::kPod, Pod(1, 1)).has_value());
  EXPECT_FALSE(store.Upsert(ResourceKind::kPod, Pod(1, 1)).has_value());
  store.Reject(ResourceKind::kPod, "ns1/p1", "kube-apiserver: Pod ns1/p1: status.podIP: bad");
  fl::ClusterState state;
  store.Refresh(state);
  ASSERT_EQ(state.pods.size(), 1u);
  EXPECT_EQ(state.pods[0].node_name, "node-1");
  ASSERT_EQ(state.notes.size(), 1u);
  EXPECT_THAT(state.notes[0], HasSubstr("previous version of the object stays in use"));
  auto change = store.Upsert(ResourceKind::kPod, Pod(1, 2));
  ASSERT_TRUE(change.has_value());
  EXPECT_EQ(change->type, ObjectEvent::Type::kModified);
  ASSERT_TRUE(change->previous.has_value());
  EXPECT_EQ(std::get<fl::Pod>(*change->previous).node_name, "node-1");
  store.Refresh(state);
  EXPECT_TRUE(state.notes.empty());
  EXPECT_EQ(state.pods[0].node_name, "node-2");
}

TEST(ObjectStore, DecodeErrorsNameTheObjectAndField) {
  auto svc = nlohmann::json::parse(
      R"({"metadata":{"name":"cart","namespace":"shop"},)"
      R"("spec":{"clusterIP":"10.96.0.30","ports":[{"port":5353,"targetPort":70000}]}})");
  auto d = DecodeApiObject(InfoOf(ResourceKind::kService), svc);
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(std::string(d.status().message()),
              HasSubstr("kube-apiserver: Service shop/cart: spec.ports[0].targetPort: 70000"));
}

}  // namespace
}  // namespace nicflow::k8s::internal
