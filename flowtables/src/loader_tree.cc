#include "loader_tree.h"

// GCC 12 reports a false -Wdangling-pointer inside yaml-cpp 0.7's inlined node code (impl.h).
#pragma GCC diagnostic ignored "-Wdangling-pointer"
#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/yaml.h>

#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>
#include <unordered_set>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "nicflow/flowtables/status.h"

namespace nicflow::flowtables::loader {

// Kubernetes objects nest a dozen levels; CRD schemas a few dozen. Far deeper input is hostile.
constexpr int kMaxDepth = 256;
constexpr std::string_view kYamlTag = "tag:yaml.org,2002:";

const Value* Value::Find(std::string_view key) const {
  if (type != Type::kMap) return nullptr;
  for (const auto& [k, v] : map) {
    if (k == key) return &v;
  }
  return nullptr;
}

std::string_view TypeName(Value::Type type) {
  switch (type) {
    case Value::Type::kNull:
      return "null";
    case Value::Type::kBool:
      return "a boolean";
    case Value::Type::kInt:
      return "an integer";
    case Value::Type::kFloat:
      return "a number";
    case Value::Type::kString:
      return "a string";
    case Value::Type::kMap:
      return "a map";
    case Value::Type::kSeq:
      return "a list";
  }
  return "a value";
}

size_t FindInvalidUtf8(std::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    unsigned char c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    int len = 0;
    uint32_t cp = 0;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return i;
    }
    if (i + len > n) return i;
    for (int k = 1; k < len; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    static constexpr uint32_t kMinForLen[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMinForLen[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
    i += len;
  }
  return std::string_view::npos;
}

namespace {

std::pair<int, int> LineColumnAt(std::string_view text, size_t offset) {
  int line = 1;
  int column = 1;
  for (size_t i = 0; i < offset && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  return {line, column};
}

absl::Status CheckEncoding(std::string_view text, std::string_view source) {
  if (size_t bad = FindInvalidUtf8(text); bad != std::string_view::npos) {
    auto [line, column] = LineColumnAt(text, bad);
    return absl::InvalidArgumentError(
        absl::StrFormat("%s:%d:%d: not valid UTF-8 (byte 0x%02x); manifests must be UTF-8 text",
                        Sv(source), line, column, static_cast<unsigned char>(text[bad])));
  }
  for (size_t i = 0; i < text.size(); ++i) {
    auto c = static_cast<unsigned char>(text[i]);
    if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7F) {
      auto [line, column] = LineColumnAt(text, i);
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s:%d:%d: control character 0x%02x (binary data?)", Sv(source), line, column, c));
    }
  }
  return absl::OkStatus();
}

// YAML 1.2 core schema resolution of a plain scalar.
Value ResolvePlain(const std::string& s) {
  Value v;
  v.text = s;
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return v;
  if (s == "true" || s == "True" || s == "TRUE" || s == "false" || s == "False" || s == "FALSE") {
    v.type = Value::Type::kBool;
    v.boolean = s[0] == 't' || s[0] == 'T';
    return v;
  }
  std::string_view digits = s;
  int base = 10;
  bool negative = false;
  if (digits.size() > 2 && digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'o')) {
    base = digits[1] == 'x' ? 16 : 8;
    digits.remove_prefix(2);
  } else if (!digits.empty() && (digits[0] == '-' || digits[0] == '+')) {
    negative = digits[0] == '-';
    digits.remove_prefix(1);
  }
  bool all_digits = !digits.empty();
  for (char c : digits) {
    bool ok = base == 16 ? std::isxdigit(static_cast<unsigned char>(c)) != 0
                         : (c >= '0' && c < static_cast<char>('0' + std::min(base, 10)));
    all_digits = all_digits && ok;
  }
  if (all_digits) {
    uint64_t magnitude = 0;
    auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), magnitude, base);
    if (ec == std::errc() && magnitude <= (negative ? (uint64_t{1} << 63) : INT64_MAX)) {
      v.type = Value::Type::kInt;
      v.integer = negative ? static_cast<int64_t>(0 - magnitude) : static_cast<int64_t>(magnitude);
    } else {
      v.type = Value::Type::kFloat;  // an integer too large for int64: a number out of range
    }
    return v;
  }
  if (s == ".inf" || s == "-.inf" || s == "+.inf" || s == ".nan" || s == ".NaN") {
    v.type = Value::Type::kFloat;
    return v;
  }
  double d = 0;
  auto [ptr, ec] = std::from_chars(s.data() + (s[0] == '+'), s.data() + s.size(), d);
  bool numeric_start = std::isdigit(static_cast<unsigned char>(s.back())) != 0 || s.back() == '.';
  if (ec == std::errc() && ptr == s.data() + s.size() && numeric_start) {
    v.type = Value::Type::kFloat;
    return v;
  }
  v.type = Value::Type::kString;
  return v;
}

