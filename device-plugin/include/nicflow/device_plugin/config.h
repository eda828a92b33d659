// Plugin configuration: the SR-IOV network device plugin's `resourceList` JSON.
//
// The format is kept compatible so a node can switch from sriov-network-device-plugin by
// reusing its ConfigMap:
//
//   {"resourceList": [{
//       "resourceName": "vf",                  // required, [A-Za-z0-9_]+
//       "resourcePrefix": "nicflow.io",        // optional, defaults to --resource-prefix
//       "deviceType": "netDevice",             // netDevice (default) | accelerator
//       "excludeTopology": false,              // true: advertise no NUMA affinity
//       "selectors": {                         // an object, or an array of objects (OR-ed)
//         "vendors": ["15b3"], "devices": ["101e"], "drivers": ["mlx5_core"],
//         "pciAddresses": ["0000:3b:00.2"], "pfNames": ["ens1f0#0-3,6"],
//         "rootDevices": ["0000:3b:00.0"], "linkTypes": ["ether"], "acpiIndexes": ["101"],
//         "isRdma": true, "needVhostNet": false},
//       "allocationPolicy": "spread",          // nicflow: spread (default) | pack across PFs
//       "preStartCheck": false                 // nicflow: re-check health in PreStartContainer
//   }]}
//
// Inside one selector object every listed selector must match (AND); the entries of a list are
// alternatives (OR). Unknown keys are errors, so a typo cannot silently widen a pool.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace nicflow::device_plugin {

/// Inclusive range of VF indices, from `pfNames` entries like "ens1f0#2-5".
struct VfRange {
  int first = 0;
  int last = 0;
  bool operator==(const VfRange&) const = default;
};

/// One `pfNames` entry: a PF interface name and, optionally, which of its VFs.
struct PfNameSelector {
  std::string pf_name;
  /// Empty means all VFs of the PF.
  std::vector<VfRange> vf_ranges;
  bool operator==(const PfNameSelector&) const = default;
};

/// One selector object. Empty lists do not constrain.
struct Selector {
  std::vector<std::string> vendors;  ///< lower-case hex, 4 digits
  std::vector<std::string> devices;  ///< lower-case hex, 4 digits
  std::vector<std::string> drivers;
  std::vector<std::string> pci_addresses;  ///< "dddd:bb:dd.f", lower-case
  std::vector<PfNameSelector> pf_names;
  std::vector<std::string> root_devices;  ///< PF PCI addresses
  std::vector<std::string> link_types;    ///< "ether", "infiniband"
  std::vector<std::string> acpi_indexes;
  std::optional<bool> is_rdma;  ///< unset: RDMA capability does not matter
  bool need_vhost_net = false;  ///< also hand out /dev/vhost-net and /dev/net/tun
  bool operator==(const Selector&) const = default;
};

enum class DeviceType { kNetDevice, kAccelerator };

/// How GetPreferredAllocation places a multi-VF request across PFs (after NUMA alignment).
enum class AllocationPolicy {
  kSpread,  ///< one VF per PF in turn: redundancy and bandwidth for the pod
  kPack,    ///< as few PFs as possible: keeps whole PFs free for others
};

/// One entry of `resourceList`.
struct ResourceConfig {
  std::string resource_prefix;
  std::string resource_name;
  DeviceType device_type = DeviceType::kNetDevice;
  /// Alternatives; a device joins the pool when any of them matches.
  std::vector<Selector> selectors;
  bool exclude_topology = false;
  AllocationPolicy allocation_policy = AllocationPolicy::kSpread;
  bool pre_start_check = false;

  /// "prefix/name", the extended resource name pods request.
  std::string FullName() const { return resource_prefix + "/" + resource_name; }
  bool operator==(const ResourceConfig&) const = default;
};

struct PluginConfig {
  std::vector<ResourceConfig> resources;
  bool operator==(const PluginConfig&) const = default;
};

/// Parses and validates a config document. `default_prefix` applies to resources without a
/// `resourcePrefix`. Validation has no side effects.
///
/// Errors (all InvalidArgument, message naming the JSON path of the culprit):
///   `config: invalid JSON at byte 17: ...`
///   `config resourceList[0].selectors: unknown selector "vendor" (known: vendors, ...)`
///   `config resourceList[1].selectors.pfNames[0]: invalid VF range "ens1f0#5-2"`
///   `config resourceList[2].resourceName: duplicate resource "nicflow.io/vf" (also
///    resourceList[0])`
///   `config resourceList[0].selectors.vendors: expected an array of strings, got string`
/// Unimplemented for SR-IOV device plugin features nicflow does not offer (auxNetDevice,
/// ddpProfiles, vdpaType), naming the field.
absl::StatusOr<PluginConfig> ParseConfig(std::string_view json_text,
                                         std::string_view default_prefix);

/// Reads `path` and parses it. NotFound/PermissionDenied-style errors name the file.
absl::StatusOr<PluginConfig> LoadConfigFile(const std::filesystem::path& path,
                                            std::string_view default_prefix);

/// Parses a `pfNames` entry ("ens1f0", "ens1f0#0-3,5"); InvalidArgument without a path prefix.
absl::StatusOr<PfNameSelector> ParsePfName(std::string_view entry);

}  // namespace nicflow::device_plugin
