// gRPC server for one resource: the v1beta1 DevicePlugin service on the resource's unix socket,
// plus the pluginregistration Registration service when registering through the plugin watcher.
// Private to the library (gRPC types stay out of the public headers).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>

#include "absl/status/status.h"
#include "nicflow/device_plugin/allocation.h"
#include "nicflow/device_plugin/resource_pool.h"

namespace grpc {
class Server;
class Service;
}  // namespace grpc

namespace nicflow::device_plugin {

/// Checks devices right before a container starts (PreStartContainer); returns
/// FailedPrecondition naming the first device that is not healthy now.
using PreStartCheck = std::function<absl::Status(std::span<const std::string> device_ids)>;

struct ResourceServerOptions {
  AllocationOptions allocation;
  /// Serve pluginregistration.Registration as well (plugin watcher mode).
  bool serve_plugin_registration = false;
  PreStartCheck pre_start_check;
};

/// Outcome of the last plugin watcher NotifyRegistrationStatus.
struct WatcherRegistration {
  bool notified = false;
  bool registered = false;
  std::string error;
};

class ResourceServer {
 public:
  ResourceServer(std::shared_ptr<ResourcePool> pool, ResourceServerOptions options);
  ~ResourceServer();
  ResourceServer(const ResourceServer&) = delete;
  ResourceServer& operator=(const ResourceServer&) = delete;

  /// Listens on `socket_path` (a stale file there is removed first).
  /// Errors: Unavailable naming the socket when gRPC cannot bind it.
  absl::Status Start(const std::filesystem::path& socket_path);

  /// Ends open ListAndWatch streams, stops the server and removes its socket file if it is
  /// still the one this server created.
  void Stop();

  bool running() const { return server_ != nullptr; }
  const std::filesystem::path& socket_path() const { return socket_path_; }
  WatcherRegistration watcher_registration() const;

 private:
  class DevicePluginImpl;
  class RegistrationImpl;

  std::shared_ptr<ResourcePool> pool_;
  ResourceServerOptions options_;
  std::filesystem::path socket_path_;
  std::atomic<bool> stopping_{false};
  std::unique_ptr<DevicePluginImpl> device_plugin_;
  std::unique_ptr<RegistrationImpl> registration_;
  std::unique_ptr<grpc::Server> server_;
  ino_t socket_inode_ = 0;
  mutable std::mutex watcher_mu_;
  WatcherRegistration watcher_;
};

}  // namespace nicflow::device_plugin
