#include "daemon_impl.h"

namespace nicflow::device_plugin {

ManagedResource& Daemon::Impl::AddResource(const ResourceConfig& resource) {
  auto managed = std::make_unique<ManagedResource>();
  managed->config = resource;
  managed->pool = std::make_shared<ResourcePool>(resource);
  resources_.push_back(std::move(managed));
  return *resources_.back();
}

absl::Status Daemon::Impl::Init() {
  auto scan = scanner_.Scan();
  if (!scan.ok()) return scan.status();
  std::lock_guard lock(mu_);
  UpdateSysfsWatches(scan->watch_dirs);
  const std::vector<TrackedDevice> devices = tracker_.Update(*scan);
  LogHealthChanges(devices);
  Publish(devices);
  WatchDirectories();
  return absl::OkStatus();
}

void Daemon::Impl::WatchDirectories() {
  const auto watch = [&](const fs::path& dir, int& wd) {
    if (wd >= 0) return;
    auto added = inotify_.AddWatch(dir, kDirMask);
    if (added.ok()) {
      wd = *added;
    } else {
      spdlog::warn("{}", added.status().message());
    }
  };
  if (KubeletMode()) {
    watch(options_.kubelet_dir, kubelet_wd_);
  } else {
    watch(options_.plugins_registry_dir, registry_wd_);
  }
  watch(options_.config_path.parent_path().empty() ? fs::path(".")
                                                   : options_.config_path.parent_path(),
        config_wd_);
}

absl::Status Daemon::Impl::StartResource(ManagedResource& resource) {
  ResourceServerOptions server_options;
  server_options.allocation.use_cdi = options_.use_cdi;
  server_options.serve_plugin_registration = !KubeletMode();
  server_options.pre_start_check = [this](std::span<const std::string> ids) {
    return PreStartCheck(ids);
  };
  if (resource.server != nullptr) resource.server->Stop();
  resource.server = std::make_unique<ResourceServer>(resource.pool, std::move(server_options));
  const fs::path socket = SocketDir() / SocketName(resource.config);
  if (auto status = resource.server->Start(socket); !status.ok()) return status;
  spdlog::info("{}: serving on {}", resource.config.FullName(), socket.string());
  resource.needs_registration = KubeletMode();
  resource.registered = false;
  resource.next_attempt = Clock::now();
  resource.backoff = kRetryMin;
  return absl::OkStatus();
}

absl::Status Daemon::Impl::Start() {
  {
    std::lock_guard lock(mu_);
    for (auto& resource : resources_) {
      if (auto status = StartResource(*resource); !status.ok()) return status;
    }
    started_ = true;
  }
  stop_ = false;
  thread_ = std::thread([this] { Loop(); });
  return absl::OkStatus();
}

void Daemon::Impl::Stop() {
  stop_ = true;
  wakeup_.Wake();
  if (thread_.joinable()) thread_.join();
  std::lock_guard lock(mu_);
  for (auto& resource : resources_) {
    if (resource->server != nullptr) resource->server->Stop();
  }
  started_ = false;
}

std::vector<ResourceStatus> Daemon::Impl::Status() const {
  std::lock_guard lock(mu_);
  std::vector<ResourceStatus> out;
  for (const auto& resource : resources_) {
    ResourceStatus status;
    status.resource_name = resource->config.FullName();
    if (resource->server != nullptr) {
      status.socket_path = resource->server->socket_path();
      if (!KubeletMode()) {
        const WatcherRegistration watcher = resource->server->watcher_registration();
        status.registered = watcher.registered;
        status.registrations = watcher.registered ? 1 : 0;
      }
    }
    if (KubeletMode()) {
      status.registered = resource->registered;
      status.registrations = resource->registrations;
    }
    const auto snapshot = resource->pool->Get();
    status.devices = static_cast<int>(snapshot.devices->size());
    status.healthy = static_cast<int>(
        std::count_if(snapshot.devices->begin(), snapshot.devices->end(),
                      [](const TrackedDevice& d) { return d.health == Health::kHealthy; }));
    out.push_back(std::move(status));
  }
  return out;
}

void Daemon::Impl::Reload() {
  auto text = ReadFile(options_.config_path);
  if (!text.ok()) {
    spdlog::warn("{} (keeping the current configuration)", text.status().message());
    return;
  }
  if (*text == config_text_ || *text == rejected_config_text_) return;
  auto config = ParseConfig(*text, options_.default_prefix);
  if (!config.ok()) {
    spdlog::error("config {}: reload rejected, keeping the last good configuration: {}",
                  options_.config_path.string(), config.status().message());
    rejected_config_text_ = *text;
    return;
  }
  spdlog::info("config {}: reloaded ({} resources)", options_.config_path.string(),
               config->resources.size());
  config_text_ = *std::move(text);
  rejected_config_text_.clear();
  ApplyConfig(*std::move(config));
  Publish(last_devices_);
}

void Daemon::Impl::ApplyConfig(PluginConfig config) {
  std::vector<std::unique_ptr<ManagedResource>> previous = std::move(resources_);
  resources_.clear();
  for (const ResourceConfig& wanted : config.resources) {
    const auto it = std::find_if(previous.begin(), previous.end(), [&](const auto& r) {
      return r != nullptr && r->config.FullName() == wanted.FullName();
    });
    if (it == previous.end()) {
      ManagedResource& added = AddResource(wanted);
      spdlog::info("{}: added by config reload", wanted.FullName());
      if (!started_) continue;
      if (auto status = StartResource(added); !status.ok()) spdlog::error("{}", status.message());
      continue;
    }
    std::unique_ptr<ManagedResource> kept = std::move(*it);
    // pre_start_required is part of the registration, so changing it means registering again.
    const bool reregister = kept->config.pre_start_check != wanted.pre_start_check;
    kept->config = wanted;
    kept->pool->SetConfig(wanted);
    if (reregister && started_) {
      if (auto status = StartResource(*kept); !status.ok()) spdlog::error("{}", status.message());
    }
    resources_.push_back(std::move(kept));
  }
  for (auto& removed : previous) {
    if (removed == nullptr) continue;
    spdlog::info("{}: removed by config reload", removed->config.FullName());
    if (removed->server != nullptr) removed->server->Stop();
    if (options_.use_cdi) {
      std::error_code ec;
      fs::remove(options_.cdi_dir / CdiSpecFileName(removed->config), ec);
    }
  }
  config_ = std::move(config);
}

void Daemon::Impl::CheckSockets() {
  WatchDirectories();
  if (!started_) return;
  const ino_t kubelet_inode = InodeOf(options_.kubelet_dir / kKubeletSocket);
  for (auto& resource : resources_) {
    if (resource->server != nullptr && InodeOf(resource->server->socket_path()) == 0) {
      spdlog::warn("{}: socket {} was removed (kubelet restart?); serving again",
                   resource->config.FullName(), resource->server->socket_path().string());
      if (auto status = StartResource(*resource); !status.ok()) {
        spdlog::error("{}", status.message());
      }
    } else if (KubeletMode() && resource->registered && kubelet_inode != 0 &&
               kubelet_inode != resource->kubelet_inode) {
      // A new kubelet.sock: the kubelet restarted and forgot every plugin.
      spdlog::info("{}: kubelet.sock was re-created; registering again",
                   resource->config.FullName());
      resource->needs_registration = true;
      resource->registered = false;
      resource->next_attempt = Clock::now();
      resource->backoff = kRetryMin;
    }
  }
}

void Daemon::Impl::TryRegistrations() {
  if (!KubeletMode() || !started_) return;
  const fs::path kubelet_socket = options_.kubelet_dir / kKubeletSocket;
  const ino_t kubelet_inode = InodeOf(kubelet_socket);
  if (kubelet_inode == 0) return;
  for (auto& resource : resources_) {
    if (!resource->needs_registration || Clock::now() < resource->next_attempt) continue;
    RegisterArgs args;
    args.endpoint = resource->server->socket_path().filename().string();
    args.resource_name = resource->config.FullName();
    args.pre_start_required = resource->config.pre_start_check;
    const absl::Status status = RegisterWithKubelet(kubelet_socket, args, kRegisterTimeout);
    if (status.ok()) {
      spdlog::info("{}: registered with {} (endpoint {})", args.resource_name,
                   kubelet_socket.string(), args.endpoint);
      resource->needs_registration = false;
      resource->registered = true;
      ++resource->registrations;
      resource->kubelet_inode = kubelet_inode;
      continue;
    }
    spdlog::warn("{}; retrying in {} ms", status.message(), resource->backoff.count());
    resource->next_attempt = Clock::now() + resource->backoff;
    resource->backoff = std::min(resource->backoff * 2, kRetryMax);
  }
}

absl::Status Daemon::Impl::PreStartCheck(std::span<const std::string> device_ids) {
  std::lock_guard lock(pre_start_mu_);
  auto scan = pre_start_scanner_.Scan();
  if (!scan.ok()) return absl::UnavailableError(std::string(scan.status().message()));
  for (const std::string& id : device_ids) {
    const auto vf = scan->vfs.find(id);
    if (vf == scan->vfs.end()) {
      return absl::FailedPreconditionError(absl::StrCat("device ", id, " is gone from sysfs"));
    }
    const std::string reason = UnhealthyReason(vf->second, scan->pfs);
    if (!reason.empty()) {
      return absl::FailedPreconditionError(absl::StrCat("device ", id, " is Unhealthy: ", reason));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Daemon>> Daemon::Create(DaemonOptions options) {
  auto text = ReadFile(options.config_path);
  if (!text.ok()) return text.status();
  auto config = ParseConfig(*text, options.default_prefix);
  if (!config.ok()) {
    return absl::Status(config.status().code(), absl::StrCat(options.config_path.string(), ": ",
                                                             config.status().message()));
  }
  const fs::path socket_dir = options.registration_mode == RegistrationMode::kKubelet
                                  ? options.kubelet_dir
                                  : options.plugins_registry_dir;
  std::error_code ec;
  if (!fs::is_directory(socket_dir, ec)) {
    return absl::FailedPreconditionError(
        absl::StrCat("socket directory ", socket_dir.string(), " does not exist"));
  }
  if (options.use_cdi && !fs::is_directory(options.cdi_dir, ec)) {
    return absl::FailedPreconditionError(
        absl::StrCat("CDI directory ", options.cdi_dir.string(), " does not exist"));
  }
  auto inotify = Inotify::Create();
  if (!inotify.ok()) return inotify.status();
  auto wakeup = WakeupFd::Create();
  if (!wakeup.ok()) return wakeup.status();
  std::optional<LinkEventSocket> links;
  if (options.watch_netlink.value_or(fs::equivalent(options.sysfs_root, "/sys", ec))) {
    auto socket = LinkEventSocket::Create();
    if (socket.ok()) {
      links = std::move(*socket);
    } else {
      spdlog::warn("{}: link changes are seen by polling only", socket.status().message());
    }
  }
  auto impl = std::make_unique<Impl>(std::move(options), *std::move(config), *std::move(text),
                                     *std::move(inotify), *std::move(wakeup), std::move(links));
  if (auto status = impl->Init(); !status.ok()) return status;
  return std::unique_ptr<Daemon>(new Daemon(std::move(impl)));
}

Daemon::Daemon(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Daemon::~Daemon() = default;
absl::Status Daemon::Start() { return impl_->Start(); }
void Daemon::Stop() { impl_->Stop(); }
std::vector<ResourceStatus> Daemon::Status() const { return impl_->Status(); }

}  // namespace nicflow::device_plugin
