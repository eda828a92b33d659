// The HTTP/1.1 client: URL parsing, body framings byte by byte from a raw server, truncation,
// limits, interruption, timeouts, and TLS verification against a certificate made here.
#include "nicflow/k8s/http_client.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include "absl/strings/str_cat.h"
#include "fake_api_server.h"
#include "test_certs.h"

namespace nicflow::k8s {
namespace {

using ::testing::HasSubstr;

std::string Msg(const absl::Status& s) { return std::string(s.message()); }

// Answers one connection with `raw` bytes after reading the request head, then closes (or keeps
// the connection open for `hold_ms`).
class RawServer {
 public:
  explicit RawServer(std::string raw, int hold_ms = 0) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    ::listen(fd_, 1);
    thread_ = std::thread([this, raw = std::move(raw), hold_ms] {
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      std::string req;
      char buf[1024];
      while (req.find("\r\n\r\n") == std::string::npos) {
        ssize_t n = ::recv(c, buf, sizeof buf, 0);
        if (n <= 0) break;
        req.append(buf, static_cast<size_t>(n));
      }
      request_ = req;
      // Byte by byte: the client must reassemble lines and chunk headers across reads.
      for (char ch : raw) ::send(c, &ch, 1, MSG_NOSIGNAL);
      if (hold_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(hold_ms));
      ::close(c);
    });
  }
  ~RawServer() {
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
  }
  HttpTarget Target() const { return *HttpTarget::Parse(absl::StrCat("http://127.0.0.1:", port_)); }
  const std::string& request() const { return request_; }

 private:
  int fd_ = -1;
  int port_ = 0;
  std::thread thread_;
  std::string request_;
};

std::unique_ptr<HttpConnection> ConnectAndGet(const HttpTarget& target, HttpTimeouts t = {}) {
  auto conn = HttpConnection::Connect(target, {}, t);
  EXPECT_TRUE(conn.ok()) << conn.status();
  HttpRequest req;
  req.path = "/api/v1/pods?watch=1";
  req.headers = {{"Authorization", "Bearer abc"}};
  EXPECT_TRUE((*conn)->Send(req).ok());
  return *std::move(conn);
}

TEST(HttpTarget, ParsesServerUrls) {
  auto t = HttpTarget::Parse("https://10.96.0.1");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->port, 443);
  EXPECT_EQ(t->HostHeader(), "10.96.0.1");
  t = HttpTarget::Parse("https://[fd00::1]:6443/k8s/clusters/c-1/");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->host, "fd00::1");
  EXPECT_EQ(t->port, 6443);
  EXPECT_EQ(t->path_prefix, "/k8s/clusters/c-1");
  EXPECT_EQ(t->HostHeader(), "[fd00::1]:6443");
  t = HttpTarget::Parse("unix:///run/api.sock");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->unix_path, "/run/api.sock");
  EXPECT_THAT(Msg(HttpTarget::Parse("ftp://x").status()), HasSubstr("scheme"));
  EXPECT_THAT(Msg(HttpTarget::Parse("https://host:70000").status()),
              HasSubstr("port \"70000\" is not in 1..65535"));
  EXPECT_THAT(Msg(HttpTarget::Parse("https://host:").status()), HasSubstr("port"));
  EXPECT_THAT(Msg(HttpTarget::Parse("unix://run.sock").status()), HasSubstr("absolute path"));
  EXPECT_THAT(Msg(HttpTarget::Parse("https://[::1").status()), HasSubstr("unterminated"));
}

