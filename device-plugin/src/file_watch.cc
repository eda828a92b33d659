#include "nicflow/device_plugin/file_watch.h"

#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace nicflow::device_plugin {

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.release();
  }
  return *this;
}

UniqueFd::~UniqueFd() {
  if (fd_ >= 0) ::close(fd_);
}

int UniqueFd::release() {
  const int fd = fd_;
  fd_ = -1;
  return fd;
}

absl::StatusOr<Inotify> Inotify::Create() {
  const int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) return absl::InternalError(absl::StrCat("inotify_init1: ", std::strerror(errno)));
  return Inotify(UniqueFd(fd));
}

absl::StatusOr<int> Inotify::AddWatch(const std::filesystem::path& path, uint32_t mask) {
  const int wd = ::inotify_add_watch(fd_.get(), path.c_str(), mask);
  if (wd >= 0) return wd;
  const std::string message =
      absl::StrCat("inotify watch ", path.string(), ": ", std::strerror(errno));
  if (errno == ENOENT || errno == ENOTDIR) return absl::NotFoundError(message);
  if (errno == ENOSPC) {
    return absl::ResourceExhaustedError(message + " (raise fs.inotify.max_user_watches)");
  }
  return absl::InternalError(message);
}

void Inotify::RemoveWatch(int wd) { ::inotify_rm_watch(fd_.get(), wd); }

int Inotify::Drain(const std::function<void(const InotifyEvent&)>& on_event) {
  alignas(inotify_event) std::array<char, 16384> buffer;
  int count = 0;
  while (true) {
    const ssize_t n = ::read(fd_.get(), buffer.data(), buffer.size());
    if (n <= 0) break;  // EAGAIN: queue empty
    for (ssize_t offset = 0; offset < n;) {
      const auto* event = reinterpret_cast<const inotify_event*>(buffer.data() + offset);
      on_event(InotifyEvent{event->wd, event->mask,
                            event->len > 0 ? std::string_view(event->name) : std::string_view()});
      offset += static_cast<ssize_t>(sizeof(inotify_event) + event->len);
      ++count;
    }
  }
  return count;
}

absl::StatusOr<WakeupFd> WakeupFd::Create() {
  const int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) return absl::InternalError(absl::StrCat("eventfd: ", std::strerror(errno)));
  return WakeupFd(UniqueFd(fd));
}

void WakeupFd::Wake() {
  const uint64_t one = 1;
  [[maybe_unused]] const ssize_t n = ::write(fd_.get(), &one, sizeof(one));
}

void WakeupFd::Drain() {
  uint64_t value = 0;
  [[maybe_unused]] const ssize_t n = ::read(fd_.get(), &value, sizeof(value));
}

absl::StatusOr<LinkEventSocket> LinkEventSocket::Create() {
  UniqueFd fd(::socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_ROUTE));
  if (!fd.valid()) {
    return absl::UnavailableError(absl::StrCat("netlink socket: ", std::strerror(errno)));
  }
  sockaddr_nl address{};
  address.nl_family = AF_NETLINK;
  address.nl_groups = RTMGRP_LINK;
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    return absl::UnavailableError(absl::StrCat("netlink bind RTMGRP_LINK: ", std::strerror(errno)));
  }
  return LinkEventSocket(std::move(fd));
}

bool LinkEventSocket::Drain() {
  std::array<char, 8192> buffer;
  bool any = false;
  while (true) {
    if (::recv(fd_.get(), buffer.data(), buffer.size(), 0) > 0) {
      any = true;
    } else if (errno == ENOBUFS) {
      any = true;  // the kernel dropped messages: something changed, rescan
    } else {
      return any;
    }
  }
}

}  // namespace nicflow::device_plugin
