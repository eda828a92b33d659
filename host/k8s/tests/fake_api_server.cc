#include "fake_api_server.h"

#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace nicflow::k8s::testing {

FakeResponse FakeResponse::Json(std::string body, int status) {
  FakeResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

FakeResponse FakeResponse::Stream(std::vector<std::string> lines, End end) {
  FakeResponse r;
  r.stream = true;
  r.lines = std::move(lines);
  r.end = end;
  return r;
}

absl::StatusOr<FakeResponse> FakeResponse::StreamFile(const std::string& path, End end) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::ostringstream text;
  text << in.rdbuf();
  std::vector<std::string> lines = absl::StrSplit(text.str(), '\n');
  std::string tail = lines.back();  // "" when the file ends with a newline
  lines.pop_back();
  lines.erase(std::remove(lines.begin(), lines.end(), ""), lines.end());
  FakeResponse r = Stream(std::move(lines), tail.empty() ? end : End::kDrop);
  if (!tail.empty()) r.cut_tail = tail;
  return r;
}

std::string RecordedRequest::Param(const std::string& name) const {
  for (absl::string_view kv : absl::StrSplit(query, '&')) {
    size_t eq = kv.find('=');
    if (kv.substr(0, eq) == name) {
      return eq == absl::string_view::npos ? "" : std::string(kv.substr(eq + 1));
    }
  }
  return "";
}

struct FakeApiServer::Impl {
  int listen_fd = -1;
  std::string unix_path;
  int port = 0;
  SSL_CTX* tls = nullptr;
  std::thread acceptor;

  mutable std::mutex mu;
  mutable std::condition_variable cv;
  bool stopping = false;
  std::map<std::string, std::deque<FakeResponse>> queues;
  std::map<std::string, bool> not_found;
  std::vector<RecordedRequest> requests;
  std::vector<int> client_fds;
  std::vector<std::thread> workers;
};

namespace {

// A connection, plain or TLS.
struct Conn {
  int fd;
  SSL* ssl = nullptr;
  ssize_t Read(char* buf, size_t n) {
    if (ssl != nullptr) {
      size_t got = 0;
      return SSL_read_ex(ssl, buf, n, &got) == 1 ? static_cast<ssize_t>(got) : 0;
    }
    return ::recv(fd, buf, n, 0);
  }
  bool Write(const std::string& s) {
    size_t off = 0;
    while (off < s.size()) {
      if (ssl != nullptr) {
        size_t sent = 0;
        if (SSL_write_ex(ssl, s.data() + off, s.size() - off, &sent) != 1) return false;
        off += sent;
        continue;
      }
      ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }
};

}  // namespace

absl::StatusOr<std::unique_ptr<FakeApiServer>> FakeApiServer::Start(std::string unix_path,
                                                                    std::string cert_pem,
                                                                    std::string key_pem) {
  std::unique_ptr<FakeApiServer> s(new FakeApiServer());
  s->impl_ = std::make_unique<Impl>();
  Impl& im = *s->impl_;
  if (!unix_path.empty()) {
    ::unlink(unix_path.c_str());
    im.listen_fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, unix_path.c_str(), sizeof addr.sun_path - 1);
    if (::bind(im.listen_fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      return absl::UnavailableError(absl::StrCat("bind ", unix_path, ": ", std::strerror(errno)));
    }
    im.unix_path = unix_path;
  } else {
    im.listen_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(im.listen_fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      return absl::UnavailableError(absl::StrCat("bind: ", std::strerror(errno)));
    }
    socklen_t len = sizeof addr;
    ::getsockname(im.listen_fd, reinterpret_cast<sockaddr*>(&addr), &len);
    im.port = ntohs(addr.sin_port);
  }
  ::listen(im.listen_fd, 64);
  if (!cert_pem.empty()) {
    // OpenSSL's server side writes with write(): a client that hangs up mid-handshake (as the
    // verification tests make it) must not kill the test process with SIGPIPE.
    std::signal(SIGPIPE, SIG_IGN);
    im.tls = SSL_CTX_new(TLS_server_method());
    BIO* cb = BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size()));
    X509* cert = PEM_read_bio_X509(cb, nullptr, nullptr, nullptr);
    BIO* kb = BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size()));
    EVP_PKEY* key = PEM_read_bio_PrivateKey(kb, nullptr, nullptr, nullptr);
    bool ok = cert && key && SSL_CTX_use_certificate(im.tls, cert) == 1 &&
              SSL_CTX_use_PrivateKey(im.tls, key) == 1;
    X509_free(cert);
    EVP_PKEY_free(key);
    BIO_free(cb);
    BIO_free(kb);
    if (!ok) return absl::InvalidArgumentError("fake API server: unusable certificate or key");
  }
  s->impl_->acceptor = std::thread([srv = s.get()] { srv->AcceptLoop(); });
  return s;
}

FakeApiServer::~FakeApiServer() { Stop(); }

std::string FakeApiServer::Url() const {
  if (!impl_->unix_path.empty()) return absl::StrCat("unix://", impl_->unix_path);
  return absl::StrCat(impl_->tls ? "https" : "http", "://127.0.0.1:", impl_->port);
}

void FakeApiServer::Push(const std::string& path, FakeResponse response) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->queues[path].push_back(std::move(response));
  impl_->cv.notify_all();
}

void FakeApiServer::NotFound(const std::string& path) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->not_found[path] = true;
  impl_->cv.notify_all();
}

