// Byte streams under HttpConnection: a TCP or unix socket, optionally wrapped in TLS (OpenSSL).
// Private to nicflow_k8s: no OpenSSL type leaves src/.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nicflow/k8s/http_client.h"

namespace nicflow::k8s::internal {

/// A file descriptor that closes itself.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd();
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.Release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  int get() const { return fd_; }
  int Release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_ = -1;
};

class Transport {
 public:
  virtual ~Transport() = default;
  /// Reads up to `n` bytes into `buf`; 0 at the end of the stream. Errors: Cancelled after
  /// Interrupt(), DeadlineExceeded after `idle` without a byte, Unavailable on a socket error.
  virtual absl::StatusOr<size_t> Read(char* buf, size_t n) = 0;
  /// Writes all of `data`. Errors: as Read.
  virtual absl::Status Write(std::string_view data) = 0;
  /// Shuts the socket down so a blocked Read returns. Thread-safe.
  void Interrupt();

 protected:
  Transport(UniqueFd fd, std::string peer) : fd_(std::move(fd)), peer_(std::move(peer)) {}
  /// Cancelled when interrupted, else the error for a failed socket call (errno).
  absl::Status SocketError(std::string_view what, int err) const;

  UniqueFd fd_;
  std::string peer_;  ///< for messages: the target URL
  std::atomic<bool> interrupted_{false};
};

/// Waits until `fd` is readable. Errors: DeadlineExceeded after `timeout`, Unavailable.
absl::Status WaitReadable(int fd, std::chrono::milliseconds timeout, std::string_view peer);

/// Connects to `target`; for https also handshakes and verifies. Errors: see
/// HttpConnection::Connect.
absl::StatusOr<std::unique_ptr<Transport>> OpenTransport(const HttpTarget& target,
                                                         const TlsOptions& tls,
                                                         const HttpTimeouts& timeouts);

}  // namespace nicflow::k8s::internal
