// Device model shared by discovery, health tracking, selection and allocation.
//
// A VF is identified by its PCI address ("0000:3b:00.2"), which is also the device ID advertised
// to the kubelet (the SR-IOV network device plugin does the same, so existing pods and tooling
// that parse PCIDEVICE_* variables keep working).
#pragma once

#include <string>
#include <vector>

namespace nicflow::device_plugin {

/// Link layer of a network function, from `net/<if>/type` (ARPHRD_ETHER=1, ARPHRD_INFINIBAND=32).
enum class LinkType { kUnknown, kEther, kInfiniband };

/// The name used in configs (`linkTypes`): "ether", "infiniband" or "unknown".
const char* LinkTypeName(LinkType type);

/// An RDMA (verbs) device that belongs to one PCI function.
struct RdmaDevice {
  /// Kernel RDMA device name, e.g. "mlx5_2".
  std::string name;
  /// Host paths of its character devices, e.g. "/dev/infiniband/uverbs2", "/dev/infiniband/umad2".
  std::vector<std::string> char_devices;

  bool operator==(const RdmaDevice&) const = default;
};

/// One SR-IOV virtual function as last read from sysfs.
struct VfDevice {
  /// PCI address of the VF, "dddd:bb:dd.f"; the device ID given to the kubelet.
  std::string pci_address;
  /// Vendor and device ids, lower-case hex without "0x" ("15b3", "101e").
  std::string vendor_id;
  std::string device_id;
  /// PCI class code, lower-case hex without "0x" ("020000" = Ethernet controller).
  std::string class_code;
  /// Bound kernel driver ("mlx5_core", "iavf", "vfio-pci"); empty when unbound.
  std::string driver;
  /// NUMA node of the VF, -1 when the platform does not say.
  int numa_node = -1;
  /// IOMMU group number as a string ("42"); empty when the device has none.
  std::string iommu_group;
  /// ACPI index of the function (`acpi_index`), empty when absent.
  std::string acpi_index;
  /// PCI address of the parent physical function.
  std::string pf_address;
  /// Index of this VF under its PF (the N of the PF's `virtfnN` link).
  int vf_index = -1;
  /// Network interface of the PF in this network namespace; empty when none.
  std::string pf_netdev;
  /// Network interfaces of the VF visible in this network namespace (empty once moved to a pod).
  std::vector<std::string> netdevs;
  /// Link layer of the VF (its own netdev, else its PF's).
  LinkType link_type = LinkType::kUnknown;
  /// RDMA devices of the VF; empty when it has none.
  std::vector<RdmaDevice> rdma;

  bool operator==(const VfDevice&) const = default;
};

/// Health as advertised to the kubelet.
enum class Health { kHealthy, kUnhealthy };

/// "Healthy" / "Unhealthy", the strings of the device plugin API.
const char* HealthName(Health health);

/// A VF together with its current health and, when unhealthy, why.
struct TrackedDevice {
  /// Attributes of the VF. When the VF or its driver is gone these are the last ones seen, so a
  /// vanished device stays in the pool it belonged to (as Unhealthy) instead of moving.
  VfDevice vf;
  Health health = Health::kHealthy;
  /// Human readable cause of Unhealthy ("PF 0000:3b:00.0 link ens1f0 is down"); empty if healthy.
  std::string reason;

  bool operator==(const TrackedDevice&) const = default;
};

}  // namespace nicflow::device_plugin
