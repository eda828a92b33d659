// nicflowd's configuration file (YAML, shipped as a ConfigMap; docs/agent.md documents it).
//
//   node: worker-1                     # node to compile for (default: $NODE_NAME, then the
//                                      #   compiler's own resolution)
//   backend:
//     type: sim                        # sim | rteflow | fpga
//     profile: connectx6dx             # sim: device profile (sim/profile.h built-ins)
//     simnic_socket: /run/nicflow/simnic.sock  # sim: a nicflow-simnic process owns the NIC;
//                                      #   empty: an in-process simulator (lost on restart)
//     eal_args: ["-l", "0", "--no-huge"]  # rteflow: EAL arguments
//     port: 0                          # rteflow: ethdev port id
//     platform: pocl                   # fpga: OpenCL platform name (substring)
//     xclbin: /opt/nicflow/pipeline.xclbin  # fpga: optional prebuilt kernel
//     vf_ports: {"0000:3b:00.2": 1}    # rteflow: VF PCI address -> ethdev port id of its
//                                      #   representor (pods bound by PodResources)
//   inputs:
//     manifests: /etc/nicflow/manifests   # directory watched with inotify (optional)
//     kube_api: false                  # list+watch the API server (in-cluster or kubeconfig)
//     kubeconfig: ""                   # empty: in-cluster service account
//     pod_resources_socket: /var/lib/kubelet/pod-resources/kubelet.sock  # empty: no binding
//     pod_resources_interval_s: 10     # list the kubelet's pod resources this often
//     sysfs_root: /sys                 # where VFs are looked up (PF, VF index)
//   control:
//     socket: /run/nicflow/nicflowd.sock
//     mode: "0600"
//   metrics:
//     address: 127.0.0.1:9464          # empty: no metrics endpoint; port 0: any free port
//   reconcile:
//     debounce_ms: 100                 # wait for a burst of file changes to settle
//     resync_s: 300                    # full reload even without changes (0: never)
//
// Unknown keys are errors (a typo must not silently change behaviour); every error names the key.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace nicflow::agent {

enum class BackendKind : uint8_t { kSim, kRteFlow, kFpga };
std::string_view BackendKindName(BackendKind k);  ///< "sim", "rteflow", "fpga"
/// Whether this build has the FPGA backend (hw/ built, so host links nicflow::hw).
bool FpgaBackendBuilt();

struct BackendConfig {
  BackendKind kind = BackendKind::kSim;
  std::string profile = "unlimited";  ///< sim device profile
  std::string simnic_socket;          ///< sim: remote NIC process; empty: in-process
  std::vector<std::string> eal_args;  ///< rteflow
  uint16_t port = 0;                  ///< rteflow ethdev port id
  std::string platform;               ///< fpga OpenCL platform (substring match)
  std::string xclbin;                 ///< fpga prebuilt kernel (optional)
  /// rteflow: VF PCI address -> ethdev port id its traffic is output to (the VF's representor).
  std::map<std::string, uint16_t> vf_ports;
};

struct InputsConfig {
  std::string manifests_dir;  ///< empty: none
  bool kube_api = false;
  std::string kubeconfig;
  /// The kubelet's PodResources socket: which VF each local pod sits on. Empty: no binding.
  std::string pod_resources_socket = "/var/lib/kubelet/pod-resources/kubelet.sock";
  uint32_t pod_resources_interval_s = 10;  ///< listing period besides every sync (0: syncs only)
  std::string sysfs_root = "/sys";         ///< VF -> PF and index lookups
};

struct AgentConfig {
  std::string node;
  BackendConfig backend;
  InputsConfig inputs;
  std::string control_socket = "/run/nicflow/nicflowd.sock";
  uint32_t control_socket_mode = 0600;
  std::string metrics_address;  ///< "host:port"; empty: disabled
  uint32_t debounce_ms = 100;
  uint32_t resync_s = 300;
};

/// Parses the YAML text of a config file; `source` names it in errors. Errors: InvalidArgument
/// naming the key ("nicflowd.yaml: backend.type: unknown backend \"dpdk\"").
absl::StatusOr<AgentConfig> ParseConfig(std::string_view yaml_text, std::string_view source);
/// Reads and parses a config file. Errors: NotFound / PermissionDenied for the file, as
/// ParseConfig otherwise.
absl::StatusOr<AgentConfig> LoadConfigFile(const std::string& path);

}  // namespace nicflow::agent
