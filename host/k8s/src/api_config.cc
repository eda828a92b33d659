// In-cluster and kubeconfig configuration (yaml-cpp for the kubeconfig).
#include "nicflow/k8s/api_config.h"

#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "nicflow/flowtables/status.h"

namespace nicflow::k8s {
namespace {

constexpr size_t kMaxFileBytes = 4u << 20;

absl::StatusOr<std::string> ReadSmallFile(const std::string& path, std::string_view what) {
  std::error_code ec;
  auto size = std::filesystem::file_size(path, ec);
  if (ec) {
    return absl::NotFoundError(absl::StrCat(Sv(what), " ", path, ": ", ec.message()));
  }
  if (size > kMaxFileBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(Sv(what), " ", path, ": larger than ", kMaxFileBytes, " bytes"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(Sv(what), " ", path, ": cannot open"));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string Trim(std::string s) { return std::string(absl::StripAsciiWhitespace(s)); }

}  // namespace

absl::StatusOr<std::string> CurrentToken(const ApiConfig& config) {
  if (config.token_file.empty()) return config.bearer_token;
  NICFLOW_ASSIGN_OR_RETURN(std::string token, ReadSmallFile(config.token_file, "token file"));
  token = Trim(std::move(token));
  if (token.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("token file ", config.token_file, ": empty"));
  }
  return token;
}

absl::StatusOr<ApiConfig> InClusterConfig(const InClusterOptions& options) {
  auto env = [](const char* name) -> std::string {
    const char* v = std::getenv(name);
    return v ? v : "";
  };
  std::string host = options.service_host.value_or(env("KUBERNETES_SERVICE_HOST"));
  std::string port = options.service_port.value_or(env("KUBERNETES_SERVICE_PORT"));
  if (host.empty() || port.empty()) {
    return absl::FailedPreconditionError(
        "in-cluster config: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set "
        "(not running in a pod? use a kubeconfig)");
  }
  ApiConfig config;
  bool v6 = host.find(':') != std::string::npos;
  config.server = absl::StrCat("https://", v6 ? "[" : "", host, v6 ? "]" : "", ":", port);
  NICFLOW_RETURN_IF_ERROR(HttpTarget::Parse(config.server).status());
  config.token_file = options.token_path;
  NICFLOW_RETURN_IF_ERROR(CurrentToken(config).status());  // fail now, not at first request
  NICFLOW_ASSIGN_OR_RETURN(config.tls.ca_pem, ReadSmallFile(options.ca_path, "service-account CA"));
  if (Trim(config.tls.ca_pem).empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("service-account CA ", options.ca_path, ": empty"));
  }
  if (auto ns = ReadSmallFile(options.namespace_path, "namespace file"); ns.ok()) {
    config.ns = Trim(*std::move(ns));
  }
  return config;
}

namespace {

// One kubeconfig being read: names the file in every error.
class KubeconfigReader {
 public:
  KubeconfigReader(const YAML::Node& root, const std::string& path) : root_(root), path_(path) {
    dir_ = std::filesystem::path(path).parent_path();
  }

  absl::StatusOr<ApiConfig> Read(std::string_view context_name);

 private:
  absl::Status Bad(std::string_view where, std::string_view why) const {
    return absl::InvalidArgumentError(absl::StrCat(path_, ": ", Sv(where), ": ", Sv(why)));
  }
  // The `field` (e.g. "cluster") of the entry named `name` in the list `list`.
  absl::StatusOr<YAML::Node> Entry(const char* list, const char* field, const std::string& name);
  absl::StatusOr<std::string> Scalar(const YAML::Node& map, const char* key,
                                     std::string_view where) const;
  // `<key>-data` (base64) or `<key>` (a file path), either optional.
  absl::StatusOr<std::string> DataOrFile(const YAML::Node& map, const std::string& key,
                                         std::string_view where) const;
  absl::Status ReadCluster(const YAML::Node& cluster, std::string_view where, ApiConfig& c) const;
  absl::Status ReadUser(const YAML::Node& user, std::string_view where, ApiConfig& c) const;

