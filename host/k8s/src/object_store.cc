// Decoding API objects with the manifest loader, and the per-kind object maps.
#include "object_store.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "nicflow/flowtables/loader.h"
#include "nicflow/flowtables/status.h"

namespace nicflow::k8s::internal {
namespace fl = nicflow::flowtables;

const KindInfo& InfoOf(ResourceKind kind) {
  static const std::array<KindInfo, kKindCount> kInfos = {{
      {ResourceKind::kNamespace, "Namespace", "v1", "/api/v1/namespaces", false, "", ""},
      {ResourceKind::kPod, "Pod", "v1", "/api/v1/pods", true, "", ""},
      {ResourceKind::kService, "Service", "v1", "/api/v1/services", true, "", ""},
      {ResourceKind::kEndpointSlice, "EndpointSlice", "discovery.k8s.io/v1",
       "/apis/discovery.k8s.io/v1/endpointslices", true, "", ""},
      {ResourceKind::kNetworkPolicy, "NetworkPolicy", "networking.k8s.io/v1",
       "/apis/networking.k8s.io/v1/networkpolicies", true, "", ""},
      {ResourceKind::kNode, "Node", "v1", "/api/v1/nodes", false, "", ""},
      {ResourceKind::kServiceCidr, "ServiceCIDR", "networking.k8s.io/v1",
       "/apis/networking.k8s.io/v1/servicecidrs", false, "networking.k8s.io/v1beta1",
       "/apis/networking.k8s.io/v1beta1/servicecidrs"},
  }};
  return kInfos[static_cast<size_t>(kind)];
}

std::string ObjectKey(std::string_view ns, std::string_view name) {
  return ns.empty() ? std::string(name) : absl::StrCat(Sv(ns), "/", Sv(name));
}

void ReadMeta(const nlohmann::json& object, std::string& ns, std::string& name,
              std::string& resource_version) {
  auto str = [](const nlohmann::json& m, const char* key) -> std::string {
    auto it = m.find(key);
    return it != m.end() && it->is_string() ? it->get<std::string>() : "";
  };
  ns.clear();
  name.clear();
  resource_version.clear();
  if (!object.is_object()) return;
  auto meta = object.find("metadata");
  if (meta == object.end() || !meta->is_object()) return;
  ns = str(*meta, "namespace");
  name = str(*meta, "name");
  resource_version = str(*meta, "resourceVersion");
}

namespace {

// Fields that change without changing anything the loader reads; removing them lets an update
// that only touches them be recognised as no change (kubelet status heartbeats, controllers'
// managedFields). The loader never reads these (see flowtables/src/loader_*.cc).
void StripVolatile(ResourceKind kind, nlohmann::json& o) {
  if (auto meta = o.find("metadata"); meta != o.end() && meta->is_object()) {
    for (const char* key : {"resourceVersion", "managedFields", "generation", "annotations",
                            "creationTimestamp", "uid", "ownerReferences", "finalizers"}) {
      meta->erase(key);
    }
  }
  auto status = o.find("status");
  if (status == o.end() || !status->is_object()) return;
  if (kind == ResourceKind::kPod) {
    for (const char* key : {"conditions", "containerStatuses", "initContainerStatuses",
                            "ephemeralContainerStatuses", "startTime", "qosClass"}) {
      status->erase(key);
    }
  } else if (kind == ResourceKind::kNode) {
    for (const char* key : {"conditions", "images", "nodeInfo", "daemonEndpoints", "capacity",
                            "allocatable", "volumesInUse", "volumesAttached", "config"}) {
      status->erase(key);
    }
  }
}

template <typename T>
absl::StatusOr<KubeObject> TakeOne(std::vector<T>& v, std::string_view what) {
  if (v.size() != 1) {
    return absl::InternalError(
        absl::StrCat("kube-apiserver: ", Sv(what), ": the loader produced ", v.size(), " objects"));
  }
  return KubeObject(std::move(v.front()));
}

absl::StatusOr<KubeObject> Extract(ResourceKind kind, fl::ClusterState& s, std::string_view what) {
  switch (kind) {
    case ResourceKind::kNamespace:
      return TakeOne(s.namespaces, what);
    case ResourceKind::kPod:
      return TakeOne(s.pods, what);
    case ResourceKind::kService:
      return TakeOne(s.services, what);
    case ResourceKind::kEndpointSlice:
      return TakeOne(s.endpoint_slices, what);
    case ResourceKind::kNetworkPolicy:
      return TakeOne(s.network_policies, what);
    case ResourceKind::kNode:
      return TakeOne(s.nodes, what);
    case ResourceKind::kServiceCidr:
      return TakeOne(s.service_cidrs, what);
  }
  return absl::InternalError("unknown kind");
}

}  // namespace

absl::StatusOr<DecodedObject> DecodeApiObject(const KindInfo& info, nlohmann::json object) {
  DecodedObject d;
  ReadMeta(object, d.ns, d.name, d.resource_version);
  std::string what = absl::StrCat(Sv(info.name), " ", ObjectKey(d.ns, d.name));
  if (!object.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat("kube-apiserver: ", what, ": not an object"));
  }
  if (!object.contains("apiVersion")) object["apiVersion"] = std::string(info.api_version);
  if (!object.contains("kind")) object["kind"] = std::string(info.name);
  StripVolatile(info.kind, object);
  d.canonical = object.dump();
  fl::ClusterState state;
  fl::LoadOptions options;
  NICFLOW_RETURN_IF_ERROR(fl::LoadText(d.canonical, "kube-apiserver", options, state));
  NICFLOW_ASSIGN_OR_RETURN(d.object, Extract(info.kind, state, what));
  // The store's key comes from the decoded object, so it matches the snapshot's sort key even
  // when the loader defaulted the namespace.
  std::visit(
      [&](const auto& o) {
        if constexpr (requires { o.ns; }) d.ns = o.ns;
        d.name = o.name;
      },
      d.object);
  d.notes = std::move(state.notes);
  return d;
}

