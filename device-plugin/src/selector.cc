#include "nicflow/device_plugin/selector.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace nicflow::device_plugin {
namespace {

bool Contains(const std::vector<std::string>& list, const std::string& value) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

// An empty list does not constrain.
bool ListAllows(const std::vector<std::string>& list, const std::string& value) {
  return list.empty() || Contains(list, value);
}

bool PfNameMatches(const PfNameSelector& selector, const VfDevice& vf) {
  if (selector.pf_name != vf.pf_netdev) return false;
  if (selector.vf_ranges.empty()) return true;
  return std::any_of(selector.vf_ranges.begin(), selector.vf_ranges.end(), [&](const VfRange& r) {
    return vf.vf_index >= r.first && vf.vf_index <= r.last;
  });
}

bool IsNetworkClass(const VfDevice& vf) { return absl::StartsWith(vf.class_code, "02"); }

}  // namespace

bool SelectorMatches(const Selector& selector, DeviceType type, const VfDevice& vf) {
  if (type == DeviceType::kNetDevice && !IsNetworkClass(vf)) return false;
  if (!ListAllows(selector.vendors, vf.vendor_id)) return false;
  if (!ListAllows(selector.devices, vf.device_id)) return false;
  if (!ListAllows(selector.drivers, vf.driver)) return false;
  if (!ListAllows(selector.pci_addresses, vf.pci_address)) return false;
  if (!ListAllows(selector.root_devices, vf.pf_address)) return false;
  if (!ListAllows(selector.link_types, LinkTypeName(vf.link_type))) return false;
  if (!ListAllows(selector.acpi_indexes, vf.acpi_index)) return false;
  if (!selector.pf_names.empty() &&
      std::none_of(selector.pf_names.begin(), selector.pf_names.end(),
                   [&](const PfNameSelector& pf) { return PfNameMatches(pf, vf); })) {
    return false;
  }
  if (selector.is_rdma && *selector.is_rdma != !vf.rdma.empty()) return false;
  return true;
}

bool ResourceSelects(const ResourceConfig& resource, const VfDevice& vf) {
  return std::any_of(resource.selectors.begin(), resource.selectors.end(), [&](const Selector& s) {
    return SelectorMatches(s, resource.device_type, vf);
  });
}

std::vector<std::vector<TrackedDevice>> AssignToResources(const PluginConfig& config,
                                                          const std::vector<TrackedDevice>& devices,
                                                          std::vector<std::string>* overlaps) {
  std::vector<std::vector<TrackedDevice>> pools(config.resources.size());
  for (const TrackedDevice& device : devices) {
    int owner = -1;
    for (size_t i = 0; i < config.resources.size(); ++i) {
      if (!ResourceSelects(config.resources[i], device.vf)) continue;
      if (owner < 0) {
        owner = static_cast<int>(i);
        pools[i].push_back(device);
      } else if (overlaps != nullptr) {
        overlaps->push_back(absl::StrCat(
            device.vf.pci_address, " matches ", config.resources[owner].FullName(), " and ",
            config.resources[i].FullName(), "; kept in ", config.resources[owner].FullName()));
      }
    }
  }
  return pools;
}

}  // namespace nicflow::device_plugin
