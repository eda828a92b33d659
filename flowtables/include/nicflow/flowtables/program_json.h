// The stable JSON form of a program (`nicflow compile -o json`, the agent's API, read-back).
// docs/json-format.md documents it; tests round-trip it. Field values are text: IP fields as
// addresses, everything else as hex ("0x1f") except ports in actions, which are numbers.
#pragma once

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "nicflow/flowtables/ir.h"

namespace nicflow::flowtables {

nlohmann::json MatchToJson(const FieldMatch& m);
nlohmann::json ActionToJson(const Action& a, const Program& p);
nlohmann::json EntryToJson(const Entry& e, const Program& p);
nlohmann::json GroupToJson(const SelectGroup& g, const Program& p);
nlohmann::json OriginToJson(const Origin& o);
/// The whole program: {"tables": [...with entries...], "groups": [...], "ports": [...]}.
nlohmann::json ProgramToJson(const Program& p);

/// A delta as {"ops": [{"op": "add-entry", "table": "service", "entry": {...}} |
/// {"op": "add-group", "group": {...}}, ...]} (the agent's diff output and the device RPC).
/// `p` names the tables (gotos and entry tables are written by name).
nlohmann::json DeltaToJson(const Delta& d, const Program& p);
/// Parses DeltaToJson's output against the table schemas it refers to. Errors: InvalidArgument
/// naming the JSON path (unknown op, table, field, action). Does not check the delta applies.
absl::StatusOr<Delta> DeltaFromJson(const nlohmann::json& j,
                                    const std::vector<TableSchema>& tables);

/// Parses ProgramToJson's output back. Errors: InvalidArgument naming the JSON path.
absl::StatusOr<Program> ProgramFromJson(const nlohmann::json& j);

}  // namespace nicflow::flowtables
