// A document tree independent of the text format, and the parsers that build it.
//
// The loader decodes Kubernetes objects from one neutral tree so YAML and JSON behave the same.
// Building it ourselves (instead of walking YAML::Node / nlohmann::json directly) is where the
// input limits are enforced: scalar length, node count (which also stops YAML alias bombs, since
// yaml-cpp shares aliased nodes and a naive walk expands them exponentially), duplicate keys,
// and UTF-8 validity. Scalars are typed as the YAML 1.2 core schema does (plain `80` is an
// integer, quoted "80" a string); JSON values keep their JSON types.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace nicflow::flowtables::loader {

struct Value {
  enum class Type : uint8_t { kNull, kBool, kInt, kFloat, kString, kMap, kSeq };

  Type type = Type::kNull;
  bool boolean = false;  ///< kBool
  int64_t integer = 0;   ///< kInt
  /// kString: the content; other scalars: the text as written (for messages).
  std::string text;
  std::vector<std::pair<std::string, Value>> map;  ///< kMap, in document order, keys unique
  std::vector<Value> seq;                          ///< kSeq
  int line = 0;  ///< 1-based position in the text; 0 when unknown (JSON values)
  int column = 0;

  bool is_null() const { return type == Type::kNull; }
  /// The value of `key` in a map, or nullptr (absent key, or not a map).
  const Value* Find(std::string_view key) const;

  static Value String(std::string s) {
    Value v;
    v.type = Type::kString;
    v.text = std::move(s);
    return v;
  }
  static Value At(int line, int column) {
    Value v;
    v.line = line;
    v.column = column;
    return v;
  }
};

/// "a string", "an integer", "a map", ... for messages.
std::string_view TypeName(Value::Type type);

struct ParseLimits {
  size_t max_string_bytes = 1u << 20;
  /// Tree nodes allowed; enforced while building so alias expansion cannot exhaust memory.
  size_t max_nodes = 1u << 24;
};

/// Parses every document of `text`. JSON is read with a JSON parser when `source` ends in .json
/// or the text starts with '{' or '[' and parses as JSON; everything else as YAML. Empty YAML
/// documents are dropped.
/// Errors: InvalidArgument "<source>:<line>:<column>: <what>" for syntax errors, invalid UTF-8,
/// control bytes and duplicate keys; ResourceExhausted naming `source` for limits.
absl::StatusOr<std::vector<Value>> ParseDocuments(std::string_view text, std::string_view source,
                                                  const ParseLimits& limits);

/// Kubernetes objects nest a dozen levels, CRD schemas a few dozen; far deeper input is hostile.
inline constexpr int kMaxDepth = 256;

/// The YAML front end of ParseDocuments (loader_yaml.cc): `text` is already checked UTF-8.
absl::StatusOr<std::vector<Value>> ParseYaml(std::string_view text, std::string_view source,
                                             const ParseLimits& limits);

/// Offset of the first byte that is not valid UTF-8 (overlongs, surrogates and code points past
/// U+10FFFF are invalid), or npos when all of `text` is valid.
size_t FindInvalidUtf8(std::string_view text);

}  // namespace nicflow::flowtables::loader
