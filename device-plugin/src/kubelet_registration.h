// Client side of the kubelet's v1beta1 Registration service (kubelet.sock).
#pragma once

#include <chrono>
#include <filesystem>
#include <string>

#include "absl/status/status.h"

namespace nicflow::device_plugin {

struct RegisterArgs {
  /// Our socket's file name, relative to the device plugin directory.
  std::string endpoint;
  /// "prefix/name".
  std::string resource_name;
  bool pre_start_required = false;
  bool get_preferred_allocation_available = true;
};

/// API version nicflow implements.
inline constexpr char kDevicePluginApiVersion[] = "v1beta1";

/// Calls Register on `kubelet_socket`, waiting at most `timeout` for the connection and answer.
/// Errors: Unavailable/DeadlineExceeded when the kubelet does not answer; the kubelet's own
/// status (e.g. InvalidArgument "resource name ... is already registered") otherwise; each
/// message names the socket.
absl::Status RegisterWithKubelet(const std::filesystem::path& kubelet_socket,
                                 const RegisterArgs& args, std::chrono::milliseconds timeout);

}  // namespace nicflow::device_plugin
