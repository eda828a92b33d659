// KubeInput: the Kubernetes API as one of the agent's inputs (nicflow::k8s's ApiSource).
//
// ApiSource keeps an object store by list+watch and calls back with a complete ClusterState on
// every (debounced) change. KubeInput keeps the latest snapshot and wakes the agent; the agent's
// sync copies the snapshot in (ClusterSource). Until every kind finished its first list there is
// no snapshot and a sync fails at the load stage with Unavailable: converging to half a cluster
// (say, without its NetworkPolicies) would open traffic the cluster closes, so the device keeps
// what it holds until the API has answered.
//
// Thread-safety: Source() and the snapshot callback may run on any thread.
#pragma once

#include <functional>
#include <memory>

#include "absl/status/statusor.h"
#include "nicflow/agent/agent.h"
#include "nicflow/agent/config.h"

namespace nicflow::agent {

class KubeInput {
 public:
  /// Errors: Unimplemented when this build has no nicflow::k8s.
  static absl::StatusOr<std::unique_ptr<KubeInput>> Create(const InputsConfig& config);
  virtual ~KubeInput() = default;
  /// What the agent calls on every sync: a copy of the latest snapshot.
  virtual ClusterSource Source() = 0;
  /// Starts watching; `on_change` runs after each new snapshot (e.g. Agent::RequestSync). Errors:
  /// the API configuration cannot be read (no in-cluster token, bad kubeconfig).
  virtual absl::Status Start(std::function<void()> on_change) = 0;
  virtual void Stop() = 0;
};

}  // namespace nicflow::agent
