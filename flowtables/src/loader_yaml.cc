// The YAML front end: yaml-cpp's event parser feeding the document tree directly.
//
// Why events and not YAML::Load: building yaml-cpp's node graph first and converting it costs
// three times as long (its nodes share reference-counted memory pools), and a walk over that
// graph expands aliases without bound. Here an alias copies the anchored value, and the copy is
// charged to the node budget *before* it is made, so a "billion laughs" file stops early.
//
// Scalars are typed per the YAML 1.2 core schema (plain `80` is an integer, `true` a boolean,
// quoted text always a string); explicit tags (!!str, !!int) are honoured. Merge keys (`<<`) are
// applied as go-yaml, and so kubectl, applies them: keys already present win.
#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/parser.h>

#include <algorithm>
#include <charconv>
#include <istream>
#include <map>
#include <memory>
#include <streambuf>
#include <unordered_set>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "loader_tree.h"
#include "nicflow/flowtables/status.h"

namespace nicflow::flowtables::loader {
namespace {

constexpr std::string_view kYamlTag = "tag:yaml.org,2002:";
constexpr size_t kLinearKeyScan = 32;  // maps larger than this check duplicates with a set

// Integers in decimal, 0x hex or 0o octal; too large for int64 reads as an out-of-range number.
bool ResolveInteger(std::string_view s, Value& v) {
  int base = 10;
  bool negative = false;
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'o')) {
    base = s[1] == 'x' ? 16 : 8;
    s.remove_prefix(2);
  } else if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    negative = s[0] == '-';
    s.remove_prefix(1);
  }
  if (s.empty()) return false;
  for (char c : s) {
    bool ok = base == 16 ? std::isxdigit(static_cast<unsigned char>(c)) != 0
                         : (c >= '0' && c < static_cast<char>('0' + base));
    if (!ok) return false;
  }
  uint64_t magnitude = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), magnitude, base);
  if (ec == std::errc() && magnitude <= (negative ? (uint64_t{1} << 63) : INT64_MAX)) {
    v.type = Value::Type::kInt;
    v.integer = negative ? static_cast<int64_t>(0 - magnitude) : static_cast<int64_t>(magnitude);
  } else {
    v.type = Value::Type::kFloat;
  }
  return true;
}

bool IsFloat(const std::string& s) {
  if (s == ".inf" || s == "-.inf" || s == "+.inf" || s == ".nan" || s == ".NaN") return true;
  double d = 0;
  auto [ptr, ec] = std::from_chars(s.data() + (s[0] == '+'), s.data() + s.size(), d);
  bool numeric_end = std::isdigit(static_cast<unsigned char>(s.back())) != 0 || s.back() == '.';
  return ec == std::errc() && ptr == s.data() + s.size() && numeric_end;
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
  if (ResolveInteger(s, v)) return v;
  v.type = IsFloat(s) ? Value::Type::kFloat : Value::Type::kString;
  return v;
}

// Types a scalar by its tag: "?" plain, "!" quoted or block, otherwise an explicit tag.
// Returns false when an explicit core tag does not fit the text (`!!int abc`).
bool ResolveScalar(const std::string& tag, const std::string& text, Value& out) {
  if (tag == "!" || (tag.starts_with(kYamlTag) && tag.substr(kYamlTag.size()) == "str")) {
    out.type = Value::Type::kString;
    out.text = text;
    return true;
  }
  int line = out.line;
  int column = out.column;
  out = ResolvePlain(text);
  out.line = line;
  out.column = column;
  std::string_view want = tag.starts_with(kYamlTag) ? std::string_view(tag).substr(kYamlTag.size())
                                                    : std::string_view();
  return !((want == "int" && out.type != Value::Type::kInt) ||
           (want == "bool" && out.type != Value::Type::kBool) ||
           (want == "null" && out.type != Value::Type::kNull) ||
           (want == "float" && out.type != Value::Type::kFloat && out.type != Value::Type::kInt));
}

size_t CountNodes(const Value& v) {
  size_t n = 1;
  for (const Value& item : v.seq) n += CountNodes(item);
  for (const auto& [k, item] : v.map) n += CountNodes(item);
  return n;
}

