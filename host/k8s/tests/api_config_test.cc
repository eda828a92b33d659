// In-cluster and kubeconfig configuration, and one end-to-end run: a kubeconfig naming a TLS
// API server (a certificate made here) and a token file, through ApiSource to a snapshot.
#include "nicflow/k8s/api_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "fake_api_server.h"
#include "nicflow/k8s/api_source.h"
#include "test_certs.h"

namespace nicflow::k8s {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::string Msg(const absl::Status& s) { return std::string(s.message()); }

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           absl::StrCat("nicflow-k8s-config-", ::getpid(), "-",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string Write(const std::string& name, const std::string& text) {
    fs::path p = dir_ / name;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
    return p.string();
  }
  fs::path dir_;
};

constexpr char kKubeconfig[] = R"(apiVersion: v1
kind: Config
current-context: prod
clusters:
- name: prod-cluster
  cluster:
    server: https://10.0.0.1:6443
    certificate-authority-data: %CA%
    tls-server-name: kubernetes.default.svc
- name: lab-cluster
  cluster:
    server: http://127.0.0.1:8001
contexts:
- name: prod
  context: {cluster: prod-cluster, user: agent, namespace: kube-system}
- name: lab
  context: {cluster: lab-cluster, user: lab-user}
- name: broken
  context: {cluster: nowhere, user: agent}
- name: exec
  context: {cluster: lab-cluster, user: exec-user}
users:
- name: agent
  user:
    token: abc.def
- name: lab-user
  user:
    client-certificate: certs/client.crt
    client-key: certs/client.key
- name: exec-user
  user:
    exec: {command: aws, apiVersion: client.authentication.k8s.io/v1}
)";

std::string Kubeconfig(const std::string& ca_pem) {
  std::string text = kKubeconfig;
  text.replace(text.find("%CA%"), 4, absl::Base64Escape(ca_pem));
  return text;
}

TEST_F(ConfigTest, KubeconfigCurrentContext) {
  std::string path = Write("kubeconfig", Kubeconfig("-----BEGIN CERTIFICATE-----\nMII\n"));
  auto c = KubeconfigConfig(path);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server, "https://10.0.0.1:6443");
  EXPECT_EQ(c->tls.ca_pem, "-----BEGIN CERTIFICATE-----\nMII\n");
  EXPECT_EQ(c->tls.server_name, "kubernetes.default.svc");
  EXPECT_EQ(c->bearer_token, "abc.def");
  EXPECT_EQ(c->ns, "kube-system");
}

TEST_F(ConfigTest, KubeconfigNamedContextWithRelativeCertificateFiles) {
  std::string path = Write("kube/config", Kubeconfig("x"));
  Write("kube/certs/client.crt", "CERT");
  Write("kube/certs/client.key", "KEY");
  auto c = KubeconfigConfig(path, "lab");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server, "http://127.0.0.1:8001");
  EXPECT_EQ(c->tls.client_cert_pem, "CERT");
  EXPECT_EQ(c->tls.client_key_pem, "KEY");
  EXPECT_EQ(c->ns, "default");
}

TEST_F(ConfigTest, KubeconfigErrorsNameTheEntry) {
  std::string path = Write("kubeconfig", Kubeconfig("x"));
  EXPECT_THAT(Msg(KubeconfigConfig(path, "nope").status()),
              HasSubstr("kubeconfig: contexts: no entry named \"nope\""));
  EXPECT_THAT(Msg(KubeconfigConfig(path, "broken").status()),
              HasSubstr("clusters: no entry named \"nowhere\""));
  EXPECT_THAT(Msg(KubeconfigConfig(path, "exec").status()),
              HasSubstr("users[exec-user].exec: not supported"));
  EXPECT_THAT(Msg(KubeconfigConfig(path, "lab").status()), HasSubstr("certs/client.crt"));
  EXPECT_EQ(KubeconfigConfig((dir_ / "absent").string()).status().code(),
            absl::StatusCode::kNotFound);
  std::string bad64 = Write("bad64", R"(current-context: c
contexts: [{name: c, context: {cluster: k}}]
clusters: [{name: k, cluster: {server: "https://h", certificate-authority-data: "!!"}}]
)");
  EXPECT_THAT(Msg(KubeconfigConfig(bad64).status()),
              HasSubstr("clusters[k].certificate-authority-data: not valid base64"));
  std::string bad_url = Write("badurl", R"(current-context: c
contexts: [{name: c, context: {cluster: k}}]
clusters: [{name: k, cluster: {server: "tcp://h"}}]
)");
  EXPECT_THAT(Msg(KubeconfigConfig(bad_url).status()), HasSubstr("clusters[k].server"));
  std::string not_yaml = Write("notyaml", "clusters: [\n");
  EXPECT_THAT(Msg(KubeconfigConfig(not_yaml).status()), HasSubstr("not valid YAML"));
}

