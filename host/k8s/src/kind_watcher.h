// The list+watch loop of one kind (see api_source.h for the protocol). Private to nicflow_k8s.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <random>
#include <string>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nicflow/k8s/api_source.h"
#include "nicflow/k8s/http_client.h"
#include "object_store.h"

namespace nicflow::k8s::internal {

/// What every watcher shares with ApiSource.
struct WatchContext {
  ApiConfig config;
  HttpTarget target;
  WatchOptions options;
  ObjectStore* store = nullptr;
  std::function<void()> notify_changed;                       ///< the store changed
  std::function<void()> notify_synced;                        ///< a kind finished its first list
  std::function<void(const ObjectStore::Change&)> on_change;  ///< per-event callback, may be empty
};

class KindWatcher {
 public:
  KindWatcher(const WatchContext& ctx, ResourceKind kind, uint64_t seed);
  /// The loop; returns after Stop().
  void Run();
  /// Makes Run() return soon: interrupts the open request and any backoff wait. Thread-safe.
  void Stop();
  KindStats Stats() const;

 private:
  /// How a watch ended.
  enum class WatchEnd : uint8_t { kClean, kGone, kFailed };
  struct Response;

  /// Connects, sends GET and reads the response head. `stream`: a watch, which waits on the
  /// idle timeout; a list waits at least a minute for the server to assemble the body.
  absl::StatusOr<Response> Get(const std::string& path_and_query, bool stream);
  absl::Status List();
  absl::Status ApplyList(std::vector<nlohmann::json> items, const std::string& resource_version);
  WatchEnd Watch();
  /// Applies one watch event line. kGone for a 410 ERROR, kFailed for other ERRORs or garbage.
  std::optional<WatchEnd> ApplyEvent(const std::string& line);
  void ApplyObject(ObjectEvent::Type type, const nlohmann::json& object);
  void Emit(std::optional<ObjectStore::Change> change);
  bool Sleep(std::chrono::milliseconds d);  ///< false when stopped
  std::chrono::milliseconds NextBackoff();
  void Fail(const absl::Status& status);
  void SetConnection(HttpConnection* conn);
  std::string Path() const;

  const WatchContext& ctx_;
  const KindInfo& info_;
  bool use_fallback_ = false;
  std::string resource_version_;
  int failures_ = 0;
  std::mt19937_64 rng_;

  std::atomic<bool> stopping_{false};
  mutable std::mutex mu_;  // guards conn_, stats_, wake-ups
  std::condition_variable cv_;
  HttpConnection* conn_ = nullptr;
  KindStats stats_;
};

}  // namespace nicflow::k8s::internal
