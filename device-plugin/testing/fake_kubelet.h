// A kubelet stand-in for tests and benchmarks: the v1beta1 Registration service on
// <dir>/kubelet.sock, and the kubelet's side of every registered plugin (GetDevicePluginOptions,
// a ListAndWatch reader, Allocate, GetPreferredAllocation, PreStartContainer). It also plays the
// plugin watcher for sockets in a plugins_registry directory.
//
// Like the real kubelet it answers Register first and dials the plugin afterwards, on its own
// thread, and a new registration for a resource replaces the old connection.
#pragma once

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "deviceplugin/v1beta1/api.grpc.pb.h"
#include "pluginregistration/v1/api.grpc.pb.h"

namespace grpc {
class Server;
}

namespace nicflow::device_plugin::testing {

using DeviceList = std::vector<v1beta1::Device>;
using std::chrono::milliseconds;

class FakeKubelet {
 public:
  explicit FakeKubelet(std::filesystem::path device_plugin_dir);
  ~FakeKubelet();
  FakeKubelet(const FakeKubelet&) = delete;
  FakeKubelet& operator=(const FakeKubelet&) = delete;

  /// Listens on <dir>/kubelet.sock.
  absl::Status Start();
  /// Stops serving and drops every plugin connection (a kubelet crash).
  void Stop();
  /// What a kubelet restart does: stop, delete every socket in the directory, start again.
  absl::Status Restart();

  /// Register requests received so far, oldest first.
  std::vector<v1beta1::RegisterRequest> registrations() const;
  /// Waits until `resource` has registered `count` times in total.
  bool WaitForRegistrations(const std::string& resource, int count, milliseconds timeout);

  /// Plays the plugin watcher for `socket`: GetInfo, dial the plugin, NotifyRegistrationStatus.
  absl::StatusOr<pluginregistration::PluginInfo> RegisterThroughWatcher(
      const std::filesystem::path& socket, bool accept = true);

  /// Waits for a ListAndWatch update of `resource` satisfying `predicate` (checked against the
  /// latest list first). Returns that list, or nullopt on timeout.
  std::optional<DeviceList> WaitForDevices(const std::string& resource,
                                           const std::function<bool(const DeviceList&)>& predicate,
                                           milliseconds timeout);
  /// Latest list and number of updates received for `resource`.
  DeviceList Devices(const std::string& resource) const;
  int Updates(const std::string& resource) const;
  /// Whether the ListAndWatch stream of `resource` is open.
  bool Watching(const std::string& resource) const;

  /// Options the plugin returned when the kubelet connected.
  absl::StatusOr<v1beta1::DevicePluginOptions> Options(const std::string& resource) const;
  /// Calls GetDevicePluginOptions again (the cheapest RPC: a latency baseline).
  absl::Status PingOptions(const std::string& resource);
  /// One ContainerAllocateRequest per entry of `containers`.
  absl::StatusOr<v1beta1::AllocateResponse> Allocate(
      const std::string& resource, const std::vector<std::vector<std::string>>& containers);
  absl::StatusOr<std::vector<std::string>> GetPreferredAllocation(
      const std::string& resource, const std::vector<std::string>& available,
      const std::vector<std::string>& must_include, int size);
  absl::Status PreStartContainer(const std::string& resource, const std::vector<std::string>& ids);

 private:
  class RegistrationService;
  struct PluginConnection;

  void OnRegister(const v1beta1::RegisterRequest& request);
  absl::Status Connect(const std::string& resource, const std::string& target);
  void ReadStream(const std::string& resource, PluginConnection* connection);
  std::shared_ptr<PluginConnection> Connection(const std::string& resource) const;
  void DropConnections();

  const std::filesystem::path dir_;
  std::unique_ptr<RegistrationService> service_;
  std::unique_ptr<grpc::Server> server_;
  mutable std::mutex mu_;
  std::condition_variable changed_;
  std::vector<v1beta1::RegisterRequest> registrations_;
  std::map<std::string, std::shared_ptr<PluginConnection>> connections_;
  std::vector<std::thread> dial_threads_;
};

}  // namespace nicflow::device_plugin::testing