TEST(HttpConnection, ReadsChunkedLinesAcrossChunkBoundaries) {
  RawServer server(
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
      "5\r\nhello\r\n6\r\n wor\nl\r\n3;ext=1\r\nd\n!\r\n0\r\nX-Trailer: y\r\n\r\n");
  auto conn = ConnectAndGet(server.Target());
  auto head = conn->ReadHead();
  ASSERT_TRUE(head.ok()) << head.status();
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(*head->Header("content-type"), "application/json");
  std::vector<std::string> lines;
  for (;;) {
    auto line = conn->ReadLine(1024);
    ASSERT_TRUE(line.ok()) << line.status();
    if (!line->has_value()) break;
    lines.push_back(**line);
  }
  EXPECT_THAT(lines, ::testing::ElementsAre("hello wor", "ld", "!"));
  EXPECT_TRUE(conn->Reusable());
  EXPECT_THAT(server.request(), HasSubstr("GET /api/v1/pods?watch=1 HTTP/1.1\r\n"));
  EXPECT_THAT(server.request(), HasSubstr("Host: 127.0.0.1:"));
  EXPECT_THAT(server.request(), HasSubstr("Authorization: Bearer abc\r\n"));
}

TEST(HttpConnection, ReadsContentLengthAndUntilCloseBodies) {
  {
    RawServer server("HTTP/1.1 404 Not Found\r\nContent-Length: 7\r\n\r\n{\"a\":1}");
    auto conn = ConnectAndGet(server.Target());
    auto head = conn->ReadHead();
    ASSERT_TRUE(head.ok());
    EXPECT_EQ(head->status, 404);
    EXPECT_EQ(head->reason, "Not Found");
    auto body = conn->ReadBody(100);
    ASSERT_TRUE(body.ok());
    EXPECT_EQ(*body, "{\"a\":1}");
  }
  {
    RawServer server("HTTP/1.0 200 OK\r\n\r\nline1\nline2");
    auto conn = ConnectAndGet(server.Target());
    ASSERT_TRUE(conn->ReadHead().ok());
    EXPECT_EQ(**conn->ReadLine(100), "line1");
    EXPECT_EQ(**conn->ReadLine(100), "line2");
    EXPECT_FALSE(conn->ReadLine(100)->has_value());
    EXPECT_FALSE(conn->Reusable());
  }
}

