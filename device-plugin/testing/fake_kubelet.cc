#include "fake_kubelet.h"

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"

namespace nicflow::device_plugin::testing {
namespace {

absl::Status FromGrpc(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

std::chrono::system_clock::time_point Deadline(milliseconds timeout = milliseconds(5000)) {
  return std::chrono::system_clock::now() + timeout;
}

}  // namespace

// The kubelet's side of one registered plugin.
struct FakeKubelet::PluginConnection {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1beta1::DevicePlugin::Stub> stub;
  v1beta1::DevicePluginOptions options;
  grpc::ClientContext stream_context;
  std::thread reader;
  DeviceList devices;
  int updates = 0;
  bool watching = false;

  ~PluginConnection() {
    stream_context.TryCancel();
    if (reader.joinable()) reader.join();
  }
};

class FakeKubelet::RegistrationService final : public v1beta1::Registration::Service {
 public:
  explicit RegistrationService(FakeKubelet& kubelet) : kubelet_(kubelet) {}

  grpc::Status Register(grpc::ServerContext*, const v1beta1::RegisterRequest* request,
                        v1beta1::Empty*) override {
    if (request->version() != "v1beta1") {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "unsupported API version " + request->version());
    }
    if (request->resource_name().find('/') == std::string::npos) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "invalid resource name " + request->resource_name());
    }
    kubelet_.OnRegister(*request);
    return grpc::Status::OK;
  }

 private:
  FakeKubelet& kubelet_;
};

FakeKubelet::FakeKubelet(std::filesystem::path device_plugin_dir)
    : dir_(std::move(device_plugin_dir)) {}

FakeKubelet::~FakeKubelet() { Stop(); }

absl::Status FakeKubelet::Start() {
  service_ = std::make_unique<RegistrationService>(*this);
  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix:" + (dir_ / "kubelet.sock").string(),
                           grpc::InsecureServerCredentials());
  builder.RegisterService(service_.get());
  server_ = builder.BuildAndStart();
  if (server_ == nullptr) return absl::UnavailableError("fake kubelet: cannot listen");
  return absl::OkStatus();
}

void FakeKubelet::DropConnections() {
  std::vector<std::thread> dials;
  std::map<std::string, std::shared_ptr<PluginConnection>> connections;
  {
    std::lock_guard lock(mu_);
    dials.swap(dial_threads_);
  }
  for (std::thread& thread : dials) thread.join();
  {
    std::lock_guard lock(mu_);
    connections.swap(connections_);
  }
  connections.clear();  // cancels streams and joins readers outside the lock
}

void FakeKubelet::Stop() {
  if (server_ != nullptr) {
    server_->Shutdown(Deadline(milliseconds(200)));
    server_->Wait();
    server_.reset();
  }
  DropConnections();
}

absl::Status FakeKubelet::Restart() {
  Stop();
  for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
    if (entry.is_socket()) std::filesystem::remove(entry.path());
  }
  return Start();
}

void FakeKubelet::OnRegister(const v1beta1::RegisterRequest& request) {
  std::lock_guard lock(mu_);
  registrations_.push_back(request);
  changed_.notify_all();
  const std::string target = "unix:" + (dir_ / request.endpoint()).string();
  dial_threads_.emplace_back(
      [this, resource = request.resource_name(), target] { (void)Connect(resource, target); });
}

absl::Status FakeKubelet::Connect(const std::string& resource, const std::string& target) {
  auto connection = std::make_shared<PluginConnection>();
  connection->channel = grpc::CreateChannel(target, grpc::InsecureChannelCredentials());
  connection->stub = v1beta1::DevicePlugin::NewStub(connection->channel);
  grpc::ClientContext context;
  context.set_deadline(Deadline());
  const grpc::Status status =
      connection->stub->GetDevicePluginOptions(&context, v1beta1::Empty(), &connection->options);
  if (!status.ok()) return FromGrpc(status);
  connection->watching = true;
  std::shared_ptr<PluginConnection> replaced;
  {
    // Publish the connection before its reader can deliver the first list.
    std::lock_guard lock(mu_);
    replaced = std::move(connections_[resource]);
    connections_[resource] = connection;
    connection->reader =
        std::thread([this, resource, raw = connection.get()] { ReadStream(resource, raw); });
  }
  return absl::OkStatus();  // `replaced` is cancelled and joined here, outside the lock
}

void FakeKubelet::ReadStream(const std::string& resource, PluginConnection* connection) {
  auto reader = connection->stub->ListAndWatch(&connection->stream_context, v1beta1::Empty());
  v1beta1::ListAndWatchResponse response;
  while (reader->Read(&response)) {
    std::lock_guard lock(mu_);
    connection->devices.assign(response.devices().begin(), response.devices().end());
    ++connection->updates;
    changed_.notify_all();
  }
  reader->Finish();
  std::lock_guard lock(mu_);
  connection->watching = false;
  changed_.notify_all();
  (void)resource;
}

std::vector<v1beta1::RegisterRequest> FakeKubelet::registrations() const {
  std::lock_guard lock(mu_);
  return registrations_;
}

bool FakeKubelet::WaitForRegistrations(const std::string& resource, int count,
                                       milliseconds timeout) {
  std::unique_lock lock(mu_);
  return changed_.wait_for(lock, timeout, [&] {
    int seen = 0;
    for (const auto& request : registrations_) seen += request.resource_name() == resource;
    return seen >= count;
  });
}

