#include "loader_tree.h"

#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>
#include <unordered_set>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "nicflow/flowtables/status.h"

namespace nicflow::flowtables::loader {

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
