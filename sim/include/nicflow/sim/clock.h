// Time as the simulator sees it: injected, so conntrack and affinity timeouts are testable.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace nicflow::sim {

class Clock {
 public:
  virtual ~Clock() = default;
  /// Monotonic nanoseconds.
  virtual uint64_t NowNs() const noexcept = 0;
};

/// std::chrono::steady_clock.
class SteadyClock final : public Clock {
 public:
  uint64_t NowNs() const noexcept override {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                     std::chrono::steady_clock::now().time_since_epoch())
                                     .count());
  }
};

/// A clock tests move by hand. Starts at 1 s so "0" never means "now".
class ManualClock final : public Clock {
 public:
  uint64_t NowNs() const noexcept override { return now_ns_.load(std::memory_order_relaxed); }
  void AdvanceNs(uint64_t ns) { now_ns_.fetch_add(ns, std::memory_order_relaxed); }
  void AdvanceS(uint64_t s) { AdvanceNs(s * 1'000'000'000ull); }

 private:
  std::atomic<uint64_t> now_ns_{1'000'000'000ull};
};

}  // namespace nicflow::sim
