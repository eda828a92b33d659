#include "resource_server.h"

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl_fmt.h"
#include "deviceplugin/v1beta1/api.grpc.pb.h"
#include "grpc_status.h"
#include "grpcpp/grpcpp.h"
#include "nicflow/device_plugin/preferred_allocation.h"
#include "pluginregistration/v1/api.grpc.pb.h"
#include "spdlog/spdlog.h"

namespace nicflow::device_plugin {
namespace {

// How often a ListAndWatch stream checks for cancellation when nothing changes.
constexpr std::chrono::milliseconds kStreamCheckInterval{250};

ino_t InodeOf(const std::filesystem::path& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

v1beta1::ListAndWatchResponse ToListResponse(const ResourcePool::Snapshot& snapshot) {
  v1beta1::ListAndWatchResponse response;
  for (const TrackedDevice& device : *snapshot.devices) {
    v1beta1::Device* out = response.add_devices();
    out->set_id(device.vf.pci_address);
    out->set_health(HealthName(device.health));
    if (!snapshot.config->exclude_topology && device.vf.numa_node >= 0) {
      out->mutable_topology()->add_nodes()->set_id(device.vf.numa_node);
    }
  }
  return response;
}

void ToProto(const ContainerAllocation& allocation, v1beta1::ContainerAllocateResponse& out) {
  for (const auto& [key, value] : allocation.envs) (*out.mutable_envs())[key] = value;
  for (const auto& [key, value] : allocation.annotations) (*out.mutable_annotations())[key] = value;
  for (const DeviceNode& node : allocation.devices) {
    v1beta1::DeviceSpec* spec = out.add_devices();
    spec->set_container_path(node.container_path);
    spec->set_host_path(node.host_path);
    spec->set_permissions(node.permissions);
  }
  for (const std::string& name : allocation.cdi_devices) out.add_cdi_devices()->set_name(name);
}

}  // namespace

class ResourceServer::DevicePluginImpl final : public v1beta1::DevicePlugin::Service {
 public:
  DevicePluginImpl(ResourceServer& owner) : owner_(owner) {}

  grpc::Status GetDevicePluginOptions(grpc::ServerContext*, const v1beta1::Empty*,
                                      v1beta1::DevicePluginOptions* options) override {
    options->set_pre_start_required(owner_.pool_->Get().config->pre_start_check);
    options->set_get_preferred_allocation_available(true);
    return grpc::Status::OK;
  }

  grpc::Status ListAndWatch(grpc::ServerContext* context, const v1beta1::Empty*,
                            grpc::ServerWriter<v1beta1::ListAndWatchResponse>* writer) override {
    ResourcePool::Snapshot snapshot = owner_.pool_->Get();
    std::string last_sent;
    const std::string resource = snapshot.config->FullName();
    spdlog::info("{}: kubelet opened ListAndWatch", resource);
    while (!owner_.stopping_.load() && !context->IsCancelled()) {
      const v1beta1::ListAndWatchResponse response = ToListResponse(snapshot);
      std::string encoded = response.SerializeAsString();
      if (encoded != last_sent) {
        if (!writer->Write(response)) break;
        last_sent = std::move(encoded);
        spdlog::debug("{}: sent {} devices", resource, response.devices_size());
      }
      snapshot =
          owner_.pool_->WaitForChange(snapshot.version, kStreamCheckInterval, owner_.stopping_);
    }
    spdlog::info("{}: ListAndWatch closed", resource);
    return grpc::Status::OK;
  }

  grpc::Status GetPreferredAllocation(grpc::ServerContext*,
                                      const v1beta1::PreferredAllocationRequest* request,
                                      v1beta1::PreferredAllocationResponse* response) override {
    const ResourcePool::Snapshot snapshot = owner_.pool_->Get();
    for (const auto& container : request->container_requests()) {
      PreferredAllocationRequest in{
          {container.available_deviceids().begin(), container.available_deviceids().end()},
          {container.must_include_deviceids().begin(), container.must_include_deviceids().end()},
          container.allocation_size()};
      auto* out = response->add_container_responses();
      for (std::string& id :
           ChoosePreferredAllocation(snapshot.config->allocation_policy, *snapshot.devices, in)) {
        out->add_deviceids(std::move(id));
      }
    }
    return grpc::Status::OK;
  }

