// nicflowd: the nicflow node agent. See include/nicflow/agent/agent.h and docs/agent.md.
#include <csignal>
#include <cstdlib>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "nicflow/agent/agent.h"
#include "nicflow/agent/config.h"
#include "nicflow/agent/control.h"
#include "nicflow/agent/kube_input.h"

namespace {

int Fatal(const absl::Status& st) {
  spdlog::critical("{}", std::string(st.message()));
  return st.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"nicflowd: keeps this node's SmartNIC/FPGA offload programmed from the cluster"};
  std::string config_path, node;
  bool verbose = false;
  app.add_option("-c,--config", config_path, "config file (YAML; see docs/agent.md)")->required();
  app.add_option("--node", node, "node name (overrides the config and $NODE_NAME)");
  app.add_flag("-v,--verbose", verbose, "debug logging");
  CLI11_PARSE(app, argc, argv);
  if (verbose) spdlog::set_level(spdlog::level::debug);

  auto config = nicflow::agent::LoadConfigFile(config_path);
  if (!config.ok()) return Fatal(config.status());
  if (!node.empty()) {
    config->node = node;
  } else if (config->node.empty() && std::getenv("NODE_NAME") != nullptr) {
    config->node = std::getenv("NODE_NAME");
  }
  // Block the stop signals in every thread; the main thread waits for them below.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  auto backend = nicflow::agent::OpenBackend(config->backend);
  if (!backend.ok()) return Fatal(backend.status());
  std::unique_ptr<nicflow::agent::KubeInput> kube;
  nicflow::agent::ClusterSource kube_source;
  if (config->inputs.kube_api) {
    auto created = nicflow::agent::KubeInput::Create(config->inputs);
    if (!created.ok()) return Fatal(created.status());
    kube = *std::move(created);
    kube_source = kube->Source();
  }
  nicflow::agent::Agent agent(*config, *std::move(backend), kube_source);
  if (kube) {
    if (absl::Status st = kube->Start([&agent] { agent.RequestSync(); }); !st.ok()) {
      return Fatal(st);
    }
  }
  if (absl::Status st = agent.Start(); !st.ok()) return Fatal(st);
  auto server = nicflow::agent::ControlServer::Start(agent, config->control_socket,
                                                     config->control_socket_mode);
  if (!server.ok()) return Fatal(server.status());
  spdlog::info("control API on unix:{}", config->control_socket);

  int sig = 0;
  sigwait(&stop_signals, &sig);
  spdlog::info("signal {}: stopping; the device keeps its state", sig);
  (*server)->Stop();
  if (kube) kube->Stop();
  agent.Stop();
  return 0;
}
