// PodBinder and the kubelet lister (design notes in pod_binding.h).
#include "nicflow/agent/pod_binding.h"

#include <chrono>
#include <filesystem>
#include <memory>
#include <utility>

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "nicflow/flowtables/status.h"

#ifdef NICFLOW_HAVE_K8S
#include "nicflow/k8s/pod_resources.h"
#endif

namespace nicflow::agent {

namespace {

int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool SameBinding(const PodVfBinding& a, const PodVfBinding& b) {
  return a.vf_pci == b.vf_pci && a.pf_pci == b.pf_pci && a.vf_index == b.vf_index &&
         a.container == b.container && a.resource == b.resource;
}

}  // namespace

absl::StatusOr<PodVfLister> KubeletPodVfLister(const InputsConfig& inputs) {
#ifdef NICFLOW_HAVE_K8S
  // The sync waits for the kubelet: a short timeout keeps a hung kubelet from stalling it.
  NICFLOW_ASSIGN_OR_RETURN(std::unique_ptr<k8s::PodResourcesClient> client,
                           k8s::PodResourcesClient::Create(inputs.pod_resources_socket,
                                                           std::chrono::milliseconds(2000)));
  std::shared_ptr<k8s::PodResourcesClient> shared(std::move(client));
  k8s::VfResolveOptions options;
  options.sysfs_root = inputs.sysfs_root;
  std::string socket = inputs.pod_resources_socket;
  return PodVfLister([shared, options, socket]() -> absl::StatusOr<PodVfListing> {
    std::error_code ec;
    if (!std::filesystem::exists(socket, ec)) {
      // gRPC would retry connecting until its deadline; an absent socket is a plain answer.
      return absl::UnavailableError(absl::StrCat(
          "kubelet PodResources socket ", socket,
          " does not exist (kubelet not running, or its pod-resources directory not mounted)"));
    }
    NICFLOW_ASSIGN_OR_RETURN(std::vector<k8s::PodDevice> devices, shared->List());
    k8s::VfResolution resolved = k8s::ResolvePodVfs(devices, options);
    PodVfListing out;
    out.problems = std::move(resolved.problems);
    for (k8s::PodVf& vf : resolved.vfs) {
      out.vfs.push_back(PodVfBinding{absl::StrCat(vf.ns, "/", vf.pod), std::move(vf.container),
                                     std::move(vf.resource_name), std::move(vf.pci_address),
                                     std::move(vf.pf_pci_address), vf.vf_index});
    }
    return out;
  });
#else
  return absl::UnimplementedError(
      absl::StrCat("inputs.pod_resources_socket ", inputs.pod_resources_socket,
                   ": this nicflowd build has no kubelet client (nicflow::k8s); set it to \"\""));
#endif
}

PodBinder::PodBinder(PodVfLister lister, std::string socket)
    : lister_(std::move(lister)), socket_(std::move(socket)) {}

bool PodBinder::Refresh() {
  if (!lister_) return false;
  absl::StatusOr<PodVfListing> listing = lister_();
  std::lock_guard lock(mu_);
  ++lists_;
  if (!listing.ok()) {
    ++list_errors_;
    std::string error(listing.status().message());
    if (error != error_) {
      spdlog::warn("pod resources: {}; {}", error,
                   listed_ok_ ? "keeping the last listed pod VFs"
                              : "pods keep their symbolic ports, bound to no VF");
    }
    error_ = std::move(error);
    return false;
  }
  if (!error_.empty() || !listed_ok_) spdlog::info("pod resources: listing {}", socket_);
  error_.clear();
  listed_ok_ = true;
  last_ok_unix_ms_ = NowUnixMs();
  std::map<std::string, PodVfBinding> by_pod;
  std::vector<std::string> problems = std::move(listing->problems);
  // vfs come sorted by pod and PCI address: a pod's first VF is its port.
  for (PodVfBinding& b : listing->vfs) {
    auto [it, fresh] = by_pod.try_emplace(b.pod, b);
    if (!fresh) {
      problems.push_back(absl::StrCat("pod ", b.pod, " has several VFs: ", b.vf_pci,
                                      " is not its port (", it->second.vf_pci, " is)"));
    }
  }
  bool changed = by_pod.size() != by_pod_.size();
  for (const auto& [pod, b] : by_pod) {
    auto old = by_pod_.find(pod);
    changed = changed || old == by_pod_.end() || !SameBinding(old->second, b);
  }
  if (problems != problems_) {
    for (const std::string& p : problems) spdlog::warn("pod resources: {}", p);
  }
  by_pod_ = std::move(by_pod);
  problems_ = std::move(problems);
  return changed;
}

void PodBinder::Bind(std::vector<flowtables::PortDecl>& ports) const {
  if (!lister_) return;
  std::lock_guard lock(mu_);
  for (flowtables::PortDecl& d : ports) {
    if (d.ref.kind != flowtables::PortRef::Kind::kPod) continue;
    auto it = by_pod_.find(d.ref.pod);
    d.vf_pci = it == by_pod_.end() ? std::string() : it->second.vf_pci;
  }
}

nlohmann::json PodBinder::ToJson() const {
  std::lock_guard lock(mu_);
  nlohmann::json bindings = nlohmann::json::array();
  for (const auto& [pod, b] : by_pod_) {
    bindings.push_back({{"pod", pod},
                        {"port", absl::StrCat("vf:", pod)},
                        {"container", b.container},
                        {"resource", b.resource},
                        {"vf", b.vf_pci},
                        {"pf", b.pf_pci},
                        {"vf_index", b.vf_index}});
  }
  std::string state = !lister_ ? "off" : error_.empty() && listed_ok_ ? "ok" : "unavailable";
  std::string message;
  if (!lister_) {
    message = "inputs.pod_resources_socket is empty: pods are bound to no VF";
  } else if (!error_.empty()) {
    message = absl::StrCat(error_, listed_ok_ ? "; using the pod VFs listed last"
                                              : "; pods keep their symbolic ports, bound to no VF");
  } else if (!listed_ok_) {
    message = "not listed yet";
  }
  return {{"state", state},
          {"socket", socket_},
          {"message", message},
          {"bindings", std::move(bindings)},
          {"problems", problems_},
          {"lists", lists_},
          {"list_errors", list_errors_},
          {"last_ok_unix_ms", last_ok_unix_ms_}};
}

uint64_t PodBinder::list_errors() const {
  std::lock_guard lock(mu_);
  return list_errors_;
}

size_t PodBinder::bound_pods() const {
  std::lock_guard lock(mu_);
  return by_pod_.size();
}

}  // namespace nicflow::agent