class YamlConverter {
 public:
  YamlConverter(std::string_view source, const ParseLimits& limits)
      : source_(source), limits_(limits) {}

  absl::Status Convert(const YAML::Node& node, Value& out, int depth) {
    out.line = node.Mark().line + 1;
    out.column = node.Mark().column + 1;
    if (++nodes_ > limits_.max_nodes) {
      return absl::ResourceExhaustedError(absl::StrFormat(
          "%s:%d:%d: more than %d values in the file (alias expansion?); the limit follows "
          "LoadOptions::max_file_bytes",
          Sv(source_), out.line, out.column, limits_.max_nodes));
    }
    if (depth > kMaxDepth) {
      return absl::ResourceExhaustedError(absl::StrFormat(
          "%s:%d:%d: nested deeper than %d levels", Sv(source_), out.line, out.column, kMaxDepth));
    }
    switch (node.Type()) {
      case YAML::NodeType::Undefined:
      case YAML::NodeType::Null:
        return absl::OkStatus();
      case YAML::NodeType::Scalar:
        return ConvertScalar(node, out);
      case YAML::NodeType::Sequence:
        out.type = Value::Type::kSeq;
        out.seq.resize(node.size());
        for (size_t i = 0; i < node.size(); ++i) {
          NICFLOW_RETURN_IF_ERROR(Convert(node[i], out.seq[i], depth + 1));
        }
        return absl::OkStatus();
      case YAML::NodeType::Map:
        return ConvertMap(node, out, depth);
    }
    return absl::OkStatus();
  }

 private:
  absl::Status Error(const Value& at, std::string_view what) const {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s:%d:%d: %s", Sv(source_), at.line, at.column, Sv(what)));
  }

  absl::Status ConvertScalar(const YAML::Node& node, Value& out) const {
    const std::string& text = node.Scalar();
    if (text.size() > limits_.max_string_bytes) {
      return absl::ResourceExhaustedError(absl::StrFormat(
          "%s:%d:%d: a scalar of %d bytes exceeds the limit of %d (LoadOptions::max_string_bytes)",
          Sv(source_), out.line, out.column, text.size(), limits_.max_string_bytes));
    }
    const std::string& tag = node.Tag();
    int line = out.line;
    int column = out.column;
    if (tag == "!" || tag == absl::StrCat(Sv(kYamlTag), "str")) {
      out.type = Value::Type::kString;
      out.text = text;
    } else {
      out = ResolvePlain(text);
      std::string_view want =
          std::string_view(tag).substr(tag.starts_with(kYamlTag) ? kYamlTag.size() : tag.size());
      bool mismatch =
          (want == "int" && out.type != Value::Type::kInt) ||
          (want == "bool" && out.type != Value::Type::kBool) ||
          (want == "null" && out.type != Value::Type::kNull) ||
          (want == "float" && out.type != Value::Type::kFloat && out.type != Value::Type::kInt);
      if (mismatch) return Error(Value::At(line, column), "scalar does not match its tag " + tag);
    }
    out.line = line;
    out.column = column;
    return absl::OkStatus();
  }

