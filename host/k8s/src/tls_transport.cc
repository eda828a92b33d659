// TLS client over our socket. The socket stays blocking with SO_RCVTIMEO/SO_SNDTIMEO as the
// safety net; reads first poll() (unless OpenSSL already holds decrypted bytes) so the idle
// timeout and Interrupt() behave as on plain sockets. I/O goes through a small BIO of our own
// that writes with MSG_NOSIGNAL: a peer closing the connection must not raise SIGPIPE in the
// agent. A close without close_notify counts as end of stream (SSL_OP_IGNORE_UNEXPECTED_EOF);
// HTTP framing detects truncated bodies itself.
#include "tls_transport.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "nicflow/flowtables/status.h"

namespace nicflow::k8s::internal {
namespace {

struct SslCtxFree {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
struct SslFree {
  void operator()(SSL* s) const { SSL_free(s); }
};
struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxFree>;
using SslPtr = std::unique_ptr<SSL, SslFree>;
using BioPtr = std::unique_ptr<BIO, BioFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

// Drains OpenSSL's error queue into one message.
std::string OpenSslErrors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "unknown TLS error" : out;
}

// --- the socket BIO -----------------------------------------------------------------------

int BioFd(BIO* b) { return static_cast<int>(reinterpret_cast<intptr_t>(BIO_get_data(b))); }

int BioWrite(BIO* b, const char* data, int len) {
  BIO_clear_retry_flags(b);
  ssize_t n;
  do {
    n = ::send(BioFd(b), data, static_cast<size_t>(len), MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) BIO_set_retry_write(b);
  return static_cast<int>(n);
}

int BioRead(BIO* b, char* data, int len) {
  BIO_clear_retry_flags(b);
  ssize_t n;
  do {
    n = ::recv(BioFd(b), data, static_cast<size_t>(len), 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) BIO_set_retry_read(b);
  return static_cast<int>(n);
}

long BioCtrl(BIO*, int cmd, long, void*) { return cmd == BIO_CTRL_FLUSH ? 1 : 0; }

int BioCreate(BIO* b) {
  BIO_set_init(b, 1);
  return 1;
}

const BIO_METHOD* SocketBioMethod() {
  static BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "nicflow-socket");
    BIO_meth_set_write(m, BioWrite);
    BIO_meth_set_read(m, BioRead);
    BIO_meth_set_ctrl(m, BioCtrl);
    BIO_meth_set_create(m, BioCreate);
    return m;
  }();
  return method;
}

// --- context ------------------------------------------------------------------------------

BioPtr MemBio(const std::string& pem) {
  return BioPtr(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

absl::Status LoadCa(SSL_CTX* ctx, const std::string& pem) {
  if (pem.empty()) {
    SSL_CTX_set_default_verify_paths(ctx);
    return absl::OkStatus();
  }
  BioPtr bio = MemBio(pem);
  X509_STORE* store = SSL_CTX_get_cert_store(ctx);
  int added = 0;
  while (X509Ptr cert{PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)}) {
    if (X509_STORE_add_cert(store, cert.get()) == 1) ++added;
  }
  ERR_clear_error();  // the loop ends on "no start line"
  if (added == 0) {
    return absl::InvalidArgumentError("TLS CA: no PEM certificate found in the CA data");
  }
  return absl::OkStatus();
}

absl::Status LoadClientIdentity(SSL_CTX* ctx, const TlsOptions& tls) {
  if (tls.client_cert_pem.empty() && tls.client_key_pem.empty()) return absl::OkStatus();
  if (tls.client_cert_pem.empty() || tls.client_key_pem.empty()) {
    return absl::InvalidArgumentError(
        "TLS client certificate: a certificate and a key are needed together");
  }
  BioPtr cert_bio = MemBio(tls.client_cert_pem);
  X509Ptr cert{PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr)};
  if (!cert || SSL_CTX_use_certificate(ctx, cert.get()) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("TLS client certificate: not a usable PEM certificate: ", OpenSslErrors()));
  }
  while (X509* extra = PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr)) {
    SSL_CTX_add_extra_chain_cert(ctx, extra);  // takes ownership
  }
  ERR_clear_error();
  BioPtr key_bio = MemBio(tls.client_key_pem);
  PkeyPtr key{PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr)};
  if (!key || SSL_CTX_use_PrivateKey(ctx, key.get()) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("TLS client key: not a usable PEM private key: ", OpenSslErrors()));
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    return absl::InvalidArgumentError("TLS client key: does not match the client certificate");
  }
  return absl::OkStatus();
}

