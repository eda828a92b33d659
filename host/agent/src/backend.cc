// OpenBackend: the device the config names.
#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "nicflow/agent/agent.h"
#include "nicflow/agent/simnic.h"
#include "nicflow/flowtables/status.h"
#include "nicflow/host/fpga_device.h"  // defines NICFLOW_HOST_HAVE_FPGA when hw/ is built
#include "nicflow/host/rteflow_device.h"
#include "nicflow/host/sim_device.h"
#include "nicflow/sim/profile.h"

namespace nicflow::agent {

namespace {

absl::StatusOr<Backend> OpenInProcessSim(const BackendConfig& config) {
  NICFLOW_ASSIGN_OR_RETURN(sim::DeviceProfile profile, sim::BuiltinProfile(config.profile));
  auto device = std::make_unique<host::SimDevice>(std::move(profile));
  host::SimDevice* raw = device.get();
  Backend b;
  b.device = std::move(device);
  b.stats = [raw]() -> absl::StatusOr<DeviceStats> {
    const sim::DeviceCounters& c = raw->nic().counters();
    return DeviceStats{c.rx_packets,
                       c.forwarded,
                       c.dropped,
                       c.rejected,
                       c.punted,
                       raw->nic().conntrack().size(),
                       raw->nic().profile().conntrack_capacity};
  };
  return b;
}

absl::StatusOr<Backend> OpenRteFlow(const BackendConfig& config) {
  host::EalConfig eal_config;
  eal_config.args = config.eal_args;
  NICFLOW_ASSIGN_OR_RETURN(std::unique_ptr<host::RteFlowEal> eal,
                           host::RteFlowEal::Init(eal_config));
  NICFLOW_RETURN_IF_ERROR(eal->StartPort(config.port));
  host::RteFlowLowerOptions options;
  options.ethdev_port_id = config.port;
  options.vf_ethdev_ports = config.vf_ports;  // pods' VFs from PodResources -> representors
  NICFLOW_ASSIGN_OR_RETURN(std::unique_ptr<host::RteFlowDevice> device,
                           host::RteFlowDevice::Open(*eal, config.port, std::move(options)));
  spdlog::info("rteflow port {}: {}", config.port, device->probe().ToText());
  Backend b;
  b.device = std::move(device);
  b.keepalive = std::shared_ptr<host::RteFlowEal>(std::move(eal));
  return b;
}

#ifdef NICFLOW_HOST_HAVE_FPGA
absl::StatusOr<Backend> OpenFpga(const BackendConfig& config) {
  hw::FpgaOptions options;
  options.selector.platform = config.platform;
  options.selector.xclbin = config.xclbin;
  const uint64_t ct_capacity = options.geometry.ct_connections;
  absl::StatusOr<std::unique_ptr<host::FpgaDevice>> device =
      host::FpgaDevice::Open(std::move(options));
  if (!device.ok()) {
    return absl::Status(device.status().code(),
                        absl::StrCat("backend.type fpga (platform \"", config.platform,
                                     "\"): ", device.status().message()));
  }
  spdlog::info("fpga: {} on {} ({})", (*device)->name(), (*device)->pipeline().device().device,
               (*device)->pipeline().device().platform);
  host::FpgaDevice* raw = device->get();
  Backend b;
  b.device = *std::move(device);
  b.stats = [raw, ct_capacity]() -> absl::StatusOr<DeviceStats> {
    NICFLOW_ASSIGN_OR_RETURN(hw::FpgaDeviceCounters c, raw->pipeline().GetDeviceCounters());
    return DeviceStats{c.rx,       c.forwarded, c.dropped,
                       c.rejected, c.punted,    raw->pipeline().connections(),
                       ct_capacity};
  };
  return b;
}
#endif

}  // namespace

bool FpgaBackendBuilt() {
#ifdef NICFLOW_HOST_HAVE_FPGA
  return true;
#else
  return false;
#endif
}

absl::StatusOr<Backend> OpenBackend(const BackendConfig& config) {
  switch (config.kind) {
    case BackendKind::kSim:
      if (config.simnic_socket.empty()) {
        spdlog::warn(
            "backend sim without simnic_socket: the simulated NIC lives in this process "
            "and its state is lost when nicflowd restarts");
        return OpenInProcessSim(config);
      }
      return ConnectSimNic(config.simnic_socket);
    case BackendKind::kRteFlow:
      return OpenRteFlow(config);
    case BackendKind::kFpga:
#ifdef NICFLOW_HOST_HAVE_FPGA
      return OpenFpga(config);
#else
      // hw/ (OpenCL) is a separate component (ParseConfig refuses the type already).
      return absl::UnimplementedError(
          "backend.type fpga: this nicflowd build does not include the FPGA backend (hw/ was "
          "not built); use sim or rteflow");
#endif
  }
  return absl::InvalidArgumentError("backend.type: unknown");
}

}  // namespace nicflow::agent