  absl::Status ConvertMap(const YAML::Node& node, Value& out, int depth) {
    out.type = Value::Type::kMap;
    std::unordered_set<std::string> seen;
    std::vector<YAML::Node> merges;  // handles: the iterator's pairs are temporaries
    for (auto it = node.begin(); it != node.end(); ++it) {
      const YAML::Node& key = it->first;
      Value key_pos = Value::At(key.Mark().line + 1, key.Mark().column + 1);
      if (!key.IsScalar() && !key.IsNull()) return Error(key_pos, "a map key must be a scalar");
      std::string name = key.IsScalar() ? key.Scalar() : "";
      if (name.size() > limits_.max_string_bytes) {
        return absl::ResourceExhaustedError(absl::StrFormat(
            "%s:%d:%d: a key of %d bytes exceeds the limit of %d (LoadOptions::max_string_bytes)",
            Sv(source_), key_pos.line, key_pos.column, name.size(), limits_.max_string_bytes));
      }
      if (name == "<<" && key.Tag() == "?") {  // YAML merge key, as go-yaml (kubectl) honours it
        merges.push_back(it->second);
        continue;
      }
      if (!seen.insert(name).second) return Error(key_pos, "duplicate key \"" + name + "\"");
      out.map.emplace_back(std::move(name), Value{});
      NICFLOW_RETURN_IF_ERROR(Convert(it->second, out.map.back().second, depth + 1));
    }
    for (const YAML::Node& merge : merges) {
      Value merged;
      NICFLOW_RETURN_IF_ERROR(Convert(merge, merged, depth + 1));
      std::vector<Value*> sources;
      if (merged.type == Value::Type::kMap) sources.push_back(&merged);
      for (auto& item : merged.seq) sources.push_back(&item);
      for (Value* src : sources) {
        if (src->type != Value::Type::kMap) return Error(merged, "merge key << needs a map");
        for (auto& [k, v] : src->map) {
          if (seen.insert(k).second) out.map.emplace_back(k, std::move(v));
        }
      }
    }
    return absl::OkStatus();
  }

  std::string_view source_;
  const ParseLimits& limits_;
  size_t nodes_ = 0;
};

absl::StatusOr<std::vector<Value>> ParseYaml(std::string_view text, std::string_view source,
                                             const ParseLimits& limits) {
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(std::string(text));
  } catch (const YAML::DeepRecursion& e) {
    return absl::ResourceExhaustedError(absl::StrFormat("%s:%d:%d: nested too deeply", Sv(source),
                                                        e.mark.line + 1, e.mark.column + 1));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrFormat("%s:%d:%d: YAML syntax error: %s", Sv(source),
                                                      e.mark.line + 1, e.mark.column + 1, e.msg));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: cannot parse YAML: %s", Sv(source), e.what()));
  }
  std::vector<Value> out;
  YamlConverter converter(source, limits);
  try {
    for (const YAML::Node& doc : docs) {
      if (doc.IsNull() || !doc.IsDefined()) continue;
      Value v;
      NICFLOW_RETURN_IF_ERROR(converter.Convert(doc, v, 0));
      out.push_back(std::move(v));
    }
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: cannot read YAML: %s", Sv(source), e.what()));
  }
  return out;
}

using Json = nlohmann::json;

absl::Status ConvertJson(const Json& j, Value& out, const ParseLimits& limits, size_t& nodes,
                         int depth, std::string_view source) {
  if (++nodes > limits.max_nodes || depth > kMaxDepth) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "%s: JSON too large or nested deeper than %d levels", Sv(source), kMaxDepth));
  }
  switch (j.type()) {
    case Json::value_t::null:
    case Json::value_t::discarded:
      return absl::OkStatus();
    case Json::value_t::boolean:
      out.type = Value::Type::kBool;
      out.boolean = j.get<bool>();
      out.text = out.boolean ? "true" : "false";
      return absl::OkStatus();
    case Json::value_t::number_integer:
      out.type = Value::Type::kInt;
      out.integer = j.get<int64_t>();
      out.text = j.dump();
      return absl::OkStatus();
    case Json::value_t::number_unsigned:
      out.text = j.dump();
      if (j.get<uint64_t>() <= INT64_MAX) {
        out.type = Value::Type::kInt;
        out.integer = static_cast<int64_t>(j.get<uint64_t>());
      } else {
        out.type = Value::Type::kFloat;
      }
      return absl::OkStatus();
    case Json::value_t::number_float:
      out.type = Value::Type::kFloat;
      out.text = j.dump();
      return absl::OkStatus();
    case Json::value_t::string:
      out.type = Value::Type::kString;
      out.text = j.get<std::string>();
      if (out.text.size() > limits.max_string_bytes) {
        return absl::ResourceExhaustedError(absl::StrFormat(
            "%s: a string of %d bytes exceeds the limit of %d (LoadOptions::max_string_bytes)",
            Sv(source), out.text.size(), limits.max_string_bytes));
      }
      return absl::OkStatus();
    case Json::value_t::array:
      out.type = Value::Type::kSeq;
      out.seq.resize(j.size());
      for (size_t i = 0; i < j.size(); ++i) {
        NICFLOW_RETURN_IF_ERROR(ConvertJson(j[i], out.seq[i], limits, nodes, depth + 1, source));
      }
      return absl::OkStatus();
    case Json::value_t::object:
      out.type = Value::Type::kMap;
      for (const auto& [k, v] : j.items()) {
        if (k.size() > limits.max_string_bytes) {
          return absl::ResourceExhaustedError(
              absl::StrFormat("%s: a key of %d bytes exceeds the limit of %d", Sv(source), k.size(),
                              limits.max_string_bytes));
        }
        out.map.emplace_back(k, Value{});
        NICFLOW_RETURN_IF_ERROR(
            ConvertJson(v, out.map.back().second, limits, nodes, depth + 1, source));
      }
      return absl::OkStatus();
    case Json::value_t::binary:
      break;
  }
  return absl::InvalidArgumentError(absl::StrFormat("%s: unsupported JSON value", Sv(source)));
}

