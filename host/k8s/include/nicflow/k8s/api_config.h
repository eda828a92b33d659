// How to reach and authenticate to the Kubernetes API server: in-cluster (the pod's service
// account) or a kubeconfig file, the two ways client-go offers.
//
// In-cluster: KUBERNETES_SERVICE_HOST / KUBERNETES_SERVICE_PORT and the files the kubelet mounts
// in /var/run/secrets/kubernetes.io/serviceaccount/ (token, ca.crt, namespace). The token file
// is remembered, not only its content: projected service-account tokens rotate (about hourly),
// so the client re-reads it before each request.
//
// Kubeconfig: the current-context (or a named one) selects a cluster (server,
// certificate-authority or -data, insecure-skip-tls-verify, tls-server-name) and a user (token,
// tokenFile, client-certificate or -data, client-key or -data). Relative file paths are relative
// to the kubeconfig's directory, as kubectl reads them. Auth providers, exec plugins and basic
// auth are refused with an error naming the user entry: the agent must not start half-authed.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "nicflow/k8s/http_client.h"

namespace nicflow::k8s {

/// Connection and credentials for the API server.
struct ApiConfig {
  std::string server;        ///< "https://10.96.0.1:443"; http:// and unix:// for tests
  TlsOptions tls;            ///< CA, client identity, server name
  std::string bearer_token;  ///< sent as "Authorization: Bearer ..." when not empty
  std::string token_file;    ///< when set, read before each request (overrides bearer_token)
  std::string ns;            ///< the service account's or context's namespace; informational
  std::string user_agent = "nicflowd/0.1";
  HttpTimeouts timeouts;
};

/// Where the in-cluster files and values come from; defaults are the real ones.
struct InClusterOptions {
  std::string token_path = "/var/run/secrets/kubernetes.io/serviceaccount/token";
  std::string ca_path = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";
  std::string namespace_path = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";
  std::optional<std::string> service_host;  ///< unset: $KUBERNETES_SERVICE_HOST
  std::optional<std::string> service_port;  ///< unset: $KUBERNETES_SERVICE_PORT
};

/// The pod's service-account configuration. Errors: FailedPrecondition when not running in a
/// pod (the environment variables are unset), NotFound/InvalidArgument naming the token or CA
/// file that is missing, empty or unreadable.
absl::StatusOr<ApiConfig> InClusterConfig(const InClusterOptions& options = {});

/// The configuration a kubeconfig file selects: `context` names the context, empty means the
/// file's current-context. Errors: NotFound for a missing file, InvalidArgument naming the file
/// and the entry (context, cluster or user) that is missing or unusable.
absl::StatusOr<ApiConfig> KubeconfigConfig(const std::string& path, std::string_view context = "");

/// Parses kubeconfig text; `path` names it in errors and anchors relative file paths.
absl::StatusOr<ApiConfig> ParseKubeconfig(std::string_view text, const std::string& path,
                                          std::string_view context = "");

/// What nicflowd uses: the kubeconfig at `kubeconfig_path` (and `context`) when a path is given,
/// else the in-cluster configuration. Errors: those of KubeconfigConfig or InClusterConfig.
absl::StatusOr<ApiConfig> LoadApiConfig(const std::string& kubeconfig_path,
                                        std::string_view context = "");

/// The bearer token to send now: token_file's content (trimmed) when set, else bearer_token.
absl::StatusOr<std::string> CurrentToken(const ApiConfig& config);

}  // namespace nicflow::k8s
