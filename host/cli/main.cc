// nicflow: the offload CLI. Every command prints a readable table by default and JSON with -o json.
#include <CLI/CLI.hpp>

#include "cli.h"
#include "online.h"

int main(int argc, char** argv) {
  CLI::App app{
      "nicflow: compile Kubernetes Services, NAT and NetworkPolicy to SmartNIC flow tables,"
      " and inspect them"};
  app.require_subcommand(1);
  nicflow::cli::RegisterCompile(app);
  nicflow::cli::RegisterTrace(app);
  nicflow::cli::RegisterSim(app);
  nicflow::cli::RegisterOnline(app);  // after trace: it adds --socket to it
  CLI11_PARSE(app, argc, argv);
  return 0;
}
