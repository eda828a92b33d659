#include "kubelet_registration.h"

#include "absl/strings/str_cat.h"
#include "deviceplugin/v1beta1/api.grpc.pb.h"
#include "grpc_status.h"
#include "grpcpp/grpcpp.h"

namespace nicflow::device_plugin {

absl::Status RegisterWithKubelet(const std::filesystem::path& kubelet_socket,
                                 const RegisterArgs& args, std::chrono::milliseconds timeout) {
  const auto channel =
      grpc::CreateChannel("unix:" + kubelet_socket.string(), grpc::InsecureChannelCredentials());
  const auto stub = v1beta1::Registration::NewStub(channel);
  v1beta1::RegisterRequest request;
  request.set_version(kDevicePluginApiVersion);
  request.set_endpoint(args.endpoint);
  request.set_resource_name(args.resource_name);
  request.mutable_options()->set_pre_start_required(args.pre_start_required);
  request.mutable_options()->set_get_preferred_allocation_available(
      args.get_preferred_allocation_available);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + timeout);
  // No wait_for_ready: a kubelet.sock nobody listens on fails at once and is retried by the
  // daemon's backoff instead of blocking its control loop for the whole timeout.
  v1beta1::Empty response;
  const grpc::Status status = stub->Register(&context, request, &response);
  if (status.ok()) return absl::OkStatus();
  const absl::Status error = FromGrpcStatus(status);
  return absl::Status(error.code(), absl::StrCat("register ", args.resource_name, " with ",
                                                 kubelet_socket.string(), ": ", error.message()));
}

}  // namespace nicflow::device_plugin
