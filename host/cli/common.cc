#include <iostream>

#include <spdlog/spdlog.h>

#include "cli.h"
#include "nicflow/flowtables/loader.h"
#include "nicflow/flowtables/status.h"

namespace nicflow::cli {

void AddManifestOptions(CLI::App& cmd, ManifestOptions& opts) {
  cmd.add_option("-f,--filename", opts.files,
                 "manifest file or directory (YAML, JSON, kind: List); repeatable")
      ->required();
  cmd.add_option("--node", opts.node,
                 "node to compile for (default: kube-proxy hostnameOverride or the only Node)");
  cmd.add_flag("--skip-bad-objects", opts.skip_bad,
               "skip (and report) objects that fail to load or compile instead of failing");
}

absl::StatusOr<flowtables::CompileResult> LoadAndCompile(const ManifestOptions& opts) {
  flowtables::ClusterState state;
  flowtables::LoadOptions load;
  load.skip_bad_objects = opts.skip_bad;
  NICFLOW_RETURN_IF_ERROR(flowtables::LoadPaths(opts.files, load, state));
  flowtables::CompileOptions copts;
  copts.node_name = opts.node;
  copts.skip_bad_objects = opts.skip_bad;
  NICFLOW_ASSIGN_OR_RETURN(flowtables::CompileResult result, flowtables::Compile(state, copts));
  for (const std::string& note : state.notes) std::cerr << "note: " << note << "\n";
  for (const std::string& note : result.notes) std::cerr << "note: " << note << "\n";
  return result;
}

int ReportError(const absl::Status& st) {
  std::cerr << "nicflow: " << st.message() << "\n";
  switch (st.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kResourceExhausted:
      return 2;
    default:
      return 1;
  }
}

}  // namespace nicflow::cli
