// Shared pieces of the `nicflow` subcommands.
#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "absl/status/statusor.h"
#include "nicflow/flowtables/compiler.h"

namespace nicflow::cli {

/// Options every command that reads manifests takes.
struct ManifestOptions {
  std::vector<std::string> files;  ///< -f, repeatable
  std::string node;                ///< --node
  bool skip_bad = false;           ///< --skip-bad-objects
  std::string output = "table";    ///< -o
};

/// Adds -f/--filename, --node, --skip-bad-objects to `cmd`.
void AddManifestOptions(CLI::App& cmd, ManifestOptions& opts);

/// Loads and compiles the manifests; notes are printed to stderr.
absl::StatusOr<flowtables::CompileResult> LoadAndCompile(const ManifestOptions& opts);

/// Prints "nicflow: <message>" to stderr and returns the exit code for `st`'s kind:
/// 2 for bad input (InvalidArgument, NotFound), 1 otherwise.
int ReportError(const absl::Status& st);

void RegisterCompile(CLI::App& app);
void RegisterTrace(CLI::App& app);
void RegisterSim(CLI::App& app);

}  // namespace nicflow::cli
