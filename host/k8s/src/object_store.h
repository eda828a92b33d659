// The objects ApiSource knows, per kind, decoded by the manifest loader. Private to nicflow_k8s.
//
// Each kind's map is written only by that kind's watch thread and read by the snapshot thread;
// one mutex guards all of them (writes are short: decoding happens before the lock is taken).
#pragma once

#include <array>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "nicflow/flowtables/model.h"
#include "nicflow/k8s/api_source.h"

namespace nicflow::k8s::internal {

inline constexpr size_t kKindCount = 7;

/// Where a kind lives in the API.
struct KindInfo {
  ResourceKind kind;
  std::string_view name;         ///< "EndpointSlice"
  std::string_view api_version;  ///< "discovery.k8s.io/v1"
  std::string_view path;         ///< collection path, all namespaces: "/apis/.../endpointslices"
  bool namespaced;
  /// Older served version to try when `path` is 404 (ServiceCIDR v1beta1); empty if none.
  std::string_view fallback_api_version;
  std::string_view fallback_path;
};
const KindInfo& InfoOf(ResourceKind kind);

/// An object as the loader decoded it, with what it was decoded from.
struct DecodedObject {
  std::string ns;
  std::string name;
  std::string resource_version;
  std::string canonical;  ///< the JSON the loader read (volatile fields removed)
  KubeObject object;
  std::vector<std::string> notes;  ///< the loader's warnings for it
};

/// Decodes one API object of `kind` (apiVersion/kind are filled in when a list item omits them).
/// Errors: InvalidArgument naming the object and field (the loader's message).
absl::StatusOr<DecodedObject> DecodeApiObject(const KindInfo& info, nlohmann::json object);

/// "ns/name" or "name".
std::string ObjectKey(std::string_view ns, std::string_view name);

/// Reads metadata.namespace/name/resourceVersion of a raw object (for deletes and errors).
void ReadMeta(const nlohmann::json& object, std::string& ns, std::string& name,
              std::string& resource_version);

class ObjectStore {
 public:
  /// What one update did, for the per-event callback.
  struct Change {
    ObjectEvent::Type type;
    ResourceKind kind;
    std::string ns, name, resource_version;
    KubeObject object;
    std::optional<KubeObject> previous;
  };

  /// Stores or replaces an object that decoded. Returns the change, nullopt if nothing the
  /// compiler reads changed (then no snapshot is needed).
  std::optional<Change> Upsert(ResourceKind kind, DecodedObject object);
  /// Records that the object `key` of `kind` failed to decode with `error`; an earlier good
  /// version stays stored.
  void Reject(ResourceKind kind, const std::string& key, std::string error);
  /// Removes an object; nullopt when it was not stored.
  std::optional<Change> Remove(ResourceKind kind, std::string_view ns, std::string_view name,
                               std::string resource_version);
  /// The keys stored for `kind` (for relist diffs).
  std::vector<std::string> Keys(ResourceKind kind) const;
  size_t Count(ResourceKind kind) const;

  /// Makes `state` (the previous result of Refresh, or empty) a complete ClusterState: every
  /// stored object, sorted by kind then key, with the loader's warnings and the current
  /// rejections as notes. Only the objects that changed since the last Refresh are copied (a
  /// kind is rebuilt after its first list or more than 256 changes), so one Pod update does not
  /// copy 20k Pods. One caller (the snapshot thread) owns `state`.
  void Refresh(flowtables::ClusterState& state);
  /// Current rejections, one line each.
  std::vector<std::string> Rejected() const;

 private:
  struct Stored {
    DecodedObject decoded;
  };
  mutable std::mutex mu_;
  std::array<std::map<std::string, Stored>, kKindCount> objects_;
  std::array<std::map<std::string, std::string>, kKindCount> rejected_;
  // What Refresh has to redo: every object of a kind (first time), or only these keys.
  std::array<bool, kKindCount> rebuild_ = {true, true, true, true, true, true, true};
  std::array<std::set<std::string>, kKindCount> changed_;
  std::array<std::map<std::string, std::vector<std::string>>, kKindCount> notes_;  // by key
};

}  // namespace nicflow::k8s::internal