absl::StatusOr<pluginregistration::PluginInfo> FakeKubelet::RegisterThroughWatcher(
    const std::filesystem::path& socket, bool accept) {
  const auto channel =
      grpc::CreateChannel("unix:" + socket.string(), grpc::InsecureChannelCredentials());
  const auto stub = pluginregistration::Registration::NewStub(channel);
  pluginregistration::PluginInfo info;
  {
    grpc::ClientContext context;
    context.set_deadline(Deadline());
    if (auto status = stub->GetInfo(&context, {}, &info); !status.ok()) return FromGrpc(status);
  }
  absl::Status connected = absl::OkStatus();
  if (accept) {
    const std::string endpoint = info.endpoint().empty() ? socket.string() : info.endpoint();
    connected = Connect(info.name(), "unix:" + endpoint);
  }
  pluginregistration::RegistrationStatus status;
  status.set_plugin_registered(accept && connected.ok());
  if (!accept) status.set_error("rejected by test");
  if (!connected.ok()) status.set_error(std::string(connected.message()));
  grpc::ClientContext context;
  context.set_deadline(Deadline());
  pluginregistration::RegistrationStatusResponse response;
  if (auto notify = stub->NotifyRegistrationStatus(&context, status, &response); !notify.ok()) {
    return FromGrpc(notify);
  }
  if (!connected.ok()) return connected;
  return info;
}

std::shared_ptr<FakeKubelet::PluginConnection> FakeKubelet::Connection(
    const std::string& resource) const {
  std::lock_guard lock(mu_);
  const auto it = connections_.find(resource);
  return it == connections_.end() ? nullptr : it->second;
}

std::optional<DeviceList> FakeKubelet::WaitForDevices(
    const std::string& resource, const std::function<bool(const DeviceList&)>& predicate,
    milliseconds timeout) {
  std::unique_lock lock(mu_);
  std::optional<DeviceList> found;
  changed_.wait_for(lock, timeout, [&] {
    const auto it = connections_.find(resource);
    if (it == connections_.end() || it->second->updates == 0) return false;
    if (!predicate(it->second->devices)) return false;
    found = it->second->devices;
    return true;
  });
  return found;
}

DeviceList FakeKubelet::Devices(const std::string& resource) const {
  std::lock_guard lock(mu_);
  const auto it = connections_.find(resource);
  return it == connections_.end() ? DeviceList() : it->second->devices;
}

int FakeKubelet::Updates(const std::string& resource) const {
  std::lock_guard lock(mu_);
  const auto it = connections_.find(resource);
  return it == connections_.end() ? 0 : it->second->updates;
}

bool FakeKubelet::Watching(const std::string& resource) const {
  std::lock_guard lock(mu_);
  const auto it = connections_.find(resource);
  return it != connections_.end() && it->second->watching;
}

absl::StatusOr<v1beta1::DevicePluginOptions> FakeKubelet::Options(
    const std::string& resource) const {
  const auto connection = Connection(resource);
  if (connection == nullptr) return absl::NotFoundError("no plugin for " + resource);
  return connection->options;
}

absl::Status FakeKubelet::PingOptions(const std::string& resource) {
  const auto connection = Connection(resource);
  if (connection == nullptr) return absl::NotFoundError("no plugin for " + resource);
  grpc::ClientContext context;
  context.set_deadline(Deadline());
  v1beta1::DevicePluginOptions options;
  return FromGrpc(connection->stub->GetDevicePluginOptions(&context, v1beta1::Empty(), &options));
}

absl::StatusOr<v1beta1::AllocateResponse> FakeKubelet::Allocate(
    const std::string& resource, const std::vector<std::vector<std::string>>& containers) {
  const auto connection = Connection(resource);
  if (connection == nullptr) return absl::NotFoundError("no plugin for " + resource);
  v1beta1::AllocateRequest request;
  for (const auto& ids : containers) {
    auto* container = request.add_container_requests();
    for (const std::string& id : ids) container->add_devices_ids(id);
  }
  grpc::ClientContext context;
  context.set_deadline(Deadline());
  v1beta1::AllocateResponse response;
  if (auto status = connection->stub->Allocate(&context, request, &response); !status.ok()) {
    return FromGrpc(status);
  }
  return response;
}

absl::StatusOr<std::vector<std::string>> FakeKubelet::GetPreferredAllocation(
    const std::string& resource, const std::vector<std::string>& available,
    const std::vector<std::string>& must_include, int size) {
  const auto connection = Connection(resource);
  if (connection == nullptr) return absl::NotFoundError("no plugin for " + resource);
  v1beta1::PreferredAllocationRequest request;
  auto* container = request.add_container_requests();
  for (const std::string& id : available) container->add_available_deviceids(id);
  for (const std::string& id : must_include) container->add_must_include_deviceids(id);
  container->set_allocation_size(size);
  grpc::ClientContext context;
  context.set_deadline(Deadline());
  v1beta1::PreferredAllocationResponse response;
  if (auto status = connection->stub->GetPreferredAllocation(&context, request, &response);
      !status.ok()) {
    return FromGrpc(status);
  }
  if (response.container_responses_size() != 1) {
    return absl::InternalError(
        absl::StrCat("expected 1 container response, got ", response.container_responses_size()));
  }
  const auto& ids = response.container_responses(0).deviceids();
  return std::vector<std::string>(ids.begin(), ids.end());
}

absl::Status FakeKubelet::PreStartContainer(const std::string& resource,
                                            const std::vector<std::string>& ids) {
  const auto connection = Connection(resource);
  if (connection == nullptr) return absl::NotFoundError("no plugin for " + resource);
  v1beta1::PreStartContainerRequest request;
  for (const std::string& id : ids) request.add_devices_ids(id);
  grpc::ClientContext context;
  context.set_deadline(Deadline());
  v1beta1::PreStartContainerResponse response;
  return FromGrpc(connection->stub->PreStartContainer(&context, request, &response));
}

}  // namespace nicflow::device_plugin::testing
