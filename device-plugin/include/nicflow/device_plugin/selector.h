// Which VFs belong to which resource.
#pragma once

#include <string>
#include <vector>

#include "nicflow/device_plugin/config.h"
#include "nicflow/device_plugin/device.h"

namespace nicflow::device_plugin {

/// True when every selector set in `selector` matches `vf` (AND across selectors, OR within a
/// selector's list).
bool SelectorMatches(const Selector& selector, DeviceType type, const VfDevice& vf);

/// True when any of the resource's selector objects matches.
bool ResourceSelects(const ResourceConfig& resource, const VfDevice& vf);

/// Devices of each resource, index-aligned with `config.resources`. A device joins only the
/// first resource (in config order) that selects it, so it can never be handed out twice; each
/// later resource that would also select it is reported in `overlaps` ("0000:3b:00.2 matches
/// nicflow.io/a and nicflow.io/b; kept in nicflow.io/a") when `overlaps` is not null.
std::vector<std::vector<TrackedDevice>> AssignToResources(const PluginConfig& config,
                                                          const std::vector<TrackedDevice>& devices,
                                                          std::vector<std::string>* overlaps);

}  // namespace nicflow::device_plugin
