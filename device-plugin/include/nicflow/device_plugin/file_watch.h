// RAII wrappers for the file descriptors the daemon waits on: inotify, eventfd, netlink.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace nicflow::device_plugin {

/// Owns a file descriptor; closes it on destruction. Move-only.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd();

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release();

 private:
  int fd_ = -1;
};

/// One inotify event: the watch it came from, its IN_* mask and the entry name (may be empty).
struct InotifyEvent {
  int wd = -1;
  uint32_t mask = 0;
  std::string_view name;
};

/// A non-blocking inotify instance.
class Inotify {
 public:
  /// Errors: Internal with errno text when inotify_init1 fails (fd limits, no inotify).
  static absl::StatusOr<Inotify> Create();

  /// Adds (or updates) a watch. Errors: NotFound when the path does not exist, ResourceExhausted
  /// when the per-user watch limit is hit, Internal otherwise; each names the path.
  absl::StatusOr<int> AddWatch(const std::filesystem::path& path, uint32_t mask);

  /// Removes a watch; a watch the kernel already dropped (IN_IGNORED) is fine.
  void RemoveWatch(int wd);

  /// Reads every queued event and calls `on_event` for each. Returns the number read.
  int Drain(const std::function<void(const InotifyEvent&)>& on_event);

  int fd() const { return fd_.get(); }

 private:
  explicit Inotify(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

/// An eventfd used to wake a poll loop from another thread.
class WakeupFd {
 public:
  static absl::StatusOr<WakeupFd> Create();
  void Wake();
  void Drain();
  int fd() const { return fd_.get(); }

 private:
  explicit WakeupFd(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

/// A NETLINK_ROUTE socket subscribed to link changes (RTMGRP_LINK): the fast path for carrier
/// changes on real hardware, where sysfs attributes never raise inotify events.
class LinkEventSocket {
 public:
  /// Errors: Unavailable when netlink is not permitted (restricted container).
  static absl::StatusOr<LinkEventSocket> Create();
  /// Discards queued messages; returns true when at least one arrived.
  bool Drain();
  int fd() const { return fd_.get(); }

 private:
  explicit LinkEventSocket(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

}  // namespace nicflow::device_plugin
