// PodResources v1 client (gRPC over the kubelet's unix socket) and VF resolution through sysfs.
#include "nicflow/k8s/pod_resources.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <filesystem>
#include <regex>
#include <tuple>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "nicflow/flowtables/status.h"
#include "podresources/v1/api.grpc.pb.h"

namespace nicflow::k8s {
namespace {

namespace fs = std::filesystem;

absl::Status FromGrpc(const grpc::Status& s, const std::string& socket) {
  std::string msg = absl::StrCat("kubelet PodResources at ", socket, ": ", s.error_message());
  switch (s.error_code()) {
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return absl::DeadlineExceededError(msg);
    case grpc::StatusCode::UNIMPLEMENTED:
      return absl::UnimplementedError(msg);
    case grpc::StatusCode::PERMISSION_DENIED:
      return absl::PermissionDeniedError(msg);
    case grpc::StatusCode::UNAVAILABLE:
      return absl::UnavailableError(msg);
    default:
      return absl::UnknownError(msg);
  }
}

class PodResourcesClientImpl final : public PodResourcesClient {
 public:
  PodResourcesClientImpl(std::string socket, std::chrono::milliseconds timeout)
      : socket_(std::move(socket)), timeout_(timeout) {
    channel_ =
        grpc::CreateChannel(absl::StrCat("unix://", socket_), grpc::InsecureChannelCredentials());
    stub_ = v1::PodResourcesLister::NewStub(channel_);
  }

  absl::StatusOr<std::vector<PodDevice>> List() override {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + timeout_);
    v1::ListPodResourcesRequest req;
    v1::ListPodResourcesResponse resp;
    grpc::Status s = stub_->List(&ctx, req, &resp);
    if (!s.ok()) return FromGrpc(s, socket_);
    std::vector<PodDevice> out;
    for (const v1::PodResources& pod : resp.pod_resources()) {
      for (const v1::ContainerResources& c : pod.containers()) {
        for (const v1::ContainerDevices& d : c.devices()) {
          std::vector<int64_t> numa;
          for (const v1::NUMANode& n : d.topology().nodes()) numa.push_back(n.id());
          for (const std::string& id : d.device_ids()) {
            out.push_back({pod.namespace_(), pod.name(), c.name(), d.resource_name(), id, numa});
          }
        }
      }
    }
    return out;
  }

 private:
  std::string socket_;
  std::chrono::milliseconds timeout_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::PodResourcesLister::Stub> stub_;
};

bool Ours(const std::string& resource, const std::vector<std::string>& wanted) {
  return std::any_of(wanted.begin(), wanted.end(), [&](const std::string& w) {
    return w.ends_with('/') ? absl::StartsWith(resource, w) : resource == w;
  });
}

bool IsPciAddress(const std::string& s) {
  static const std::regex kPci("^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\\.[0-7]$");
  return std::regex_match(s, kPci);
}

std::string FirstNetdev(const fs::path& device) {
  std::error_code ec;
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(device / "net", ec)) {
    names.push_back(e.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names.empty() ? "" : names.front();
}

// Fills the PF, VF index and netdevs of `vf` from sysfs; false when the device is not there.
bool ResolveInSysfs(const fs::path& pci_devices, PodVf& vf) {
  std::error_code ec;
  fs::path dev = pci_devices / vf.pci_address;
  if (!fs::exists(dev, ec)) return false;
  vf.netdev = FirstNetdev(dev);
  fs::path physfn = fs::read_symlink(dev / "physfn", ec);
  if (ec) return true;  // a PF or a plain device: no VF index
  vf.pf_pci_address = physfn.filename().string();
  fs::path pf = pci_devices / vf.pf_pci_address;
  vf.pf_netdev = FirstNetdev(pf);
  for (const auto& e : fs::directory_iterator(pf, ec)) {
    std::string name = e.path().filename().string();
    int index = 0;
    if (!absl::StartsWith(name, "virtfn") || !absl::SimpleAtoi(name.substr(6), &index)) continue;
    std::error_code link_ec;
    if (fs::read_symlink(e.path(), link_ec).filename() == vf.pci_address) vf.vf_index = index;
  }
  return true;
}

}  // namespace

absl::StatusOr<std::unique_ptr<PodResourcesClient>> PodResourcesClient::Create(
    std::string socket_path, std::chrono::milliseconds timeout) {
  if (socket_path.empty() || socket_path[0] != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("kubelet PodResources socket \"", socket_path, "\": not an absolute path"));
  }
  return std::make_unique<PodResourcesClientImpl>(std::move(socket_path), timeout);
}

VfResolution ResolvePodVfs(std::span<const PodDevice> devices, const VfResolveOptions& options) {
  VfResolution out;
  fs::path pci_devices = fs::path(options.sysfs_root) / "bus/pci/devices";
  for (const PodDevice& d : devices) {
    if (!Ours(d.resource_name, options.resources)) continue;
    std::string who = absl::StrCat("pod ", d.ns, "/", d.pod, " container ", d.container, ": ",
                                   d.resource_name, " device \"", d.device_id, "\"");
    if (!IsPciAddress(d.device_id)) {
      out.problems.push_back(absl::StrCat(who, ": not a PCI address (dddd:bb:dd.f)"));
      continue;
    }
    PodVf vf{d.ns, d.pod, d.container, d.resource_name, d.device_id, "", -1, "", ""};
    if (!ResolveInSysfs(pci_devices, vf)) {
      out.problems.push_back(absl::StrCat(who, ": no such PCI device in ", pci_devices.string()));
      continue;
    }
    out.vfs.push_back(std::move(vf));
  }
  std::sort(out.vfs.begin(), out.vfs.end(), [](const PodVf& a, const PodVf& b) {
    return std::tie(a.ns, a.pod, a.container, a.pci_address) <
           std::tie(b.ns, b.pod, b.container, b.pci_address);
  });
  return out;
}

}  // namespace nicflow::k8s
