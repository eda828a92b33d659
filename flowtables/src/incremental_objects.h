// Private to flowtables: identities of the objects an ObjectChange carries and the one way a
// change edits a ClusterState (shared by ApplyChange and IncrementalCompiler, so the incremental
// compiler's state always equals the oracle's).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "nicflow/flowtables/incremental.h"

namespace nicflow::flowtables {

inline std::string ObjectKey(const Namespace& o) { return o.name; }
inline std::string ObjectKey(const Node& o) { return o.name; }
inline std::string ObjectKey(const ServiceCidr& o) { return o.name; }
inline std::string ObjectKey(const ProxyConfig&) { return ""; }
inline std::string ObjectKey(const MasqConfig&) { return ""; }
template <typename T>
std::string ObjectKey(const T& o) {
  return absl::StrCat(o.ns, "/", o.name);
}

inline const char* ObjectKindName(const Namespace&) { return "Namespace"; }
inline const char* ObjectKindName(const Pod&) { return "Pod"; }
inline const char* ObjectKindName(const Service&) { return "Service"; }
inline const char* ObjectKindName(const EndpointSlice&) { return "EndpointSlice"; }
inline const char* ObjectKindName(const NetworkPolicy&) { return "NetworkPolicy"; }
inline const char* ObjectKindName(const Node&) { return "Node"; }
inline const char* ObjectKindName(const ServiceCidr&) { return "ServiceCIDR"; }
inline const char* ObjectKindName(const ProxyConfig&) { return "KubeProxyConfiguration"; }
inline const char* ObjectKindName(const MasqConfig&) { return "MasqueradeConfig"; }

/// The vector of `state` that holds objects of type T.
inline std::vector<Namespace>& ObjectsOf(ClusterState& s, const Namespace*) { return s.namespaces; }
inline std::vector<Pod>& ObjectsOf(ClusterState& s, const Pod*) { return s.pods; }
inline std::vector<Service>& ObjectsOf(ClusterState& s, const Service*) { return s.services; }
inline std::vector<EndpointSlice>& ObjectsOf(ClusterState& s, const EndpointSlice*) {
  return s.endpoint_slices;
}
inline std::vector<NetworkPolicy>& ObjectsOf(ClusterState& s, const NetworkPolicy*) {
  return s.network_policies;
}
inline std::vector<Node>& ObjectsOf(ClusterState& s, const Node*) { return s.nodes; }
inline std::vector<ServiceCidr>& ObjectsOf(ClusterState& s, const ServiceCidr*) {
  return s.service_cidrs;
}
inline std::optional<ProxyConfig>& SingletonOf(ClusterState& s, const ProxyConfig*) {
  return s.proxy_config;
}
inline std::optional<MasqConfig>& SingletonOf(ClusterState& s, const MasqConfig*) {
  return s.masq_config;
}

template <typename T>
inline constexpr bool kIsSingleton =
    std::is_same_v<T, ProxyConfig> || std::is_same_v<T, MasqConfig>;

/// Checks that `kind` fits whether the object exists. Errors: InvalidArgument / NotFound.
template <typename T>
absl::Status CheckChangeFits(ObjectChange::Kind kind, const T& obj, bool exists) {
  if (kind == ObjectChange::Kind::kAdded && exists) {
    return absl::InvalidArgumentError(
        absl::StrCat("added ", ObjectKindName(obj), " ", ObjectKey(obj), ": it exists already"));
  }
  if (kind != ObjectChange::Kind::kAdded && !exists) {
    return absl::NotFoundError(
        absl::StrCat(kind == ObjectChange::Kind::kUpdated ? "updated " : "deleted ",
                     ObjectKindName(obj), " ", ObjectKey(obj), ": no such object"));
  }
  return absl::OkStatus();
}

/// Edits `objects` for a change whose object sits at `index` (when it exists). Returns the index
/// of the object that moved into the deleted one's place, if any.
template <typename T>
std::optional<size_t> EditObjects(std::vector<T>& objects, std::optional<size_t> index,
                                  ObjectChange::Kind kind, const T& obj) {
  switch (kind) {
    case ObjectChange::Kind::kAdded:
      objects.push_back(obj);
      return std::nullopt;
    case ObjectChange::Kind::kUpdated:
      objects[*index] = obj;
      return std::nullopt;
    case ObjectChange::Kind::kDeleted:
      break;
  }
  const size_t last = objects.size() - 1;
  std::optional<size_t> moved;
  if (*index != last) {
    objects[*index] = std::move(objects[last]);
    moved = *index;
  }
  objects.pop_back();
  return moved;
}

/// Reverses EditObjects given the object the change replaced or deleted (`old`).
template <typename T>
void UndoEditObjects(std::vector<T>& objects, std::optional<size_t> index, ObjectChange::Kind kind,
                     std::optional<T> old) {
  switch (kind) {
    case ObjectChange::Kind::kAdded:
      objects.pop_back();
      return;
    case ObjectChange::Kind::kUpdated:
      objects[*index] = std::move(*old);
      return;
    case ObjectChange::Kind::kDeleted:
      break;
  }
  if (*index == objects.size()) {
    objects.push_back(std::move(*old));
    return;
  }
  objects.push_back(std::move(objects[*index]));
  objects[*index] = std::move(*old);
}

}  // namespace nicflow::flowtables
