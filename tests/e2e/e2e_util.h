// Pieces of the end-to-end tests: child processes (the real nicflowd, nicflow-simnic and nicflow
// binaries) that die with the test, a veth pair in the root namespace, sockets opened inside pod
// namespaces, and polling instead of sleeping.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "netns_pods.h"

namespace nicflow::e2e {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using sim::testing::Sh;

/// Polls `ready` every 50 ms until it holds or `timeout` passes; returns the last result.
inline bool Eventually(const std::function<bool()>& ready,
                       std::chrono::milliseconds timeout = std::chrono::seconds(15)) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (ready()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return ready();
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

/// Writes then renames, as kubectl and ConfigMap updates do: the watcher never sees half a file.
inline void WriteFileAtomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp~";
  {
    std::ofstream out(tmp);
    out << text;
  }
  fs::rename(tmp, path);
}

/// A child process running a real binary; stdout and stderr go to `log`. The child gets SIGKILL
/// when the test process dies (PR_SET_PDEATHSIG), and SIGTERM then SIGKILL on destruction.
class ChildProcess {
 public:
  ChildProcess(std::vector<std::string> argv, std::string log) : log_(std::move(log)) {
    const pid_t parent = getpid();
    pid_ = fork();
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(127);
      const int fd = open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
      }
      std::vector<char*> args;
      for (std::string& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
  }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess() { Stop(SIGTERM); }

  bool Running() {
    if (pid_ <= 0) return false;
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return false;
    }
    return true;
  }

  /// Sends `sig` and reaps the child (SIGKILL after 3 s if it is still there).
  void Stop(int sig) {
    if (pid_ <= 0) return;
    kill(pid_, sig);
    const auto deadline = Clock::now() + std::chrono::seconds(3);
    while (Running() && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (Running()) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }
  const std::string& log() const { return log_; }

 private:
  pid_t pid_ = -1;
  std::string log_;
};

/// A veth pair in the root namespace (the wire between two nodes' uplinks), deleted on
/// destruction.
class VethPair {
 public:
  /// "" on success, else the failing command.
  std::string Create(const std::string& a, const std::string& b) {
    Sh("ip link del " + a);  // leftovers of a crashed run
    for (const std::string& cmd : {"ip link add " + a + " type veth peer name " + b,
                                   "ip link set " + a + " up", "ip link set " + b + " up"}) {
      if (!Sh(cmd)) return cmd;
      a_ = a;
    }
    for (const std::string& i : {a, b}) {
      Sh("sysctl -w net.ipv6.conf." + i + ".disable_ipv6=1");
      Sh("ethtool -K " + i + " tx off tso off gso off");
    }
    return "";
  }
  VethPair() = default;
  VethPair(const VethPair&) = delete;
  VethPair& operator=(const VethPair&) = delete;
  ~VethPair() {
    if (!a_.empty()) Sh("ip link del " + a_);
  }

 private:
  std::string a_;
};

/// Runs the `nicflow` CLI with `args` and parses its stdout as JSON (null when it is not JSON).
inline nlohmann::json CliJson(const std::string& cli, const std::string& args) {
  const std::string out = sim::testing::ShOut(cli + " " + args + " 2>/dev/null");
  return nlohmann::json::parse(out, nullptr, /*allow_exceptions=*/false);
}

// ---- sockets in pod namespaces (a socket stays in the namespace it was created in) ----

using sim::testing::TcpConnect;

/// Sends "who" on a connected socket and returns the answer (the server pod's name), "" when
/// none came within `timeout_ms`.
inline std::string Ask(int fd, int timeout_ms) {
  if (fd < 0 || send(fd, "who", 3, MSG_NOSIGNAL) != 3) return "";
  pollfd p{fd, POLLIN, 0};
  char buf[64];
  if (poll(&p, 1, timeout_ms) != 1) return "";
  const ssize_t n = recv(fd, buf, sizeof(buf), 0);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
}

/// One question on a new TCP connection; the answering pod or "".
inline std::string TcpWho(const std::string& ip, uint16_t port, int timeout_ms) {
  const int s = TcpConnect(ip, port, timeout_ms);
  std::string who = Ask(s, timeout_ms);
  if (s >= 0) close(s);
  return who;
}

/// One datagram from a new socket (a new flow); the answering pod or "".
// `src_port` 0 lets the kernel pick an ephemeral port, which it may hand out again while the
// simulator's conntrack still holds the earlier flow; tests that count new flows pass their own.
inline std::string UdpWho(const std::string& ip, uint16_t port, int timeout_ms,
                          uint16_t src_port = 0) {
  const int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (src_port != 0) {
    sockaddr_in local{};
    local.sin_family = AF_INET;
    local.sin_port = htons(src_port);
    if (bind(s, reinterpret_cast<sockaddr*>(&local), sizeof(local)) != 0) {
      close(s);
      return "";
    }
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
  std::string who;
  if (connect(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0) who = Ask(s, timeout_ms);
  close(s);
  return who;
}

}  // namespace nicflow::e2e
