#include "nicflow/device_plugin/cdi.h"

#include <cerrno>
#include <cstring>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "nicflow/device_plugin/allocation.h"
#include "nlohmann/json.hpp"

namespace nicflow::device_plugin {

// CDI spec version 0.6.0 is understood by containerd >= 1.7 and CRI-O >= 1.28.
constexpr char kCdiVersion[] = "0.6.0";

std::string RenderCdiSpec(const ResourceConfig& resource, std::span<const TrackedDevice> devices) {
  nlohmann::json spec = {{"cdiVersion", kCdiVersion}, {"kind", CdiKind(resource)}};
  nlohmann::json list = nlohmann::json::array();
  for (const TrackedDevice& device : devices) {
    nlohmann::json nodes = nlohmann::json::array();
    for (const DeviceNode& node : DeviceNodesFor(resource, device.vf)) {
      nodes.push_back({{"path", node.container_path},
                       {"hostPath", node.host_path},
                       {"permissions", node.permissions}});
    }
    list.push_back({{"name", device.vf.pci_address}, {"containerEdits", {{"deviceNodes", nodes}}}});
  }
  spec["devices"] = std::move(list);
  return spec.dump(2) + "\n";
}

std::string CdiSpecFileName(const ResourceConfig& resource) {
  return absl::StrCat("nicflow-", resource.resource_prefix, "_", resource.resource_name, ".json");
}

absl::Status WriteCdiSpec(const std::filesystem::path& cdi_dir, const ResourceConfig& resource,
                          std::span<const TrackedDevice> devices) {
  const std::filesystem::path target = cdi_dir / CdiSpecFileName(resource);
  const std::filesystem::path temp = cdi_dir / ("." + CdiSpecFileName(resource) + ".tmp");
  {
    std::ofstream out(temp, std::ios::trunc);
    out << RenderCdiSpec(resource, devices);
    if (!out.flush()) {
      return absl::UnavailableError(
          absl::StrCat("CDI spec ", temp.string(), ": write failed: ", std::strerror(errno)));
    }
  }
  std::error_code ec;
  std::filesystem::rename(temp, target, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("CDI spec ", target.string(), ": rename failed: ", ec.message()));
  }
  return absl::OkStatus();
}

}  // namespace nicflow::device_plugin