std::vector<RecordedRequest> FakeApiServer::Requests(const std::string& path) const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  std::vector<RecordedRequest> out;
  for (const auto& r : impl_->requests) {
    if (path.empty() || r.path == path) out.push_back(r);
  }
  return out;
}

bool FakeApiServer::WaitForRequests(const std::string& path, size_t count, int timeout_ms) const {
  std::unique_lock<std::mutex> lock(impl_->mu);
  return impl_->cv.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] {
    return std::count_if(impl_->requests.begin(), impl_->requests.end(),
                         [&](const auto& r) { return r.path == path; }) >= static_cast<long>(count);
  });
}

void FakeApiServer::Stop() {
  if (!impl_) return;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (impl_->stopping) return;
    impl_->stopping = true;
    for (int fd : impl_->client_fds) ::shutdown(fd, SHUT_RDWR);
    impl_->cv.notify_all();
  }
  ::shutdown(impl_->listen_fd, SHUT_RDWR);
  if (impl_->acceptor.joinable()) impl_->acceptor.join();
  for (std::thread& t : impl_->workers) t.join();
  ::close(impl_->listen_fd);
  if (!impl_->unix_path.empty()) ::unlink(impl_->unix_path.c_str());
  SSL_CTX_free(impl_->tls);
}

void FakeApiServer::AcceptLoop() {
  for (;;) {
    int fd = ::accept4(impl_->listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (fd < 0 || impl_->stopping) {
      if (fd >= 0) ::close(fd);
      if (impl_->stopping || (errno != EINTR && errno != ECONNABORTED)) return;
      continue;
    }
    impl_->client_fds.push_back(fd);
    impl_->workers.emplace_back([this, fd] { Serve(fd); });
  }
}

namespace {

bool ReadRequest(Conn& c, std::string& buf, RecordedRequest& req) {
  size_t end;
  while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
    char chunk[4096];
    ssize_t n = c.Read(chunk, sizeof chunk);
    if (n <= 0) return false;
    buf.append(chunk, static_cast<size_t>(n));
  }
  std::string head = buf.substr(0, end);
  buf.erase(0, end + 4);
  std::vector<std::string> lines = absl::StrSplit(head, "\r\n");
  std::vector<std::string> first = absl::StrSplit(lines[0], ' ');
  if (first.size() < 2) return false;
  req.method = first[0];
  size_t q = first[1].find('?');
  req.path = first[1].substr(0, q);
  req.query = q == std::string::npos ? "" : first[1].substr(q + 1);
  for (size_t i = 1; i < lines.size(); ++i) {
    size_t colon = lines[i].find(':');
    if (colon == std::string::npos) continue;
    req.headers[absl::AsciiStrToLower(lines[i].substr(0, colon))] =
        std::string(absl::StripAsciiWhitespace(lines[i].substr(colon + 1)));
  }
  return true;
}

std::string Chunk(const std::string& data) {
  std::ostringstream s;
  s << std::hex << data.size() << "\r\n" << data << "\r\n";
  return s.str();
}

}  // namespace

void FakeApiServer::Serve(int fd) {
  Conn c{fd};
  if (impl_->tls != nullptr) {
    c.ssl = SSL_new(impl_->tls);
    SSL_set_fd(c.ssl, fd);
    if (SSL_accept(c.ssl) != 1) {
      ERR_clear_error();
      SSL_free(c.ssl);
      ::close(fd);
      return;
    }
  }
  std::string buf;
  RecordedRequest req;
  while (ReadRequest(c, buf, req)) {
    FakeResponse resp;
    {
      std::unique_lock<std::mutex> lock(impl_->mu);
      impl_->requests.push_back(req);
      impl_->cv.notify_all();
      impl_->cv.wait(lock, [&] {
        return impl_->stopping || impl_->not_found.count(req.path) != 0 ||
               !impl_->queues[req.path].empty();
      });
      if (impl_->stopping) break;
      if (impl_->not_found.count(req.path) != 0) {
        resp = FakeResponse::Json(
            R"({"kind":"Status","apiVersion":"v1","status":"Failure","message":"the server could not find the requested resource","reason":"NotFound","code":404})",
            404);
      } else {
        resp = std::move(impl_->queues[req.path].front());
        impl_->queues[req.path].pop_front();
      }
    }
    std::string head =
        absl::StrCat("HTTP/1.1 ", resp.status, " X\r\nContent-Type: application/json\r\n");
    if (!resp.stream) {
      absl::StrAppend(&head, "Content-Length: ", resp.body.size(), "\r\n\r\n", resp.body);
      if (!c.Write(head)) break;
      continue;
    }
    absl::StrAppend(&head, "Transfer-Encoding: chunked\r\n\r\n");
    bool ok = c.Write(head);
    for (const std::string& line : resp.lines) ok = ok && c.Write(Chunk(line + "\n"));
    if (!ok) break;
    if (resp.end == FakeResponse::End::kClean) {
      if (!c.Write("0\r\n\r\n")) break;
      continue;
    }
    if (resp.end == FakeResponse::End::kDrop) {
      std::ostringstream header;
      header << std::hex << resp.cut_tail.size() + 512 << "\r\n";
      c.Write(header.str() + resp.cut_tail);  // the connection drops inside this chunk
      break;
    }
    std::unique_lock<std::mutex> lock(impl_->mu);
    impl_->cv.wait(lock, [&] { return impl_->stopping; });
    break;
  }
  if (c.ssl != nullptr) SSL_free(c.ssl);
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->client_fds.erase(std::find(impl_->client_fds.begin(), impl_->client_fds.end(), fd));
  ::close(fd);
}

}  // namespace nicflow::k8s::testing