  grpc::Status Allocate(grpc::ServerContext*, const v1beta1::AllocateRequest* request,
                        v1beta1::AllocateResponse* response) override {
    const ResourcePool::Snapshot snapshot = owner_.pool_->Get();
    for (int i = 0; i < request->container_requests_size(); ++i) {
      const auto& ids = request->container_requests(i).devices_ids();
      const std::vector<std::string> device_ids(ids.begin(), ids.end());
      auto allocation = BuildContainerAllocation(*snapshot.config, *snapshot.devices, device_ids,
                                                 owner_.options_.allocation);
      if (!allocation.ok()) {
        const absl::Status status(
            allocation.status().code(),
            absl::StrCat("Allocate container_requests[", i, "]: ", allocation.status().message()));
        spdlog::warn("{}: {}", snapshot.config->FullName(), status.message());
        return ToGrpcStatus(status);
      }
      ToProto(*allocation, *response->add_container_responses());
      spdlog::info("{}: allocated {}", snapshot.config->FullName(), absl::StrJoin(device_ids, ","));
    }
    return grpc::Status::OK;
  }

  grpc::Status PreStartContainer(grpc::ServerContext*,
                                 const v1beta1::PreStartContainerRequest* request,
                                 v1beta1::PreStartContainerResponse*) override {
    if (!owner_.options_.pre_start_check) return grpc::Status::OK;
    const std::vector<std::string> ids(request->devices_ids().begin(),
                                       request->devices_ids().end());
    const absl::Status status = owner_.options_.pre_start_check(ids);
    if (!status.ok()) spdlog::warn("PreStartContainer: {}", status.message());
    return ToGrpcStatus(status);
  }

 private:
  ResourceServer& owner_;
};

class ResourceServer::RegistrationImpl final : public pluginregistration::Registration::Service {
 public:
  RegistrationImpl(ResourceServer& owner) : owner_(owner) {}

  grpc::Status GetInfo(grpc::ServerContext*, const pluginregistration::InfoRequest*,
                       pluginregistration::PluginInfo* info) override {
    info->set_type("DevicePlugin");
    info->set_name(owner_.pool_->Get().config->FullName());
    // Empty endpoint: the kubelet reaches the DevicePlugin service on this same socket, under
    // the path it sees (which can differ from ours inside a container).
    info->add_supported_versions("v1beta1");
    return grpc::Status::OK;
  }

  grpc::Status NotifyRegistrationStatus(grpc::ServerContext*,
                                        const pluginregistration::RegistrationStatus* status,
                                        pluginregistration::RegistrationStatusResponse*) override {
    const std::string resource = owner_.pool_->Get().config->FullName();
    if (status->plugin_registered()) {
      spdlog::info("{}: registered through the kubelet plugin watcher", resource);
    } else {
      spdlog::error("{}: plugin watcher registration failed: {}", resource, status->error());
    }
    std::lock_guard lock(owner_.watcher_mu_);
    owner_.watcher_ = WatcherRegistration{true, status->plugin_registered(), status->error()};
    return grpc::Status::OK;
  }

 private:
  ResourceServer& owner_;
};

ResourceServer::ResourceServer(std::shared_ptr<ResourcePool> pool, ResourceServerOptions options)
    : pool_(std::move(pool)), options_(std::move(options)) {}

ResourceServer::~ResourceServer() { Stop(); }

absl::Status ResourceServer::Start(const std::filesystem::path& socket_path) {
  Stop();
  stopping_ = false;
  socket_path_ = socket_path;
  ::unlink(socket_path.c_str());
  device_plugin_ = std::make_unique<DevicePluginImpl>(*this);
  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix:" + socket_path.string(), grpc::InsecureServerCredentials());
  builder.RegisterService(device_plugin_.get());
  if (options_.serve_plugin_registration) {
    registration_ = std::make_unique<RegistrationImpl>(*this);
    builder.RegisterService(registration_.get());
  }
  server_ = builder.BuildAndStart();
  if (server_ == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("gRPC server: cannot listen on ", socket_path.string()));
  }
  socket_inode_ = InodeOf(socket_path);
  return absl::OkStatus();
}

void ResourceServer::Stop() {
  if (server_ == nullptr) return;
  stopping_ = true;
  pool_->Interrupt();
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(500));
  server_->Wait();
  server_.reset();
  // Remove the socket only if it is still ours: after a kubelet restart the path may already
  // be gone or reused.
  if (socket_inode_ != 0 && InodeOf(socket_path_) == socket_inode_) ::unlink(socket_path_.c_str());
  socket_inode_ = 0;
}

WatcherRegistration ResourceServer::watcher_registration() const {
  std::lock_guard lock(watcher_mu_);
  return watcher_;
}

}  // namespace nicflow::device_plugin
