// A Kubernetes API server stand-in for tests: HTTP/1.1 on a unix socket or loopback TCP (port
// 0), answering each collection path from a queue of scripted responses the test pushes. A
// request for a path whose queue is empty waits until the test pushes one (or the server stops),
// so a test can look at the client's state between two responses.
//
// A response is either a plain body (Content-Length) or a watch stream: chunked, one chunk per
// line, ending cleanly (terminating chunk), by dropping the connection in the middle of a chunk,
// or by staying open until the server stops. Optionally over TLS with a certificate the test
// provides.
#pragma once

#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"

namespace nicflow::k8s::testing {

struct FakeResponse {
  enum class End : uint8_t { kClean, kDrop, kHang };
  int status = 200;
  std::string body;                ///< plain responses
  bool stream = false;             ///< chunked watch stream of `lines`
  std::vector<std::string> lines;  ///< each sent as one chunk with its "\n"
  End end = End::kClean;
  /// For kDrop: the bytes of the event being sent when the connection dropped; they go out in a
  /// chunk whose header announces more, so the client sees the cut inside a chunk.
  std::string cut_tail = R"({"type":"MODIFIED","object":{"kind":)";

  static FakeResponse Json(std::string body, int status = 200);
  /// A watch stream from a recorded file: JSON lines as the API server sends them. A file whose
  /// last line has no newline recorded a dropped connection: that partial line is the cut_tail
  /// and `end` becomes kDrop.
  static absl::StatusOr<FakeResponse> StreamFile(const std::string& path, End end);
  static FakeResponse Stream(std::vector<std::string> lines, End end);
};

struct RecordedRequest {
  std::string method;
  std::string path;                            ///< without the query
  std::string query;                           ///< after '?'
  std::map<std::string, std::string> headers;  ///< names lower-cased
  /// The value of query parameter `name`, "" when absent (no percent-decoding).
  std::string Param(const std::string& name) const;
};

class FakeApiServer {
 public:
  /// Listens on `unix_path` when not empty, else on 127.0.0.1 with a free port. With
  /// cert_pem/key_pem it speaks TLS.
  static absl::StatusOr<std::unique_ptr<FakeApiServer>> Start(std::string unix_path,
                                                              std::string cert_pem = "",
                                                              std::string key_pem = "");
  ~FakeApiServer();

  /// "unix:///..." or "http(s)://127.0.0.1:PORT".
  std::string Url() const;
  /// Queues the next response for `path` (e.g. "/api/v1/services").
  void Push(const std::string& path, FakeResponse response);
  /// Answers every request for `path` with 404 from now on.
  void NotFound(const std::string& path);
  /// Requests received so far for `path` (all paths when empty).
  std::vector<RecordedRequest> Requests(const std::string& path = "") const;
  /// Waits until `count` requests for `path` arrived; false on timeout.
  bool WaitForRequests(const std::string& path, size_t count, int timeout_ms = 5000) const;
  void Stop();

 private:
  FakeApiServer() = default;
  void AcceptLoop();
  void Serve(int fd);

  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace nicflow::k8s::testing