absl::StatusOr<SslCtxPtr> MakeContext(const TlsOptions& tls) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) return absl::InternalError(absl::StrCat("TLS: ", OpenSslErrors()));
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  SSL_CTX_set_options(ctx.get(), SSL_OP_IGNORE_UNEXPECTED_EOF);
  SSL_CTX_set_verify(ctx.get(), tls.insecure_skip_verify ? SSL_VERIFY_NONE : SSL_VERIFY_PEER,
                     nullptr);
  NICFLOW_RETURN_IF_ERROR(LoadCa(ctx.get(), tls.ca_pem));
  NICFLOW_RETURN_IF_ERROR(LoadClientIdentity(ctx.get(), tls));
  return ctx;
}

bool IsIpLiteral(const std::string& host) {
  unsigned char buf[16];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

void SetTimeouts(int fd, std::chrono::milliseconds t) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(t.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((t.count() % 1000) * 1000);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

class TlsTransport final : public Transport {
 public:
  TlsTransport(UniqueFd fd, std::string peer, SslCtxPtr ctx, SslPtr ssl,
               std::chrono::milliseconds idle)
      : Transport(std::move(fd), std::move(peer)),
        ctx_(std::move(ctx)),
        ssl_(std::move(ssl)),
        idle_(idle) {}

  absl::StatusOr<size_t> Read(char* buf, size_t n) override {
    if (interrupted_.load()) return SocketError("read", 0);
    if (SSL_pending(ssl_.get()) == 0) {
      NICFLOW_RETURN_IF_ERROR(WaitReadable(fd_.get(), idle_, peer_));
    }
    size_t got = 0;
    int rc = SSL_read_ex(ssl_.get(), buf, n, &got);
    if (interrupted_.load()) return SocketError("read", 0);
    if (rc == 1) return got;
    return Failure(rc, "read");
  }

  absl::Status Write(std::string_view data) override {
    while (!data.empty()) {
      size_t sent = 0;
      int rc = SSL_write_ex(ssl_.get(), data.data(), data.size(), &sent);
      if (interrupted_.load()) return SocketError("write", 0);
      if (rc != 1) return Failure(rc, "write").status();
      data.remove_prefix(sent);
    }
    return absl::OkStatus();
  }

 private:
  absl::StatusOr<size_t> Failure(int rc, std::string_view what) {
    int err = SSL_get_error(ssl_.get(), rc);
    if (err == SSL_ERROR_ZERO_RETURN) return size_t{0};
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
      return absl::DeadlineExceededError(
          absl::StrCat(peer_, ": TLS ", Sv(what), ": no progress for ", idle_.count(), " ms"));
    }
    if (err == SSL_ERROR_SYSCALL && errno != 0) return SocketError(what, errno);
    if (err == SSL_ERROR_SYSCALL) return size_t{0};
    return absl::UnavailableError(absl::StrCat(peer_, ": TLS ", Sv(what), ": ", OpenSslErrors()));
  }

  SslCtxPtr ctx_;
  SslPtr ssl_;
  std::chrono::milliseconds idle_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Transport>> OpenTlsTransport(UniqueFd fd, const HttpTarget& target,
                                                            const TlsOptions& tls,
                                                            const HttpTimeouts& timeouts) {
  std::string peer = target.ToString();
  auto ctx_or = MakeContext(tls);
  if (!ctx_or.ok()) {
    return absl::Status(ctx_or.status().code(),
                        absl::StrCat(peer, ": ", ctx_or.status().message()));
  }
  SslCtxPtr ctx = std::move(ctx_or).value();
  SslPtr ssl(SSL_new(ctx.get()));
  BIO* bio = BIO_new(SocketBioMethod());
  if (!ssl || bio == nullptr) {
    if (bio != nullptr) BIO_free(bio);
    return absl::InternalError(absl::StrCat(peer, ": TLS: ", OpenSslErrors()));
  }
  BIO_set_data(bio, reinterpret_cast<void*>(static_cast<intptr_t>(fd.get())));
  SSL_set_bio(ssl.get(), bio, bio);  // ssl owns the BIO
  const std::string& name = tls.server_name.empty() ? target.host : tls.server_name;
  if (!tls.insecure_skip_verify) {
    if (IsIpLiteral(name)) {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl.get()), name.c_str());
    } else {
      SSL_set1_host(ssl.get(), name.c_str());
    }
  }
  if (!IsIpLiteral(name)) SSL_set_tlsext_host_name(ssl.get(), name.c_str());
  SetTimeouts(fd.get(), timeouts.connect);
  if (SSL_connect(ssl.get()) != 1) {
    long verify = SSL_get_verify_result(ssl.get());
    std::string why = verify != X509_V_OK ? absl::StrCat("certificate verification failed: ",
                                                         X509_verify_cert_error_string(verify))
                                          : OpenSslErrors();
    ERR_clear_error();
    return absl::UnavailableError(absl::StrCat(peer, ": TLS handshake: ", why));
  }
  SetTimeouts(fd.get(), timeouts.idle);
  return std::make_unique<TlsTransport>(std::move(fd), std::move(peer), std::move(ctx),
                                        std::move(ssl), timeouts.idle);
}

}  // namespace nicflow::k8s::internal
