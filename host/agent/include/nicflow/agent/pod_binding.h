// Pod <-> VF binding: which VF each local pod sits on, from the kubelet's PodResources API.
//
// The nicflow device plugin hands VFs to pods; the kubelet reports, per pod, the device IDs (VF
// PCI addresses) it allocated. PodBinder lists them (nicflow::k8s PodResourcesClient and
// ResolvePodVfs) on every sync and every `inputs.pod_resources_interval_s`, and writes each pod
// port's VF into the program's port declarations (flowtables::PortDecl::vf_pci) before placement.
// Backends with real ports take the port from it (rteflow: `backend.vf_ports`); the simulator
// keeps its symbolic "vf:ns/pod" ports and carries the VF along.
//
// Degraded modes, each logged once per change of state, counted and shown by `nicflow status`:
// - no socket configured: binding off;
// - the socket is absent or the kubelet does not answer: the last good bindings stay in use
//   (a kubelet restart must not move pods), none before the first good list;
// - a device that is not a resolvable VF, or a pod with several VFs (the first, by PCI address,
//   is its port): listed as problems.
//
// Thread-safety: Refresh runs on the sync thread; Bind and the queries may run on any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "nicflow/agent/config.h"
#include "nicflow/flowtables/ir.h"

namespace nicflow::agent {

/// One pod's VF.
struct PodVfBinding {
  std::string pod;        ///< "namespace/name", as flowtables::PortRef::pod
  std::string container;  ///< the container the device was allocated to
  std::string resource;   ///< "nicflow.io/vf"
  std::string vf_pci;     ///< "0000:3b:00.2"
  std::string pf_pci;     ///< empty when sysfs has no physfn link
  int vf_index = -1;      ///< -1 when unknown
};

/// One answer of the kubelet, resolved to VFs.
struct PodVfListing {
  std::vector<PodVfBinding> vfs;
  std::vector<std::string> problems;  ///< devices that are not resolvable VFs
};

/// Lists the pods' VFs. Errors: the kubelet's (Unavailable, DeadlineExceeded, ...), naming the
/// socket.
using PodVfLister = std::function<absl::StatusOr<PodVfListing>()>;

/// The kubelet lister for `inputs` (socket, sysfs root). Errors: Unimplemented when nicflowd was
/// built without nicflow::k8s; InvalidArgument for a relative socket path.
absl::StatusOr<PodVfLister> KubeletPodVfLister(const InputsConfig& inputs);

class PodBinder {
 public:
  /// `lister` empty: binding off. `socket` names the source in messages.
  PodBinder(PodVfLister lister, std::string socket);

  /// Lists again. Returns true when the bindings changed (a sync should follow).
  bool Refresh();
  /// Sets `vf_pci` of every pod port from the bindings (cleared for pods without one).
  void Bind(std::vector<flowtables::PortDecl>& ports) const;
  bool enabled() const { return static_cast<bool>(lister_); }

  /// {"state": "off"|"ok"|"unavailable", "socket", "message", "bindings": [...], "problems",
  ///  "lists", "list_errors", "last_list_unix_ms"}
  nlohmann::json ToJson() const;
  uint64_t list_errors() const;
  size_t bound_pods() const;

 private:
  PodVfLister lister_;
  std::string socket_;
  mutable std::mutex mu_;  // guards everything below
  std::map<std::string, PodVfBinding> by_pod_;
  std::vector<std::string> problems_;
  std::string error_;  // the last list's error; empty when it succeeded
  bool listed_ok_ = false;
  uint64_t lists_ = 0, list_errors_ = 0;
  int64_t last_ok_unix_ms_ = 0;
};

}  // namespace nicflow::agent
