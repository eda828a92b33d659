// A small HTTP/1.1 client of our own, for the Kubernetes API server: one request at a time on one
// connection, over TCP, TLS (OpenSSL) or a unix socket (tests, kubectl proxy --unix-socket).
//
// Why our own: the agent needs exactly GET with a bearer token, Content-Length and chunked
// bodies, and a body read line by line as it arrives (a watch is newline-delimited JSON that
// stays open for minutes). Those few features are small enough to own, and owning them keeps the
// read loop interruptible (Interrupt() from another thread) and every failure a Status that
// names the server.
//
// Bodies: Content-Length, chunked (extensions and trailers ignored) or read-until-close. A body
// that ends early — connection closed inside a chunk or before Content-Length bytes, or a chunked
// body closed without its last chunk — is an Unavailable error, so a watch can tell "the server
// ended the stream" (ReadLine returns nullopt) from "the connection dropped".
//
// Thread-safety: one thread uses a connection; Interrupt() may be called from any thread while
// the connection is alive and makes a blocked read return Cancelled.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace nicflow::k8s {

/// TLS settings for https targets.
struct TlsOptions {
  std::string ca_pem;           ///< trusted CA certificates (PEM); empty: the system's CA store
  std::string client_cert_pem;  ///< client certificate chain (PEM); needs client_key_pem
  std::string client_key_pem;   ///< client private key (PEM)
  std::string server_name;      ///< name to verify and send as SNI instead of the URL's host
  bool insecure_skip_verify = false;  ///< kubeconfig insecure-skip-tls-verify; tests only
};

/// Where to connect, parsed from "http://host[:port][/prefix]", "https://..." or
/// "unix:///path/to.sock". IPv6 hosts are written in brackets: "https://[fd00::1]:6443".
struct HttpTarget {
  enum class Scheme : uint8_t { kHttp, kHttps, kUnix };
  Scheme scheme = Scheme::kHttps;
  std::string host;         ///< without brackets; empty for unix
  uint16_t port = 0;        ///< defaulted to 80/443
  std::string unix_path;    ///< for kUnix
  std::string path_prefix;  ///< path of the server URL without a trailing '/', e.g. "/k8s/c1"

  /// Parses a server URL. Errors: InvalidArgument naming the URL and what is wrong with it.
  static absl::StatusOr<HttpTarget> Parse(std::string_view url);
  /// The Host header value ("host:port", "[v6]:port", "localhost" for unix sockets).
  std::string HostHeader() const;
  /// For messages: the URL as given back ("https://10.0.0.1:6443").
  std::string ToString() const;
};

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
  std::string method = "GET";
  std::string path;     ///< origin-form, already percent-encoded: "/api/v1/pods?watch=1"
  HttpHeaders headers;  ///< besides Host, which the connection adds
  std::string body;     ///< sent with Content-Length when not empty
};

struct HttpResponseHead {
  int status = 0;
  std::string reason;
  HttpHeaders headers;
  /// First header of that name (case-insensitive), or nullptr.
  const std::string* Header(std::string_view name) const;
};

struct HttpTimeouts {
  std::chrono::milliseconds connect{5000};  ///< TCP connect and TLS handshake
  /// Longest wait for any byte once connected; a watch stream with bookmarks enabled sends at
  /// least one event a minute, so a longer silence means a dead connection.
  std::chrono::milliseconds idle{90000};
};

class HttpConnection {
 public:
  /// Connects (and, for https, completes the TLS handshake, verifying the server against
  /// `tls.ca_pem` and the host name or IP). Errors: InvalidArgument for unusable TLS material
  /// (naming which: CA, client certificate, key), Unavailable when the server cannot be reached
  /// or the handshake fails, DeadlineExceeded on timeout.
  static absl::StatusOr<std::unique_ptr<HttpConnection>> Connect(const HttpTarget& target,
                                                                 const TlsOptions& tls,
                                                                 const HttpTimeouts& timeouts);
  virtual ~HttpConnection() = default;

  /// Sends a request. The previous response's body must have been read to its end.
  virtual absl::Status Send(const HttpRequest& request) = 0;
  /// Reads the status line and headers of the response. Errors: Unavailable when the connection
  /// closes, InvalidArgument for a malformed response (naming the line), DeadlineExceeded.
  virtual absl::StatusOr<HttpResponseHead> ReadHead() = 0;
  /// The next line of the body without its "\n" (or "\r\n"); nullopt at the end of the body (a
  /// last line without "\n" is returned first). Errors: Unavailable when the body ends early,
  /// ResourceExhausted for a line longer than max_line_bytes, Cancelled after Interrupt().
  virtual absl::StatusOr<std::optional<std::string>> ReadLine(size_t max_line_bytes) = 0;
  /// The rest of the body. Errors: as ReadLine; ResourceExhausted beyond max_bytes.
  virtual absl::StatusOr<std::string> ReadBody(size_t max_bytes) = 0;
  /// Whether the connection can carry another request (keep-alive and the body fully read).
  virtual bool Reusable() const = 0;
  /// Makes a blocked or later read or write fail with Cancelled. Thread-safe.
  virtual void Interrupt() = 0;
};

/// Percent-encodes a query parameter value (RFC 3986 unreserved characters pass through).
std::string UrlEncode(std::string_view s);

}  // namespace nicflow::k8s
