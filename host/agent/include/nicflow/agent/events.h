// EventLog: what the agent did, newest last, for `nicflow events` and the Events RPC stream.
//
// A bounded ring (the last `capacity` events) with sequence numbers, so a reader that fell behind
// knows how many it missed. Readers block in WaitAfter() until a newer event arrives, the
// deadline passes or the log is closed (agent shutdown).
//
// Thread-safety: all methods may be called from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace nicflow::agent {

struct Event {
  uint64_t seq = 0;     ///< 1, 2, ... for the agent's lifetime
  int64_t unix_ms = 0;  ///< wall clock
  std::string kind;     ///< started, applied, unchanged, load-failed, compile-failed, apply-failed
  bool error = false;   ///< kind is a failure
  std::string message;  ///< one line for humans
  nlohmann::json detail;  ///< e.g. the reconciler's ConvergeReport as JSON; null when none

  nlohmann::json ToJson() const;
};

class EventLog {
 public:
  explicit EventLog(size_t capacity = 512) : capacity_(capacity) {}

  /// Appends an event (seq and time are filled in) and wakes waiting readers.
  uint64_t Add(std::string kind, bool error, std::string message, nlohmann::json detail = {});
  /// Events with seq > `after`, oldest first (at most the ring's content).
  std::vector<Event> Since(uint64_t after) const;
  /// The newest `n` events.
  std::vector<Event> Last(size_t n) const;
  /// Waits until an event with seq > `after` exists, `deadline` passes or Close(); returns
  /// whatever Since(after) holds then.
  std::vector<Event> WaitAfter(uint64_t after, std::chrono::steady_clock::time_point deadline);
  /// Wakes every waiter for good (shutdown).
  void Close();
  bool closed() const;
  uint64_t last_seq() const;

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  size_t capacity_;
  std::deque<Event> ring_;
  uint64_t next_seq_ = 1;
  bool closed_ = false;
};

}  // namespace nicflow::agent
