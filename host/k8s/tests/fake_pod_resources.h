// A kubelet stand-in serving v1.PodResourcesLister on a unix socket, answering List with what
// the test sets.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"
#include "podresources/v1/api.grpc.pb.h"

namespace grpc {
class Server;
}

namespace nicflow::k8s::testing {

class FakePodResources final : public v1::PodResourcesLister::Service {
 public:
  static absl::StatusOr<std::unique_ptr<FakePodResources>> Start(const std::string& socket_path);
  ~FakePodResources() override;

  void SetResponse(v1::ListPodResourcesResponse response);
  int list_calls() const;

  grpc::Status List(grpc::ServerContext*, const v1::ListPodResourcesRequest*,
                    v1::ListPodResourcesResponse* response) override;

 private:
  FakePodResources() = default;
  mutable std::mutex mu_;
  v1::ListPodResourcesResponse response_;
  int list_calls_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

}  // namespace nicflow::k8s::testing
