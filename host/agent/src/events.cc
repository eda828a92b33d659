#include "nicflow/agent/events.h"

#include <algorithm>

namespace nicflow::agent {

nlohmann::json Event::ToJson() const {
  nlohmann::json j{
      {"seq", seq}, {"unix_ms", unix_ms}, {"kind", kind}, {"error", error}, {"message", message}};
  if (!detail.is_null()) j["detail"] = detail;
  return j;
}

uint64_t EventLog::Add(std::string kind, bool error, std::string message, nlohmann::json detail) {
  uint64_t seq;
  {
    std::lock_guard lock(mu_);
    Event e;
    e.seq = seq = next_seq_++;
    e.unix_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
    e.kind = std::move(kind);
    e.error = error;
    e.message = std::move(message);
    e.detail = std::move(detail);
    ring_.push_back(std::move(e));
    while (ring_.size() > capacity_) ring_.pop_front();
  }
  cv_.notify_all();
  return seq;
}

std::vector<Event> EventLog::Since(uint64_t after) const {
  std::lock_guard lock(mu_);
  std::vector<Event> out;
  for (const Event& e : ring_) {
    if (e.seq > after) out.push_back(e);
  }
  return out;
}

std::vector<Event> EventLog::Last(size_t n) const {
  std::lock_guard lock(mu_);
  size_t skip = ring_.size() > n ? ring_.size() - n : 0;
  return std::vector<Event>(ring_.begin() + static_cast<std::ptrdiff_t>(skip), ring_.end());
}

std::vector<Event> EventLog::WaitAfter(uint64_t after,
                                       std::chrono::steady_clock::time_point deadline) {
  {
    std::unique_lock lock(mu_);
    cv_.wait_until(lock, deadline, [&] { return closed_ || next_seq_ - 1 > after; });
  }
  return Since(after);
}

void EventLog::Close() {
  {
    std::lock_guard lock(mu_);
    closed_ = true;
  }
  cv_.notify_all();
}

bool EventLog::closed() const {
  std::lock_guard lock(mu_);
  return closed_;
}

uint64_t EventLog::last_seq() const {
  std::lock_guard lock(mu_);
  return next_seq_ - 1;
}

}  // namespace nicflow::agent
