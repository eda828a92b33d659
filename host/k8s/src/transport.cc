// Sockets: TCP (any address getaddrinfo returns, tried in order, each with the connect timeout)
// and unix. Reads wait with poll() so a silent peer becomes DeadlineExceeded after the idle
// timeout; Interrupt() shuts the socket down, which wakes poll() in the reading thread.
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "nicflow/flowtables/status.h"
#include "tls_transport.h"
#include "transport.h"

namespace nicflow::k8s::internal {

UniqueFd::~UniqueFd() {
  if (fd_ >= 0) ::close(fd_);
}

UniqueFd& UniqueFd::operator=(UniqueFd&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.Release();
  }
  return *this;
}

void Transport::Interrupt() {
  interrupted_.store(true);
  ::shutdown(fd_.get(), SHUT_RDWR);
}

absl::Status Transport::SocketError(std::string_view what, int err) const {
  if (interrupted_.load()) return absl::CancelledError(absl::StrCat(peer_, ": interrupted"));
  return absl::UnavailableError(absl::StrCat(peer_, ": ", Sv(what), ": ", std::strerror(err)));
}

absl::Status WaitReadable(int fd, std::chrono::milliseconds timeout, std::string_view peer) {
  pollfd p{fd, POLLIN, 0};
  for (;;) {
    int n = ::poll(&p, 1, static_cast<int>(timeout.count()));
    if (n > 0) return absl::OkStatus();
    if (n == 0) {
      return absl::DeadlineExceededError(
          absl::StrCat(Sv(peer), ": no data for ", timeout.count(), " ms"));
    }
    if (errno != EINTR) {
      return absl::UnavailableError(absl::StrCat(Sv(peer), ": poll: ", std::strerror(errno)));
    }
  }
}

namespace {

class PlainTransport final : public Transport {
 public:
  PlainTransport(UniqueFd fd, std::string peer, std::chrono::milliseconds idle)
      : Transport(std::move(fd), std::move(peer)), idle_(idle) {}

  absl::StatusOr<size_t> Read(char* buf, size_t n) override {
    if (interrupted_.load()) return SocketError("read", 0);
    NICFLOW_RETURN_IF_ERROR(WaitReadable(fd_.get(), idle_, peer_));
    for (;;) {
      ssize_t got = ::recv(fd_.get(), buf, n, 0);
      if (interrupted_.load()) return SocketError("read", 0);
      if (got >= 0) return static_cast<size_t>(got);
      if (errno != EINTR) return SocketError("read", errno);
    }
  }

  absl::Status Write(std::string_view data) override {
    while (!data.empty()) {
      ssize_t sent = ::send(fd_.get(), data.data(), data.size(), MSG_NOSIGNAL);
      if (sent < 0 && errno == EINTR) continue;
      if (sent < 0 || interrupted_.load()) return SocketError("write", errno);
      data.remove_prefix(static_cast<size_t>(sent));
    }
    return absl::OkStatus();
  }

 private:
  std::chrono::milliseconds idle_;
};

// Non-blocking connect bounded by `timeout`, then back to blocking mode.
absl::Status ConnectWithTimeout(int fd, const sockaddr* addr, socklen_t len,
                                std::chrono::milliseconds timeout, std::string_view peer) {
  int flags = ::fcntl(fd, F_GETFL, 0);
  ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
  int rc = ::connect(fd, addr, len);
  if (rc < 0 && errno != EINPROGRESS) {
    return absl::UnavailableError(absl::StrCat(Sv(peer), ": connect: ", std::strerror(errno)));
  }
  if (rc < 0) {
    pollfd p{fd, POLLOUT, 0};
    int n;
    do {
      n = ::poll(&p, 1, static_cast<int>(timeout.count()));
    } while (n < 0 && errno == EINTR);
    if (n == 0) {
      return absl::DeadlineExceededError(
          absl::StrCat(Sv(peer), ": connect: no answer in ", timeout.count(), " ms"));
    }
    int err = 0;
    socklen_t err_len = sizeof err;
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &err_len);
    if (n < 0 || err != 0) {
      return absl::UnavailableError(
          absl::StrCat(Sv(peer), ": connect: ", std::strerror(n < 0 ? errno : err)));
    }
  }
  ::fcntl(fd, F_SETFL, flags);
  return absl::OkStatus();
}

absl::StatusOr<UniqueFd> ConnectUnix(const HttpTarget& target, const HttpTimeouts& timeouts,
                                     std::string_view peer) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (target.unix_path.size() >= sizeof addr.sun_path) {
    return absl::InvalidArgumentError(absl::StrCat(Sv(peer), ": socket path too long"));
  }
  std::memcpy(addr.sun_path, target.unix_path.data(), target.unix_path.size());
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) {
    return absl::UnavailableError(absl::StrCat(Sv(peer), ": socket: ", std::strerror(errno)));
  }
  NICFLOW_RETURN_IF_ERROR(ConnectWithTimeout(fd.get(), reinterpret_cast<const sockaddr*>(&addr),
                                             sizeof addr, timeouts.connect, peer));
  return fd;
}

absl::StatusOr<UniqueFd> ConnectTcp(const HttpTarget& target, const HttpTimeouts& timeouts,
                                    std::string_view peer) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  std::string port = std::to_string(target.port);
  if (int rc = ::getaddrinfo(target.host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    return absl::UnavailableError(
        absl::StrCat(Sv(peer), ": cannot resolve ", target.host, ": ", ::gai_strerror(rc)));
  }
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> guard(found, ::freeaddrinfo);
  absl::Status last = absl::UnavailableError(absl::StrCat(Sv(peer), ": no address"));
  for (addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
    UniqueFd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol));
    if (fd.get() < 0) continue;
    last = ConnectWithTimeout(fd.get(), ai->ai_addr, ai->ai_addrlen, timeouts.connect, peer);
    if (last.ok()) {
      int one = 1;
      ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      ::setsockopt(fd.get(), SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
      return fd;
    }
  }
  return last;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Transport>> OpenTransport(const HttpTarget& target,
                                                         const TlsOptions& tls,
                                                         const HttpTimeouts& timeouts) {
  std::string peer = target.ToString();
  UniqueFd fd;
  if (target.scheme == HttpTarget::Scheme::kUnix) {
    NICFLOW_ASSIGN_OR_RETURN(fd, ConnectUnix(target, timeouts, peer));
  } else {
    NICFLOW_ASSIGN_OR_RETURN(fd, ConnectTcp(target, timeouts, peer));
  }
  if (target.scheme != HttpTarget::Scheme::kHttps) {
    return std::make_unique<PlainTransport>(std::move(fd), std::move(peer), timeouts.idle);
  }
  return OpenTlsTransport(std::move(fd), target, tls, timeouts);
}

}  // namespace nicflow::k8s::internal
