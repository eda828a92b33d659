// Tracing one packet through a compiled program: the engine behind `nicflow trace` and the
// conformance runner.
//
// The contract (`nicflow trace -o json`, relied on by other tools):
//   {"verdict": "forward|drop|reject", "destinations": ["ip:port", ...], "translated": bool,
//    "masquerade": bool, "out_ports": ["vf:ns/pod", "uplink"],
//    "trace": [{"table", "priority", "match", "actions", "origin"}, ...]}
// `destinations` lists every destination the packet may leave with (every bucket of a select
// group, minus branches a later stage drops); for an untouched packet it is the original
// destination with `translated` false. `trace` is the path of the first destination (or of the
// packet's fate when nothing is forwarded); `paths` adds every path.
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "nicflow/flowtables/compiler.h"
#include "nicflow/flowtables/model.h"
#include "nicflow/sim/device.h"

namespace nicflow::cli {

enum class InPort { kAuto, kHost, kPod, kUplink };

struct TraceRequest {
  flowtables::Protocol proto = flowtables::Protocol::kTcp;
  flowtables::IpAddr src;
  uint16_t src_port = 0;  ///< 0: an ephemeral port
  flowtables::IpAddr dst;
  uint16_t dst_port = 0;
  InPort in_port = InPort::kAuto;
};

struct TraceHop {
  std::string table;
  bool miss = false;
  int32_t priority = 0;
  std::string match;
  std::string actions;
  std::string origin;
  std::vector<std::string> notes;
};

struct TracePathReport {
  std::string verdict;      ///< forward, drop, reject, punt
  std::string destination;  ///< as it leaves ("ip:port"); "" unless forwarded
  std::string source;       ///< as it leaves
  std::string out_port;
  bool translated = false;
  bool masquerade = false;
  std::vector<TraceHop> hops;
};

struct TraceReport {
  std::string target = "sim";  ///< what executed the program: sim, rteflow, fpga
  std::string verdict;
  std::vector<std::string> destinations;
  bool translated = false;
  bool masquerade = false;
  std::vector<std::string> out_ports;
  std::string in_port;  ///< the port the packet entered on ("vf:ns/pod", "host", "uplink")
  std::vector<TracePathReport> paths;
};

/// Parses "tcp|udp|sctp" (any case). Errors: InvalidArgument.
absl::StatusOr<flowtables::Protocol> ParseProtocol(std::string_view text);
/// Parses "auto|host|pod|uplink". Errors: InvalidArgument.
absl::StatusOr<InPort> ParseInPort(std::string_view text);

/// Builds the request from CLI-style text: src "IP[:PORT]", dst "IP:PORT" ([v6]:port).
absl::StatusOr<TraceRequest> MakeTraceRequest(std::string_view proto, std::string_view src,
                                              std::string_view dst, std::string_view in_port);

/// What executes the program a trace runs through.
enum class Target {
  kSim,      ///< the software SmartNIC (reference semantics)
  kRteFlow,  ///< the DPDK rte_flow lowering run in RteFlowSim; punted paths finished in software
  kFpga,     ///< the match-action kernel on an OpenCL device (PoCL on the CPU here)
};
/// Parses "sim|rteflow|fpga". Errors: InvalidArgument.
absl::StatusOr<Target> ParseTarget(std::string_view text);
std::string_view TargetName(Target t);

/// Traces packets through one compiled program on one target. Every packet is traced as if it
/// were the first the device sees (no connection state carries from one packet to the next), and
/// every branch a select group could take is reported, so targets compare packet by packet.
/// `compiled` (given to the factory) must outlive the tracer.
class PacketTracer {
 public:
  virtual ~PacketTracer() = default;
  virtual Target target() const = 0;
  virtual absl::StatusOr<TraceReport> Trace(const TraceRequest& req) = 0;
  /// Every request, in order. The default traces one by one; the FPGA runs them in batches (one
  /// kernel launch per batch and select-group branch). Errors: the first request's that fails.
  virtual absl::StatusOr<std::vector<TraceReport>> TraceAll(std::span<const TraceRequest> reqs);
};

/// A tracer for `target` holding `compiled.program`. Errors: what installing the program on the
/// target returns (InvalidArgument, Unimplemented, ResourceExhausted naming the culprit);
/// Unimplemented when the target is not part of this build; for fpga, NotFound / Unavailable
/// when no OpenCL device is present.
absl::StatusOr<std::unique_ptr<PacketTracer>> CreateTracer(
    Target target, const flowtables::CompileResult& compiled);

/// The simulator port a request enters on: --in-port, or by source: a node IP -> host; a local
/// pod's IP -> its VF; inside the cluster CIDRs -> pod (uplink when the pod is not local); else
/// uplink. `nic` must have the program's ports declared. Errors: InvalidArgument (--in-port pod
/// for an address no local pod has).
absl::StatusOr<sim::PortId> ResolveInPort(const flowtables::CompileResult& compiled,
                                          const sim::SimNic& nic, const TraceRequest& req);

/// Traces packets through one compiled program installed once on a simulator (unlimited
/// profile). Tracing has no side effects, so one tracer serves any number of packets.
class SimTracer final : public PacketTracer {
 public:
  /// Errors: what SimNic::Install returns for the program.
  static absl::StatusOr<std::unique_ptr<SimTracer>> Create(
      const flowtables::CompileResult& compiled);
  ~SimTracer() override;

  Target target() const override { return Target::kSim; }
  /// The entry port is chosen as ResolveInPort says.
  absl::StatusOr<TraceReport> Trace(const TraceRequest& req) override;

 private:
  struct Impl;
  explicit SimTracer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// One-shot form of SimTracer.
absl::StatusOr<TraceReport> TraceOnSimulator(const flowtables::CompileResult& compiled,
                                             const TraceRequest& req);

nlohmann::json TraceReportToJson(const TraceReport& r);
/// A short human explanation: the fate, which rule decided, from which Kubernetes object.
std::string TraceReportToText(const TraceReport& r, const TraceRequest& req);

}  // namespace nicflow::cli
