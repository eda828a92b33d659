// The online commands: `nicflow status | dump-flows | stats | diff | capacity | events |
// pipeline` and `trace --socket`, against a running nicflowd's control socket.
//
// Each prints a human table by default and the agent's JSON with -o json (the document the
// control API returns, unchanged). Rendering is separate from fetching so tests and docs can
// render a reply without a socket.
#pragma once

#include <ostream>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"

namespace nicflow::cli {

/// Registers the online commands and adds `--socket` to an already registered `trace`.
void RegisterOnline(CLI::App& app);

/// The socket the online commands use by default: $NICFLOW_SOCKET, else
/// /run/nicflow/nicflowd.sock.
std::string DefaultAgentSocket();

void RenderStatus(const nlohmann::json& j, std::ostream& out);
void RenderDumpFlows(const nlohmann::json& j, std::ostream& out);
void RenderStats(const nlohmann::json& j, std::ostream& out);
void RenderDiff(const nlohmann::json& j, std::ostream& out);
void RenderCapacity(const nlohmann::json& j, std::ostream& out);
void RenderOnlineTrace(const nlohmann::json& j, std::ostream& out);
void RenderPipelineTable(const nlohmann::json& j, std::ostream& out);
/// Graphviz: one node per table (entries, where it runs), an edge per goto.
void RenderPipelineDot(const nlohmann::json& j, std::ostream& out);
/// dump-flows -o testpmd: the installed program as dpdk-testpmd `flow create` lines. Errors: as
/// host::ExportTestpmd; InvalidArgument when the dump is not a whole program.
absl::StatusOr<std::string> RenderDumpTestpmd(const nlohmann::json& j);

}  // namespace nicflow::cli
