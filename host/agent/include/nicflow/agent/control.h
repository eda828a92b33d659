// The control API (proto/nicflow/agent/v1/control.proto) on a unix socket: the server half runs
// in nicflowd over an Agent; the client half is what `nicflow status|dump-flows|...` use.
//
// The socket is created with mode 0600 by default (only root, which the agent runs as, may
// program or inspect the datapath); TCP is deliberately not offered.
//
// Thread-safety: the server runs handlers on gRPC's threads (the Agent serialises them); a
// ControlClient may be used from one thread at a time.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "nicflow/agent/agent.h"
#include "nicflow/agent/events.h"

namespace nicflow::agent {

class ControlServer {
 public:
  /// Errors: Unavailable (cannot listen), FailedPrecondition (the path exists and is not a
  /// socket).
  static absl::StatusOr<std::unique_ptr<ControlServer>> Start(Agent& agent,
                                                              const std::string& socket_path,
                                                              uint32_t mode = 0600);
  ~ControlServer();
  /// Stops serving (open Events streams end) and removes the socket.
  void Stop();

 private:
  struct Impl;
  explicit ControlServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

class ControlClient {
 public:
  /// Does not connect yet; each call fails with Unavailable ("is nicflowd running?") when nothing
  /// answers within `timeout_ms`.
  explicit ControlClient(const std::string& socket_path, int timeout_ms = 10000);
  ~ControlClient();

  absl::StatusOr<nlohmann::json> Status();
  absl::StatusOr<nlohmann::json> DumpFlows(const std::string& table);
  absl::StatusOr<nlohmann::json> Stats();
  absl::StatusOr<nlohmann::json> Diff();
  absl::StatusOr<nlohmann::json> Capacity();
  absl::StatusOr<nlohmann::json> Trace(const TraceQuery& q);
  absl::StatusOr<nlohmann::json> Pipeline();
  /// Streams events with seq > `after_seq`; with `follow` waits for new ones until `on_event`
  /// returns false or the agent stops. Errors: as the other calls.
  absl::Status Events(uint64_t after_seq, bool follow,
                      const std::function<bool(const Event&)>& on_event);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace nicflow::agent
