#include "fake_pod_resources.h"

#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"

namespace nicflow::k8s::testing {

absl::StatusOr<std::unique_ptr<FakePodResources>> FakePodResources::Start(
    const std::string& socket_path) {
  ::unlink(socket_path.c_str());
  std::unique_ptr<FakePodResources> fake(new FakePodResources());
  grpc::ServerBuilder builder;
  builder.AddListeningPort(absl::StrCat("unix://", socket_path), grpc::InsecureServerCredentials());
  builder.RegisterService(fake.get());
  fake->server_ = builder.BuildAndStart();
  if (!fake->server_) return absl::UnavailableError(absl::StrCat("cannot serve on ", socket_path));
  return fake;
}

FakePodResources::~FakePodResources() {
  if (server_) server_->Shutdown();
}

void FakePodResources::SetResponse(v1::ListPodResourcesResponse response) {
  std::lock_guard<std::mutex> lock(mu_);
  response_ = std::move(response);
}

int FakePodResources::list_calls() const {
  std::lock_guard<std::mutex> lock(mu_);
  return list_calls_;
}

grpc::Status FakePodResources::List(grpc::ServerContext*, const v1::ListPodResourcesRequest*,
                                    v1::ListPodResourcesResponse* response) {
  std::lock_guard<std::mutex> lock(mu_);
  ++list_calls_;
  *response = response_;
  return grpc::Status::OK;
}

}  // namespace nicflow::k8s::testing
