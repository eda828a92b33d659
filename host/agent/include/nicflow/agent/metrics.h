// Prometheus text exposition (format 0.0.4) and the small HTTP server that serves it.
//
// The agent renders its metrics at scrape time from what it already keeps (installed program,
// placement report, device counters), so nothing is double-booked; only the apply latency
// histogram and the error counters are accumulated here.
//
// The server is deliberately tiny: one thread, blocking accept with poll() so Stop() is prompt,
// HTTP/1.0-style one request per connection, GET /metrics (and / for a hint) only, request
// headers capped at 8 KiB and a 2 s read timeout so a slow client cannot wedge it. Scrapes are
// rare (seconds apart), so serving them one at a time is enough.
//
// Thread-safety: Histogram and MetricsWriter are not thread-safe (the agent guards them);
// MetricsHttpServer calls its render function from its own thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"

namespace nicflow::agent {

/// A cumulative histogram with fixed upper bounds (seconds for latencies).
class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void Observe(double v);
  const std::vector<double>& bounds() const { return bounds_; }
  const std::vector<uint64_t>& counts() const { return counts_; }  ///< per bucket, not cumulative
  uint64_t count() const { return count_; }
  double sum() const { return sum_; }

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;
  uint64_t count_ = 0;
  double sum_ = 0;
};

using Labels = std::vector<std::pair<std::string, std::string>>;

/// Builds the exposition text; HELP/TYPE lines are written once per metric family.
class MetricsWriter {
 public:
  void Gauge(const std::string& name, const std::string& help, double v, const Labels& l = {});
  void Counter(const std::string& name, const std::string& help, double v, const Labels& l = {});
  void Hist(const std::string& name, const std::string& help, const Histogram& h,
            const Labels& l = {});
  std::string Text() const { return out_; }

 private:
  void Header(const std::string& name, const std::string& help, const char* type);
  void Sample(const std::string& name, double v, const Labels& l);
  std::string out_;
  std::map<std::string, bool> seen_;
};

/// Escapes a label value (backslash, quote, newline).
std::string EscapeLabelValue(const std::string& v);

class MetricsHttpServer {
 public:
  /// Listens on `address` ("host:port", IPv4 or [v6]; port 0 picks a free one). Errors:
  /// InvalidArgument (bad address), Unavailable (bind/listen failed, with errno text).
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(
      const std::string& address, std::function<std::string()> render);
  ~MetricsHttpServer();
  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;

  uint16_t port() const { return port_; }
  void Stop();

 private:
  MetricsHttpServer(int fd, uint16_t port, std::function<std::string()> render);
  void Loop();
  void Serve(int conn);

  int fd_;
  uint16_t port_;
  std::function<std::string()> render_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace nicflow::agent