// Parses JSON, rejecting duplicate keys (nlohmann would keep the last one silently).
absl::StatusOr<Value> ParseJson(std::string_view text, std::string_view source,
                                const ParseLimits& limits) {
  std::vector<std::unordered_set<std::string>> keys;
  std::string duplicate;
  auto callback = [&](int /*depth*/, Json::parse_event_t event, Json& parsed) {
    if (event == Json::parse_event_t::object_start) keys.emplace_back();
    if (event == Json::parse_event_t::object_end && !keys.empty()) keys.pop_back();
    if (event == Json::parse_event_t::key && !keys.empty() && duplicate.empty() &&
        !keys.back().insert(parsed.get<std::string>()).second) {
      duplicate = parsed.get<std::string>();
    }
    return true;
  };
  Json j;
  try {
    j = Json::parse(text.begin(), text.end(), callback);
  } catch (const Json::parse_error& e) {
    auto [line, column] = LineColumnAt(text, e.byte == 0 ? 0 : e.byte - 1);
    std::string_view what = e.what();
    if (size_t colon = what.find(": "); colon != std::string_view::npos) {
      what.remove_prefix(colon + 2);
    }
    return absl::InvalidArgumentError(
        absl::StrFormat("%s:%d:%d: JSON syntax error: %s", Sv(source), line, column, Sv(what)));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: cannot parse JSON: %s", Sv(source), e.what()));
  }
  if (!duplicate.empty()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: duplicate key \"%s\" in a JSON object", Sv(source), duplicate));
  }
  Value out;
  size_t nodes = 0;
  NICFLOW_RETURN_IF_ERROR(ConvertJson(j, out, limits, nodes, 0, source));
  return out;
}

}  // namespace

absl::StatusOr<std::vector<Value>> ParseDocuments(std::string_view text, std::string_view source,
                                                  const ParseLimits& limits) {
  if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);  // UTF-8 byte order mark
  NICFLOW_RETURN_IF_ERROR(CheckEncoding(text, source));
  size_t first = text.find_first_not_of(" \t\r\n");
  bool json_ext = source.ends_with(".json");
  bool looks_json = first != std::string_view::npos && (text[first] == '{' || text[first] == '[');
  if (json_ext || looks_json) {
    absl::StatusOr<Value> json = ParseJson(text, source, limits);
    if (json.ok()) return std::vector<Value>{std::move(*json)};
    // A YAML flow mapping ({a: b}) also starts with '{': fall back to YAML unless it says .json.
    if (json_ext || json.status().code() == absl::StatusCode::kResourceExhausted) {
      return json.status();
    }
    absl::StatusOr<std::vector<Value>> yaml = ParseYaml(text, source, limits);
    if (yaml.ok()) return yaml;
    return json.status();
  }
  return ParseYaml(text, source, limits);
}

}  // namespace nicflow::flowtables::loader