std::optional<ObjectStore::Change> ObjectStore::Upsert(ResourceKind kind, DecodedObject object) {
  std::lock_guard<std::mutex> lock(mu_);
  size_t k = static_cast<size_t>(kind);
  std::string key = ObjectKey(object.ns, object.name);
  rejected_[k].erase(key);
  auto [it, inserted] = objects_[k].try_emplace(key);
  Change change{inserted ? ObjectEvent::Type::kAdded : ObjectEvent::Type::kModified,
                kind,
                object.ns,
                object.name,
                object.resource_version,
                object.object,
                std::nullopt};
  if (!inserted) {
    if (it->second.decoded.canonical == object.canonical) {
      it->second.decoded.resource_version = std::move(object.resource_version);
      return std::nullopt;
    }
    change.previous = std::move(it->second.decoded.object);
  }
  if (object.notes.empty()) {
    notes_[k].erase(key);
  } else {
    notes_[k][key] = object.notes;
  }
  it->second.decoded = std::move(object);
  changed_[k].insert(key);
  return change;
}

void ObjectStore::Reject(ResourceKind kind, const std::string& key, std::string error) {
  std::lock_guard<std::mutex> lock(mu_);
  size_t k = static_cast<size_t>(kind);
  if (objects_[k].count(key) != 0) {
    absl::StrAppend(&error, " (the previous version of the object stays in use)");
  }
  rejected_[k][key] = std::move(error);
}

std::optional<ObjectStore::Change> ObjectStore::Remove(ResourceKind kind, std::string_view ns,
                                                       std::string_view name,
                                                       std::string resource_version) {
  std::lock_guard<std::mutex> lock(mu_);
  size_t k = static_cast<size_t>(kind);
  std::string key = ObjectKey(ns, name);
  rejected_[k].erase(key);
  auto it = objects_[k].find(key);
  if (it == objects_[k].end()) return std::nullopt;
  Change change{ObjectEvent::Type::kDeleted,
                kind,
                std::string(ns),
                std::string(name),
                std::move(resource_version),
                std::move(it->second.decoded.object),
                std::nullopt};
  objects_[k].erase(it);
  notes_[k].erase(key);
  changed_[k].insert(key);
  return change;
}

std::vector<std::string> ObjectStore::Keys(ResourceKind kind) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> keys;
  for (const auto& [key, stored] : objects_[static_cast<size_t>(kind)]) keys.push_back(key);
  return keys;
}

size_t ObjectStore::Count(ResourceKind kind) const {
  std::lock_guard<std::mutex> lock(mu_);
  return objects_[static_cast<size_t>(kind)].size();
}

namespace {

template <typename T>
std::string KeyOf(const T& o) {
  if constexpr (requires { o.ns; }) {
    return ObjectKey(o.ns, o.name);
  } else {
    return o.name;
  }
}

// Brings `vec` (sorted by key, as the map is) in line with `objects` for the `changed` keys, or
// wholly when `rebuild`. Patching copies only the changed objects; an insert or erase moves the
// others, which is cheap next to copying them all. Past a few hundred changes a rebuild is
// cheaper.
template <typename T, typename Map>
void RefreshKind(std::vector<T>& vec, const Map& objects, std::set<std::string>& changed,
                 bool& rebuild) {
  if (rebuild || changed.size() > 256) {
    vec.clear();
    vec.reserve(objects.size());
    for (const auto& [key, stored] : objects) vec.push_back(std::get<T>(stored.decoded.object));
  } else {
    for (const std::string& key : changed) {
      auto pos = std::lower_bound(vec.begin(), vec.end(), key,
                                  [](const T& o, const std::string& k) { return KeyOf(o) < k; });
      bool present = pos != vec.end() && KeyOf(*pos) == key;
      auto it = objects.find(key);
      if (it == objects.end()) {
        if (present) vec.erase(pos);
      } else if (present) {
        *pos = std::get<T>(it->second.decoded.object);
      } else {
        vec.insert(pos, std::get<T>(it->second.decoded.object));
      }
    }
  }
  rebuild = false;
  changed.clear();
}

}  // namespace

void ObjectStore::Refresh(fl::ClusterState& state) {
  std::lock_guard<std::mutex> lock(mu_);
  auto refresh = [&](ResourceKind kind, auto& vec) {
    size_t k = static_cast<size_t>(kind);
    RefreshKind(vec, objects_[k], changed_[k], rebuild_[k]);
  };
  refresh(ResourceKind::kNamespace, state.namespaces);
  refresh(ResourceKind::kPod, state.pods);
  refresh(ResourceKind::kService, state.services);
  refresh(ResourceKind::kEndpointSlice, state.endpoint_slices);
  refresh(ResourceKind::kNetworkPolicy, state.network_policies);
  refresh(ResourceKind::kNode, state.nodes);
  refresh(ResourceKind::kServiceCidr, state.service_cidrs);
  state.notes.clear();
  for (const auto& by_key : notes_) {
    for (const auto& [key, notes] : by_key) {
      state.notes.insert(state.notes.end(), notes.begin(), notes.end());
    }
  }
  for (size_t k = 0; k < kKindCount; ++k) {
    for (const auto& [key, error] : rejected_[k]) {
      state.notes.push_back(absl::StrCat("skipped: ", error));
    }
  }
}

std::vector<std::string> ObjectStore::Rejected() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> out;
  for (size_t k = 0; k < kKindCount; ++k) {
    for (const auto& [key, error] : rejected_[k]) out.push_back(error);
  }
  return out;
}

}  // namespace nicflow::k8s::internal