TEST_F(ConfigTest, LoadApiConfigPrefersTheGivenKubeconfig) {
  std::string path = Write("kubeconfig", Kubeconfig("x"));
  auto c = LoadApiConfig(path, "lab");
  ASSERT_FALSE(c.ok());  // lab's certificate files do not exist: the kubeconfig was read
  EXPECT_THAT(Msg(c.status()), HasSubstr("users[lab-user]"));
  c = LoadApiConfig(path);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server, "https://10.0.0.1:6443");
}

TEST_F(ConfigTest, InClusterReadsTheServiceAccountAndRereadsTheToken) {
  InClusterOptions o;
  o.token_path = Write("sa/token", "tok-1\n");
  o.ca_path = Write("sa/ca.crt", "-----BEGIN CERTIFICATE-----\n");
  o.namespace_path = Write("sa/namespace", "kube-system");
  o.service_host = "fd00::1";
  o.service_port = "443";
  auto c = InClusterConfig(o);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server, "https://[fd00::1]:443");
  EXPECT_EQ(c->ns, "kube-system");
  EXPECT_EQ(*CurrentToken(*c), "tok-1");
  Write("sa/token", "tok-2");  // the kubelet rotated the projected token
  EXPECT_EQ(*CurrentToken(*c), "tok-2");
}

TEST_F(ConfigTest, InClusterErrorsNameWhatIsMissing) {
  InClusterOptions o;
  o.service_host = "";
  o.service_port = "";
  EXPECT_EQ(InClusterConfig(o).status().code(), absl::StatusCode::kFailedPrecondition);
  o.service_host = "10.96.0.1";
  o.service_port = "443";
  o.token_path = (dir_ / "no-token").string();
  auto c = InClusterConfig(o);
  EXPECT_EQ(c.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Msg(c.status()), HasSubstr("no-token"));
  o.token_path = Write("token", "t");
  o.ca_path = Write("ca.crt", "");
  EXPECT_THAT(Msg(InClusterConfig(o).status()), HasSubstr("service-account CA"));
}

TEST_F(ConfigTest, KubeconfigToTlsApiServerToSnapshot) {
  testing::TestCert cert = testing::MakeSelfSignedCert();
  auto server = testing::FakeApiServer::Start("", cert.cert_pem, cert.key_pem);
  ASSERT_TRUE(server.ok()) << server.status();
  std::string token_file = Write("token", "rotating-token\n");
  std::string path =
      Write("kubeconfig", absl::StrCat(R"(current-context: c
contexts: [{name: c, context: {cluster: k, user: u}}]
clusters: [{name: k, cluster: {server: ")",
                                       (*server)->Url(), R"(", certificate-authority-data: ")",
                                       absl::Base64Escape(cert.cert_pem), R"("}}]
users: [{name: u, user: {tokenFile: token}}]
)"));
  auto config = KubeconfigConfig(path);
  ASSERT_TRUE(config.ok()) << config.status();
  (*server)->Push(
      "/api/v1/namespaces",
      testing::FakeResponse::Json(
          R"({"kind":"NamespaceList","apiVersion":"v1","metadata":{"resourceVersion":"5"},)"
          R"("items":[{"metadata":{"name":"shop"}}]})"));
  std::mutex mu;
  std::condition_variable cv;
  std::optional<flowtables::ClusterState> got;
  WatchOptions options;
  options.kinds = {ResourceKind::kNamespace};
  options.debounce = std::chrono::milliseconds(10);
  auto source = ApiSource::Start(*config, options, [&](const flowtables::ClusterState& s) {
    std::lock_guard<std::mutex> lock(mu);
    got = s;
    cv.notify_all();
  });
  ASSERT_TRUE(source.ok()) << source.status();
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(5), [&] { return got.has_value(); }));
  }
  ASSERT_EQ(got->namespaces.size(), 1u);
  EXPECT_EQ(got->namespaces[0].name, "shop");
  auto reqs = (*server)->Requests("/api/v1/namespaces");
  ASSERT_FALSE(reqs.empty());
  EXPECT_EQ(reqs[0].headers["authorization"], "Bearer rotating-token");
  (*source)->Stop();
  (*server)->Stop();
}

}  // namespace
}  // namespace nicflow::k8s
