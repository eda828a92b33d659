// nicflow-simnic: the software SmartNIC as a process, serving the Device RPC to nicflowd and
// forwarding live traffic between interfaces (veths into pod namespaces) through its pipeline.
#include <csignal>
#include <map>
#include <mutex>
#include <thread>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "nicflow/agent/simnic.h"
#include "nicflow/sim/live.h"
#include "nicflow/sim/profile.h"

namespace {

int Fatal(const absl::Status& st) {
  spdlog::critical("{}", std::string(st.message()));
  return st.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
}

// Attaches configured interfaces to ports once the ports exist (VFs appear when the agent
// declares its pods' ports). Runs under the NIC mutex.
struct Attacher {
  std::map<std::string, std::string> pending;  // port name -> ifname
  nicflow::sim::LiveDatapath* live = nullptr;
  nicflow::sim::SimNic* nic = nullptr;

  void Run() {
    for (auto it = pending.begin(); it != pending.end();) {
      auto port = nic->FindPortByName(it->first);
      if (!port.ok()) {
        ++it;
        continue;
      }
      nicflow::sim::LivePortConfig pc;
      pc.ifname = it->second;
      pc.proxy_all = true;
      if (absl::Status st = live->Attach(*port, pc); !st.ok()) {
        spdlog::error("attach {} to {}: {}", it->first, it->second, std::string(st.message()));
      } else {
        spdlog::info("port {} attached to interface {}", it->first, it->second);
      }
      it = pending.erase(it);
    }
  }
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"nicflow-simnic: the simulated SmartNIC as a process (Device RPC + live ports)"};
  std::string socket_path, profile_name = "unlimited", mode_text = "0600";
  std::vector<std::string> attach;
  app.add_option("-s,--socket", socket_path, "unix socket to serve the Device RPC on")->required();
  app.add_option("--profile", profile_name,
                 "device profile (connectx6dx, e810, alveo-u280, "
                 "unlimited)");
  app.add_option("--attach", attach,
                 "PORT=IFNAME: forward a port's traffic on an interface (host, uplink, "
                 "vf:ns/pod); repeatable");
  app.add_option("--mode", mode_text, "socket permissions (octal)");
  CLI11_PARSE(app, argc, argv);

  auto profile = nicflow::sim::BuiltinProfile(profile_name);
  if (!profile.ok()) return Fatal(profile.status());
  std::unique_ptr<nicflow::sim::SimNic> nic = nicflow::sim::SimNic::Create(*profile);
  nicflow::sim::LiveDatapath live(*nic);
  // The software path: the whole program (the agent sends it), finishing what the device punts.
  nicflow::sim::SimNic::Options sw_options;
  sw_options.conntrack_capacity = 65536;
  std::unique_ptr<nicflow::sim::SimNic> software =
      nicflow::sim::SimNic::Create(*nicflow::sim::BuiltinProfile("unlimited"), sw_options);
  nicflow::sim::SoftwareDatapath software_path(*nic, *software);
  live.SetSoftwarePath(&software_path);
  Attacher attacher{{}, &live, nic.get()};
  for (const std::string& a : attach) {
    size_t eq = a.find('=');
    if (eq == std::string::npos) {
      return Fatal(absl::InvalidArgumentError("--attach " + a + ": expected PORT=IFNAME"));
    }
    attacher.pending[a.substr(0, eq)] = a.substr(eq + 1);
  }

  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  std::mutex nic_mu;
  uint32_t mode = static_cast<uint32_t>(std::stoul(mode_text, nullptr, 8));
  auto server = nicflow::agent::SimNicServer::Start(
      *nic, nic_mu, socket_path, mode, [&attacher] { attacher.Run(); }, &software_path);
  if (!server.ok()) return Fatal(server.status());
  {
    std::lock_guard lock(nic_mu);
    attacher.Run();
  }
  spdlog::info("nicflow-simnic ({}) serving on unix:{}", profile_name, socket_path);

  std::atomic<bool> stop{false};
  std::thread datapath([&] {
    auto last_expire = std::chrono::steady_clock::now();
    while (!stop) {
      {
        std::lock_guard lock(nic_mu);
        if (auto n = live.PollOnce(5); !n.ok()) spdlog::warn("poll: {}", n.status().ToString());
        if (std::chrono::steady_clock::now() - last_expire > std::chrono::seconds(1)) {
          nic->ExpireConntrack();
          software->ExpireConntrack();
          last_expire = std::chrono::steady_clock::now();
        }
      }
      std::this_thread::yield();
    }
  });

  int sig = 0;
  sigwait(&stop_signals, &sig);
  spdlog::info("signal {}: stopping", sig);
  stop = true;
  datapath.join();
  (*server)->Stop();
  return 0;
}
