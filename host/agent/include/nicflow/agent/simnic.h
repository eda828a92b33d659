// The simulated NIC as a process of its own (`nicflow-simnic`) and the agent's client for it.
//
// Why a process: a real NIC keeps its flow tables and connections while the agent restarts; an
// in-process simulator would die with the agent and a "restart without flush" could not be
// tested honestly. SimNicServer serves host::Device's operations for one sim::SimNic over a unix
// socket (device.proto); ConnectSimNic() returns the agent-side Backend whose Device forwards
// every call, so the reconciler's read-back, diff and rollback run unchanged across the socket.
//
// Punted packets: with a software path (`software`, a second SimNic holding the whole program
// behind sim::SoftwareDatapath), the agent sends the unplaced program with SetSoftwareProgram after
// every successful apply (ConnectSimNic's Backend::set_software_program) and Stats reports the
// software path's counters. Without one, SetSoftwareProgram is FailedPrecondition.
//
// Thread-safety: the SimNic is not thread-safe, so every RPC takes `nic_mu`, the same mutex the
// process's live packet loop holds while it polls; a control call waits at most one poll.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"
#include "nicflow/agent/agent.h"
#include "nicflow/sim/device.h"
#include "nicflow/sim/live.h"

namespace nicflow::agent {

class SimNicServer {
 public:
  /// Serves `nic` on unix:`socket_path` (created with `mode`). `on_ports_changed` runs (under
  /// `nic_mu`) after ports were declared or a program installed, e.g. to attach new VFs to
  /// interfaces. Errors: Unavailable (cannot listen), FailedPrecondition (path is not a socket).
  static absl::StatusOr<std::unique_ptr<SimNicServer>> Start(
      sim::SimNic& nic, std::mutex& nic_mu, const std::string& socket_path, uint32_t mode = 0600,
      std::function<void()> on_ports_changed = {}, sim::SoftwareDatapath* software = nullptr);
  ~SimNicServer();
  void Stop();
  void Wait();

 private:
  struct Impl;
  explicit SimNicServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// Connects to a nicflow-simnic socket. Errors: Unavailable when nothing answers within
/// `timeout_ms`; NotFound when the server's profile is unknown to this build.
absl::StatusOr<Backend> ConnectSimNic(const std::string& socket_path, int timeout_ms = 5000);

}  // namespace nicflow::agent
