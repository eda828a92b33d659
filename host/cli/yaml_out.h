// Writes a JSON value as block YAML (for -o yaml).
#pragma once

#include <nlohmann/json.hpp>
#include <ostream>

namespace nicflow::cli {

void WriteYaml(const nlohmann::json& j, std::ostream& out);

}  // namespace nicflow::cli
