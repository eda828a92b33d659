// Container Device Interface (CDI) spec files for the VFs of a resource.
//
// With --use-cdi, Allocate answers with CDI device names ("nicflow.io/vf=0000:3b:00.2") and the
// container runtime resolves them through a spec file in its CDI directory (/var/run/cdi). The
// daemon rewrites the file whenever the pool changes, atomically (write + rename), so a runtime
// never reads half a file.
#pragma once

#include <filesystem>
#include <span>
#include <string>

#include "absl/status/status.h"
#include "nicflow/device_plugin/config.h"
#include "nicflow/device_plugin/device.h"

namespace nicflow::device_plugin {

/// The CDI spec (JSON) describing every device of the pool.
std::string RenderCdiSpec(const ResourceConfig& resource, std::span<const TrackedDevice> devices);

/// File name of the resource's spec: "nicflow-<prefix>_<name>.json".
std::string CdiSpecFileName(const ResourceConfig& resource);

/// Writes the spec into `cdi_dir` atomically. Errors name the file and the failing call.
absl::Status WriteCdiSpec(const std::filesystem::path& cdi_dir, const ResourceConfig& resource,
                          std::span<const TrackedDevice> devices);

}  // namespace nicflow::device_plugin