  YAML::Node root_;
  std::string path_;
  std::filesystem::path dir_;
};

absl::StatusOr<YAML::Node> KubeconfigReader::Entry(const char* list, const char* field,
                                                   const std::string& name) {
  YAML::Node entries = root_[list];
  if (entries && !entries.IsSequence()) return Bad(list, "expected a list");
  if (entries) {
    for (const YAML::Node& e : entries) {
      if (e.IsMap() && e["name"] && e["name"].IsScalar() && e["name"].Scalar() == name) {
        YAML::Node value = e[field];
        if (!value || !value.IsMap()) {
          return Bad(absl::StrCat(list, "[", name, "]"), absl::StrCat("no ", field, " map"));
        }
        return value;
      }
    }
  }
  return Bad(list, absl::StrCat("no entry named \"", name, "\""));
}

absl::StatusOr<std::string> KubeconfigReader::Scalar(const YAML::Node& map, const char* key,
                                                     std::string_view where) const {
  YAML::Node v = map[key];
  if (!v || v.IsNull()) return std::string();
  if (!v.IsScalar()) return Bad(absl::StrCat(Sv(where), ".", key), "expected a string");
  return v.Scalar();
}

absl::StatusOr<std::string> KubeconfigReader::DataOrFile(const YAML::Node& map,
                                                         const std::string& key,
                                                         std::string_view where) const {
  std::string data_key = key + "-data";
  NICFLOW_ASSIGN_OR_RETURN(std::string data, Scalar(map, data_key.c_str(), where));
  if (!data.empty()) {
    std::string decoded;
    if (!absl::Base64Unescape(data, &decoded)) {
      return Bad(absl::StrCat(Sv(where), ".", data_key), "not valid base64");
    }
    return decoded;
  }
  NICFLOW_ASSIGN_OR_RETURN(std::string file, Scalar(map, key.c_str(), where));
  if (file.empty()) return std::string();
  std::filesystem::path p(file);
  if (p.is_relative()) p = dir_ / p;
  auto text = ReadSmallFile(p.string(), absl::StrCat(path_, ": ", Sv(where), ".", key));
  return text;
}

absl::Status KubeconfigReader::ReadCluster(const YAML::Node& cluster, std::string_view where,
                                           ApiConfig& c) const {
  NICFLOW_ASSIGN_OR_RETURN(c.server, Scalar(cluster, "server", where));
  if (c.server.empty()) return Bad(where, "no server");
  if (auto t = HttpTarget::Parse(c.server); !t.ok()) {
    return Bad(absl::StrCat(Sv(where), ".server"), Sv(t.status().message()));
  }
  NICFLOW_ASSIGN_OR_RETURN(c.tls.ca_pem, DataOrFile(cluster, "certificate-authority", where));
  NICFLOW_ASSIGN_OR_RETURN(c.tls.server_name, Scalar(cluster, "tls-server-name", where));
  NICFLOW_ASSIGN_OR_RETURN(std::string insecure,
                           Scalar(cluster, "insecure-skip-tls-verify", where));
  c.tls.insecure_skip_verify = insecure == "true";
  if (!c.tls.ca_pem.empty() && c.tls.insecure_skip_verify) {
    return Bad(where, "certificate-authority and insecure-skip-tls-verify exclude each other");
  }
  return absl::OkStatus();
}

absl::Status KubeconfigReader::ReadUser(const YAML::Node& user, std::string_view where,
                                        ApiConfig& c) const {
  for (const char* unsupported : {"exec", "auth-provider", "username", "password"}) {
    if (user[unsupported]) {
      return Bad(absl::StrCat(Sv(where), ".", unsupported),
                 "not supported by nicflowd; use a token, tokenFile or a client certificate");
    }
  }
  NICFLOW_ASSIGN_OR_RETURN(c.bearer_token, Scalar(user, "token", where));
  NICFLOW_ASSIGN_OR_RETURN(std::string token_file, Scalar(user, "tokenFile", where));
  if (!token_file.empty()) {
    std::filesystem::path p(token_file);
    c.token_file = (p.is_relative() ? dir_ / p : p).string();
    NICFLOW_RETURN_IF_ERROR(CurrentToken(c).status());
  }
  NICFLOW_ASSIGN_OR_RETURN(c.tls.client_cert_pem, DataOrFile(user, "client-certificate", where));
  NICFLOW_ASSIGN_OR_RETURN(c.tls.client_key_pem, DataOrFile(user, "client-key", where));
  if (c.tls.client_cert_pem.empty() != c.tls.client_key_pem.empty()) {
    return Bad(where, "client-certificate and client-key must be given together");
  }
  return absl::OkStatus();
}

absl::StatusOr<ApiConfig> KubeconfigReader::Read(std::string_view context_name) {
  if (!root_.IsMap()) return Bad("top level", "expected a kubeconfig map");
  std::string name(context_name);
  if (name.empty()) {
    NICFLOW_ASSIGN_OR_RETURN(name, Scalar(root_, "current-context", "top level"));
    if (name.empty()) return Bad("current-context", "not set and no context given");
  }
  NICFLOW_ASSIGN_OR_RETURN(YAML::Node context, Entry("contexts", "context", name));
  std::string where = absl::StrCat("contexts[", name, "]");
  NICFLOW_ASSIGN_OR_RETURN(std::string cluster_name, Scalar(context, "cluster", where));
  NICFLOW_ASSIGN_OR_RETURN(std::string user_name, Scalar(context, "user", where));
  if (cluster_name.empty()) return Bad(where, "no cluster");
  ApiConfig c;
  NICFLOW_ASSIGN_OR_RETURN(c.ns, Scalar(context, "namespace", where));
  if (c.ns.empty()) c.ns = "default";
  NICFLOW_ASSIGN_OR_RETURN(YAML::Node cluster, Entry("clusters", "cluster", cluster_name));
  NICFLOW_RETURN_IF_ERROR(ReadCluster(cluster, absl::StrCat("clusters[", cluster_name, "]"), c));
  if (!user_name.empty()) {
    NICFLOW_ASSIGN_OR_RETURN(YAML::Node user, Entry("users", "user", user_name));
    NICFLOW_RETURN_IF_ERROR(ReadUser(user, absl::StrCat("users[", user_name, "]"), c));
  }
  return c;
}

}  // namespace

absl::StatusOr<ApiConfig> ParseKubeconfig(std::string_view text, const std::string& path,
                                          std::string_view context) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ":", e.mark.line + 1, ": not valid YAML: ", e.msg));
  }
  try {
    return KubeconfigReader(root, path).Read(context);
  } catch (const YAML::Exception& e) {  // yaml-cpp throws on some malformed shapes
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", e.what()));
  }
}

absl::StatusOr<ApiConfig> KubeconfigConfig(const std::string& path, std::string_view context) {
  NICFLOW_ASSIGN_OR_RETURN(std::string text, ReadSmallFile(path, "kubeconfig"));
  return ParseKubeconfig(text, path, context);
}

absl::StatusOr<ApiConfig> LoadApiConfig(const std::string& kubeconfig_path,
                                        std::string_view context) {
  if (!kubeconfig_path.empty()) return KubeconfigConfig(kubeconfig_path, context);
  return InClusterConfig();
}

}  // namespace nicflow::k8s