// Thrown inside the handler to stop yaml-cpp's parser; caught in ParseYaml, never escapes it.
struct ParseAbort {
  absl::Status status;
};

// A read-only streambuf over the caller's text: yaml-cpp wants an istream, not a copy.
class ViewBuf : public std::streambuf {
 public:
  explicit ViewBuf(std::string_view text) {
    char* p = const_cast<char*>(text.data());  // never written through: get area only
    setg(p, p, p + text.size());
  }
};

class TreeBuilder final : public YAML::EventHandler {
 public:
  TreeBuilder(std::string_view source, const ParseLimits& limits, std::vector<Value>& docs)
      : source_(source), limits_(limits), docs_(docs) {}

  void OnDocumentStart(const YAML::Mark&) override {
    root_ = Value{};
    stack_.clear();
    anchors_.clear();  // anchors are scoped to their document
  }
  void OnDocumentEnd() override {
    if (!root_.is_null()) docs_.push_back(std::move(root_));
  }

  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    if (InKeyPosition()) return TakeKey(mark, "", false);
    Value* v = NewValue(mark);
    Remember(anchor, *v);
  }

  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                const std::string& value) override {
    if (value.size() > limits_.max_string_bytes) {
      Abort(mark, absl::StatusCode::kResourceExhausted,
            absl::StrFormat("a scalar of %d bytes exceeds the limit of %d "
                            "(LoadOptions::max_string_bytes)",
                            value.size(), limits_.max_string_bytes));
    }
    if (InKeyPosition()) return TakeKey(mark, value, tag == "?");
    Value* v = NewValue(mark);
    if (!ResolveScalar(tag, value, *v)) {
      Abort(mark, absl::StatusCode::kInvalidArgument,
            absl::StrCat("scalar \"", value, "\" does not match its tag ",
                         tag.starts_with(kYamlTag) ? "!!" + tag.substr(kYamlTag.size()) : tag));
    }
    Remember(anchor, *v);
  }

  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    auto it = anchors_.find(anchor);
    if (it == anchors_.end()) {
      Abort(mark, absl::StatusCode::kInvalidArgument, "alias to an unknown anchor");
    }
    if (InKeyPosition()) {
      if (it->second.first.type == Value::Type::kMap ||
          it->second.first.type == Value::Type::kSeq) {
        Abort(mark, absl::StatusCode::kInvalidArgument, "a map key must be a scalar");
      }
      return TakeKey(mark, it->second.first.text, false);
    }
    nodes_ += it->second.second - 1;  // NewValue charges the first one
    Value* v = NewValue(mark);
    *v = it->second.first;
  }

  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    Open(mark, Value::Type::kSeq, anchor);
  }
  void OnSequenceEnd() override { Close(); }

  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    Open(mark, Value::Type::kMap, anchor);
  }
  void OnMapEnd() override {
    ApplyMerges(stack_.back());
    Close();
  }

 private:
  struct Frame {
    Value* value = nullptr;
    YAML::anchor_t anchor = 0;
    bool have_key = false;    // maps: a key was read, its value comes next
    bool merge_next = false;  // maps: that key was `<<`
    std::vector<Value> merges;
    std::unique_ptr<std::unordered_set<std::string>> keys;  // large maps only
  };

  [[noreturn]] void Abort(const YAML::Mark& mark, absl::StatusCode code, std::string_view what) {
    throw ParseAbort{absl::Status(code, absl::StrFormat("%s:%d:%d: %s", Sv(source_), mark.line + 1,
                                                        mark.column + 1, Sv(what)))};
  }

  bool InKeyPosition() const {
    return !stack_.empty() && stack_.back().value->type == Value::Type::kMap &&
           !stack_.back().have_key;
  }

  void TakeKey(const YAML::Mark& mark, const std::string& key, bool plain) {
    Frame& f = stack_.back();
    f.have_key = true;
    f.merge_next = plain && key == "<<";
    if (f.merge_next) return;
    if (HasKey(f, key)) {
      Abort(mark, absl::StatusCode::kInvalidArgument, absl::StrCat("duplicate key \"", key, "\""));
    }
    f.value->map.emplace_back(key, Value{});
    if (f.keys) f.keys->insert(key);
  }

  static bool HasKey(Frame& f, const std::string& key) {
    auto& map = f.value->map;
    if (!f.keys && map.size() < kLinearKeyScan) {
      return std::any_of(map.begin(), map.end(), [&](const auto& kv) { return kv.first == key; });
    }
    if (!f.keys) {
      f.keys = std::make_unique<std::unordered_set<std::string>>();
      for (const auto& kv : map) f.keys->insert(kv.first);
    }
    return f.keys->contains(key);
  }

  // Where the next value goes: the document root, a list item, or the value of the last key.
  Value* NewValue(const YAML::Mark& mark) {
    if (++nodes_ > limits_.max_nodes) {
      Abort(mark, absl::StatusCode::kResourceExhausted,
            absl::StrFormat("more than %d values (alias expansion?); the budget follows the "
                            "file size",
                            limits_.max_nodes));
    }
    Value* v = &root_;
    if (!stack_.empty()) {
      Frame& f = stack_.back();
      if (f.value->type == Value::Type::kSeq) {
        v = &f.value->seq.emplace_back();
      } else {
        f.have_key = false;
        v = f.merge_next ? &f.merges.emplace_back() : &f.value->map.back().second;
      }
    }
    v->line = mark.line + 1;
    v->column = mark.column + 1;
    return v;
  }

  void Open(const YAML::Mark& mark, Value::Type type, YAML::anchor_t anchor) {
    if (InKeyPosition())
      Abort(mark, absl::StatusCode::kInvalidArgument, "a map key must be a scalar");
    if (stack_.size() >= static_cast<size_t>(kMaxDepth)) {
      Abort(mark, absl::StatusCode::kResourceExhausted,
            absl::StrFormat("nested deeper than %d levels", kMaxDepth));
    }
    Value* v = NewValue(mark);
    v->type = type;
    Frame f;
    f.value = v;
    f.anchor = anchor;
    stack_.push_back(std::move(f));
  }

  void Close() {
    Frame& f = stack_.back();
    Remember(f.anchor, *f.value);
    stack_.pop_back();
  }

  void Remember(YAML::anchor_t anchor, const Value& v) {
    if (anchor != YAML::NullAnchor) anchors_[anchor] = {v, CountNodes(v)};
  }

  void ApplyMerges(Frame& f) {
    for (Value& merged : f.merges) {
      std::vector<Value*> sources;
      if (merged.type == Value::Type::kMap) sources.push_back(&merged);
      for (Value& item : merged.seq) sources.push_back(&item);
      for (Value* src : sources) {
        if (src->type != Value::Type::kMap) {
          throw ParseAbort{absl::InvalidArgumentError(absl::StrFormat(
              "%s:%d:%d: merge key << needs a map", Sv(source_), merged.line, merged.column))};
        }
        for (auto& [k, v] : src->map) {
          if (!HasKey(f, k)) {
            f.value->map.emplace_back(k, std::move(v));
            if (f.keys) f.keys->insert(k);
          }
        }
      }
    }
  }

  std::string_view source_;
  const ParseLimits& limits_;
  std::vector<Value>& docs_;
  Value root_;
  std::vector<Frame> stack_;
  std::map<YAML::anchor_t, std::pair<Value, size_t>> anchors_;  // value, its node count
  size_t nodes_ = 0;
};

}  // namespace

absl::StatusOr<std::vector<Value>> ParseYaml(std::string_view text, std::string_view source,
                                             const ParseLimits& limits) {
  std::vector<Value> docs;
  ViewBuf buf(text);
  std::istream in(&buf);
  try {
    YAML::Parser parser(in);
    TreeBuilder builder(source, limits, docs);
    while (parser.HandleNextDocument(builder)) {
    }
  } catch (const ParseAbort& abort) {
    return abort.status;
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
  return docs;
}

}  // namespace nicflow::flowtables::loader
