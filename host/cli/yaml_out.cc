#include "yaml_out.h"

#include <sstream>
#include <string>

namespace nicflow::cli {

namespace {

// Quotes strings YAML would otherwise read as another type or misparse.
std::string Scalar(const nlohmann::json& j) {
  if (!j.is_string()) return j.dump();
  const std::string& s = j.get_ref<const std::string&>();
  bool plain = !s.empty() && s.find_first_of(":#{}[],&*!|>'\"%@`\n") == std::string::npos &&
               s != "true" && s != "false" && s != "null" && s != "~" && s.front() != ' ' &&
               s.back() != ' ' && s.front() != '-' &&
               !std::isdigit(static_cast<unsigned char>(s[0]));
  return plain ? s : nlohmann::json(s).dump();
}

bool IsScalar(const nlohmann::json& j) { return !j.is_structured() || j.empty(); }

std::string EmptyOrScalar(const nlohmann::json& j) {
  if (j.is_array() && j.empty()) return "[]";
  if (j.is_object() && j.empty()) return "{}";
  return Scalar(j);
}

void Write(const nlohmann::json& j, std::ostream& out, int indent) {
  std::string pad(indent, ' ');
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it) {
      out << pad << it.key() << ":";
      if (IsScalar(it.value())) {
        out << " " << EmptyOrScalar(it.value()) << "\n";
      } else {
        out << "\n";
        Write(it.value(), out, indent + 2);
      }
    }
  } else if (j.is_array()) {
    for (const auto& item : j) {
      if (IsScalar(item)) {
        out << pad << "- " << EmptyOrScalar(item) << "\n";
        continue;
      }
      // Nested block: write it indented, then put the dash on its first line.
      std::ostringstream inner;
      Write(item, inner, indent + 2);
      std::string text = inner.str();
      text.replace(indent, 2, "- ");
      out << text;
    }
  } else {
    out << pad << Scalar(j) << "\n";
  }
}

}  // namespace

void WriteYaml(const nlohmann::json& j, std::ostream& out) { Write(j, out, 0); }

}  // namespace nicflow::cli
