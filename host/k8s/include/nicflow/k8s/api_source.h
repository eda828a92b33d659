// ApiSource: the cluster as the Kubernetes API server sees it, kept current by list+watch and
// handed to the agent as complete flowtables::ClusterState snapshots.
//
// Design. One thread per kind (Namespaces, Pods, Services, EndpointSlices, NetworkPolicies,
// Nodes, ServiceCIDRs) runs the informer loop client-go popularised:
//   1. LIST (paged with limit/continue) and remember the list's resourceVersion;
//   2. WATCH from it with allowWatchBookmarks=true; ADDED/MODIFIED/DELETED update the kind's
//      store, BOOKMARK only advances the resourceVersion;
//   3. when the server ends the watch (its timeoutSeconds), watch again from the last version at
//      once; when the connection drops or fails, wait with exponential backoff and jitter first;
//   4. on "410 Gone" (the HTTP status, or an ERROR event whose Status has code 410: the version
//      is older than the server's watch cache) LIST again; the new list is diffed against the
//      store so only real changes surface.
// Objects are decoded by the manifest loader (flowtables/loader.h) when they arrive, so a
// snapshot is an assembly of already-validated objects, not a reparse. An object the loader
// rejects is reported (KindStats::decode_errors and ApiSourceStats::rejected at once, the next
// snapshot's notes; naming object and field) and skipped; if an earlier version of it decoded,
// that version stays — a bad update never removes what is installed for the object and never
// poisons the rest of the store. A rejection alone does not trigger a snapshot.
//
// Snapshots. A change marks the state dirty; the snapshot thread waits until no change came for
// `debounce`, but no longer than `max_delay` after the first, then brings its ClusterState up to
// date (objects sorted by namespace/name; only the objects that changed are copied into it) and
// calls on_change with it (a reference valid during the call). A burst of events thus yields one
// snapshot. No snapshot is produced before every kind finished its first list: a state without,
// say, its NetworkPolicies would open traffic the cluster closes. A kind the server does not
// serve (404, e.g. ServiceCIDR before Kubernetes 1.33) counts as listed and empty. Updates that
// change nothing the compiler reads (resourceVersion, managedFields, status.conditions, ...) do
// not produce a snapshot.
//
// Threads. on_change runs on the snapshot thread, on_event on the watch threads; each callback
// is serialized with itself. Neither may call Stop(). Stats() and Stop() are thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "nicflow/flowtables/model.h"
#include "nicflow/k8s/api_config.h"

namespace nicflow::k8s {

/// The kinds ApiSource watches.
enum class ResourceKind : uint8_t {
  kNamespace,
  kPod,
  kService,
  kEndpointSlice,
  kNetworkPolicy,
  kNode,
  kServiceCidr,
};
/// "Namespace", "Pod", ..., "ServiceCIDR".
std::string_view ResourceKindName(ResourceKind kind);
/// Every kind, in the order above.
std::vector<ResourceKind> AllResourceKinds();

/// One decoded object of any watched kind.
using KubeObject = std::variant<flowtables::Namespace, flowtables::Pod, flowtables::Service,
                                flowtables::EndpointSlice, flowtables::NetworkPolicy,
                                flowtables::Node, flowtables::ServiceCidr>;

/// One change to the store, for incremental consumers.
struct ObjectEvent {
  enum class Type : uint8_t { kAdded, kModified, kDeleted };
  Type type = Type::kAdded;
  ResourceKind kind = ResourceKind::kPod;
  std::string ns;  ///< empty for cluster-scoped kinds
  std::string name;
  std::string resource_version;
  /// The new object (added, modified) or the last one stored (deleted). Valid during the call.
  const KubeObject* object = nullptr;
  /// The object before a modification; nullptr otherwise. Valid during the call.
  const KubeObject* previous = nullptr;
};

/// How ApiSource lists and watches.
struct WatchOptions {
  std::vector<ResourceKind> kinds = AllResourceKinds();
  std::chrono::milliseconds debounce{100};    ///< quiet time before a snapshot
  std::chrono::milliseconds max_delay{1000};  ///< longest a change waits for its snapshot
  std::chrono::milliseconds initial_backoff{250};
  std::chrono::milliseconds max_backoff{30000};
  uint32_t watch_timeout_s = 300;  ///< a watch asks for timeoutSeconds in [T, 2T]
  uint32_t list_page_size = 500;   ///< limit per LIST page
  size_t max_event_bytes = 16u << 20;
  size_t max_list_bytes = 512u << 20;
  uint64_t jitter_seed = 0;  ///< seeds the backoff jitter (tests: fixed; 0: from the clock)
};

/// Counters of one kind.
struct KindStats {
  ResourceKind kind = ResourceKind::kPod;
  bool synced = false;  ///< the first list completed
  bool served = true;   ///< false when the server answered 404 for the kind
  uint64_t objects = 0;
  uint64_t lists = 0;
  uint64_t relists_gone = 0;  ///< relists after 410 Gone
  uint64_t watches = 0;       ///< watch requests started
  uint64_t reconnects = 0;    ///< watches restarted after a failure (with backoff)
  uint64_t events = 0;        ///< ADDED/MODIFIED/DELETED received
  uint64_t bookmarks = 0;
  uint64_t decode_errors = 0;  ///< objects the loader rejected
  std::string resource_version;
  std::string last_error;  ///< the last failure, empty when none
};

struct ApiSourceStats {
  std::vector<KindStats> kinds;
  uint64_t snapshots = 0;
  /// Objects currently rejected, one line each naming kind, object and field.
  std::vector<std::string> rejected;
};

class ApiSource {
 public:
  using SnapshotCallback = std::function<void(const flowtables::ClusterState&)>;
  using EventCallback = std::function<void(const ObjectEvent&)>;

  /// Starts watching. `on_change` receives every snapshot (see the design comment); `on_event`,
  /// if set, every object change, including the ADDED events of the first lists and the
  /// differences a relist finds. Errors: InvalidArgument for an unusable config (server URL,
  /// options: empty kinds, zero debounce with a max_delay below it). Failures to reach the server
  /// are not errors here: they are retried and reported in Stats().
  static absl::StatusOr<std::unique_ptr<ApiSource>> Start(ApiConfig config, WatchOptions options,
                                                          SnapshotCallback on_change,
                                                          EventCallback on_event = nullptr);
  /// As above with default WatchOptions.
  static absl::StatusOr<std::unique_ptr<ApiSource>> Start(ApiConfig config,
                                                          SnapshotCallback on_change);

  virtual ~ApiSource() = default;
  /// Counters, versions and errors per kind.
  virtual ApiSourceStats Stats() const = 0;
  /// Whether every kind finished its first list.
  virtual bool Synced() const = 0;
  /// Stops every thread (interrupting open watches) and returns when they have ended; no
  /// callback runs afterwards. Idempotent; the destructor calls it.
  virtual void Stop() = 0;
};

}  // namespace nicflow::k8s
