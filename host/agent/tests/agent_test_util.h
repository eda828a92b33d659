// Shared pieces of the agent tests: a temporary directory with the shop example's manifests, an
// agent config over it, and waiting for the agent's events.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "nicflow/agent/agent.h"
#include "nicflow/agent/config.h"

namespace nicflow::agent::testing {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "nicflow-agent-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline void WriteFile(const std::string& path, const std::string& text) {
  // Write then rename, as kubectl and ConfigMap updates do: readers never see half a file.
  std::string tmp = path + ".tmp~";
  {
    std::ofstream out(tmp);
    out << text;
  }
  fs::rename(tmp, path);
}

/// A manifests directory with the shop example (node-a's view), in `dir`/manifests.
inline std::string ShopManifests(const TempDir& dir) {
  std::string m = dir.Sub("manifests");
  fs::create_directories(m);
  for (const char* f : {"cluster.yaml", "kube-proxy.yaml", "policies.yaml"}) {
    fs::copy_file(std::string(NICFLOW_SOURCE_DIR) + "/examples/shop/" + f, m + "/" + f);
  }
  return m;
}

inline AgentConfig ShopConfig(const TempDir& dir) {
  AgentConfig c;
  c.node = "node-a";
  c.inputs.manifests_dir = ShopManifests(dir);
  c.control_socket = dir.Sub("nicflowd.sock");
  c.debounce_ms = 20;
  c.resync_s = 0;
  return c;
}

inline constexpr const char* kExtraService = R"(apiVersion: v1
kind: Service
metadata: {name: extra, namespace: shop}
spec:
  clusterIP: 10.96.0.123
  selector: {app: web}
  ports: [{name: http, port: 81, targetPort: http, protocol: TCP}]
)";

/// Waits up to 10 s for an event of `kind` with seq > `after`; returns it (seq 0 on timeout).
inline Event WaitForEvent(EventLog& log, uint64_t after, const std::string& kind) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    for (const Event& e : log.WaitAfter(after, deadline)) {
      if (e.kind == kind) return e;
      after = e.seq;
    }
  }
  return Event{};
}

}  // namespace nicflow::agent::testing
