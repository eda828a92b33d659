#include "nicflow/agent/kube_input.h"

#include <mutex>
#include <optional>

#include "nicflow/flowtables/status.h"

#ifdef NICFLOW_HAVE_K8S
#include "nicflow/k8s/api_config.h"
#include "nicflow/k8s/api_source.h"
#endif

namespace nicflow::agent {

#ifdef NICFLOW_HAVE_K8S

namespace {

class KubeInputImpl final : public KubeInput {
 public:
  explicit KubeInputImpl(InputsConfig config) : config_(std::move(config)) {}
  ~KubeInputImpl() override { Stop(); }

  ClusterSource Source() override {
    return [this]() -> absl::StatusOr<flowtables::ClusterState> {
      std::lock_guard lock(mu_);
      if (!latest_) {
        return absl::UnavailableError(
            "inputs.kube_api: waiting for the API server's first lists (device left as is)");
      }
      return *latest_;
    };
  }

  absl::Status Start(std::function<void()> on_change) override {
    absl::StatusOr<k8s::ApiConfig> api = config_.kubeconfig.empty()
                                             ? k8s::InClusterConfig()
                                             : k8s::KubeconfigConfig(config_.kubeconfig);
    if (!api.ok()) return api.status();
    NICFLOW_ASSIGN_OR_RETURN(
        source_, k8s::ApiSource::Start(*std::move(api),
                                       [this, on_change](const flowtables::ClusterState& s) {
                                         {
                                           std::lock_guard lock(mu_);
                                           latest_ = s;
                                         }
                                         if (on_change) on_change();
                                       }));
    return absl::OkStatus();
  }

  void Stop() override {
    if (source_) source_->Stop();
  }

 private:
  InputsConfig config_;
  std::mutex mu_;
  std::optional<flowtables::ClusterState> latest_;
  std::unique_ptr<k8s::ApiSource> source_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<KubeInput>> KubeInput::Create(const InputsConfig& config) {
  return std::unique_ptr<KubeInput>(new KubeInputImpl(config));
}

#else

absl::StatusOr<std::unique_ptr<KubeInput>> KubeInput::Create(const InputsConfig&) {
  return absl::UnimplementedError(
      "inputs.kube_api: this nicflowd build has no Kubernetes API client (host/k8s); use "
      "inputs.manifests");
}

#endif

}  // namespace nicflow::agent