TEST(HttpConnection, TruncatedBodiesAreUnavailable) {
  {
    RawServer server("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nab\ncd");
    auto conn = ConnectAndGet(server.Target());
    ASSERT_TRUE(conn->ReadHead().ok());
    EXPECT_EQ(**conn->ReadLine(100), "ab");
    auto line = conn->ReadLine(100);
    EXPECT_EQ(line.status().code(), absl::StatusCode::kUnavailable);
    EXPECT_THAT(Msg(line.status()), HasSubstr("connection closed in the middle of a chunk"));
  }
  {  // closed between chunks: no last chunk
    RawServer server("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab\n\r\n");
    auto conn = ConnectAndGet(server.Target());
    ASSERT_TRUE(conn->ReadHead().ok());
    EXPECT_EQ(**conn->ReadLine(100), "ab");
    EXPECT_EQ(conn->ReadLine(100).status().code(), absl::StatusCode::kUnavailable);
  }
  {
    RawServer server("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
    auto conn = ConnectAndGet(server.Target());
    ASSERT_TRUE(conn->ReadHead().ok());
    EXPECT_THAT(Msg(conn->ReadBody(100).status()), HasSubstr("in the middle of the body"));
  }
}

TEST(HttpConnection, RefusesMalformedAndOversizedInput) {
  {
    RawServer server("SSH-2.0-OpenSSH_9.2\r\n\r\n");
    auto conn = ConnectAndGet(server.Target());
    auto head = conn->ReadHead();
    EXPECT_EQ(head.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(Msg(head.status()), HasSubstr("not an HTTP/1.x status line: \"SSH-2.0"));
  }
  {
    RawServer server("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
    auto conn = ConnectAndGet(server.Target());
    ASSERT_TRUE(conn->ReadHead().ok());
    EXPECT_THAT(Msg(conn->ReadLine(100).status()), HasSubstr("bad chunk size line \"zz\""));
  }
  {
    RawServer server(absl::StrCat("HTTP/1.1 200 OK\r\n\r\n", std::string(300, 'x'), "\n"));
    auto conn = ConnectAndGet(server.Target());
    ASSERT_TRUE(conn->ReadHead().ok());
    EXPECT_EQ(conn->ReadLine(100).status().code(), absl::StatusCode::kResourceExhausted);
  }
}

TEST(HttpConnection, InterruptAndIdleTimeoutEndABlockedRead) {
  RawServer server("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 300);
  auto conn = ConnectAndGet(server.Target());
  ASSERT_TRUE(conn->ReadHead().ok());
  std::thread interrupter([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    conn->Interrupt();
  });
  auto line = conn->ReadLine(100);
  interrupter.join();
  EXPECT_EQ(line.status().code(), absl::StatusCode::kCancelled);

  RawServer silent("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 300);
  HttpTimeouts t;
  t.idle = std::chrono::milliseconds(50);
  auto conn2 = ConnectAndGet(silent.Target(), t);
  ASSERT_TRUE(conn2->ReadHead().ok());
  EXPECT_EQ(conn2->ReadLine(100).status().code(), absl::StatusCode::kDeadlineExceeded);
}

TEST(HttpConnection, ConnectFailureNamesTheServer) {
  auto t = HttpTarget::Parse("unix:///nonexistent/nicflow-api.sock");
  ASSERT_TRUE(t.ok());
  auto conn = HttpConnection::Connect(*t, {}, {});
  EXPECT_EQ(conn.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(Msg(conn.status()), HasSubstr("unix:///nonexistent/nicflow-api.sock"));
}

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cert_ = testing::MakeSelfSignedCert();
    auto server = testing::FakeApiServer::Start("", cert_.cert_pem, cert_.key_pem);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }
  absl::StatusOr<int> Get(const TlsOptions& tls) {
    auto target = HttpTarget::Parse(server_->Url());
    if (!target.ok()) return target.status();
    auto conn = HttpConnection::Connect(*target, tls, {});
    if (!conn.ok()) return conn.status();
    HttpRequest req;
    req.path = "/version";
    if (auto st = (*conn)->Send(req); !st.ok()) return st;
    auto head = (*conn)->ReadHead();
    if (!head.ok()) return head.status();
    auto body = (*conn)->ReadBody(1000);
    if (!body.ok()) return body.status();
    return head->status;
  }
  testing::TestCert cert_;
  std::unique_ptr<testing::FakeApiServer> server_;
};

TEST_F(TlsTest, VerifiesTheServerAgainstTheGivenCa) {
  server_->Push("/version", testing::FakeResponse::Json(R"({"gitVersion":"v1.31.2"})"));
  TlsOptions tls;
  tls.ca_pem = cert_.cert_pem;
  auto status = Get(tls);
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(*status, 200);
}

TEST_F(TlsTest, RefusesAnUntrustedOrMisnamedServer) {
  TlsOptions other;
  other.ca_pem = testing::MakeSelfSignedCert("someone-else").cert_pem;
  auto s = Get(other);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(Msg(s.status()), HasSubstr("certificate verification failed"));

  TlsOptions misnamed;
  misnamed.ca_pem = cert_.cert_pem;
  misnamed.server_name = "api.example.com";
  s = Get(misnamed);
  EXPECT_THAT(Msg(s.status()), HasSubstr("certificate verification failed"));

  TlsOptions named;  // the name in the certificate's SANs verifies
  named.ca_pem = cert_.cert_pem;
  named.server_name = "kubernetes.default.svc";
  server_->Push("/version", testing::FakeResponse::Json("{}"));
  EXPECT_TRUE(Get(named).ok());

  TlsOptions garbage;
  garbage.ca_pem = "not a certificate";
  s = Get(garbage);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(s.status()), HasSubstr("TLS CA: no PEM certificate"));

  TlsOptions half;
  half.ca_pem = cert_.cert_pem;
  half.client_cert_pem = cert_.cert_pem;
  EXPECT_THAT(Msg(Get(half).status()), HasSubstr("a certificate and a key are needed together"));
}

}  // namespace
}  // namespace nicflow::k8s
