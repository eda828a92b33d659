#include "loader_decode.h"

#include <cctype>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "nicflow/flowtables/status.h"

namespace nicflow::flowtables::loader {

void Decoder::Fail(const std::string& path, std::string_view message) {
  if (!error_.empty()) return;
  error_ = path.empty() ? std::string(message) : absl::StrCat(path, ": ", Sv(message));
}

void Decoder::Warn(const std::string& path, std::string_view message) {
  warnings_.push_back(path.empty() ? std::string(message) : absl::StrCat(path, ": ", Sv(message)));
}

Field Field::operator[](std::string_view key) const {
  std::string child = path_.empty() ? std::string(key) : absl::StrCat(path_, ".", Sv(key));
  if (!Is(Value::Type::kMap)) return Field(*decoder_, nullptr, std::move(child));
  return Field(*decoder_, value_ ? value_->Find(key) : nullptr, std::move(child));
}

bool Field::Require() const {
  if (!present()) Fail("required value");
  return present();
}

bool Field::Is(Value::Type type) const {
  if (!present() || value_->type == type) return true;
  if (type == Value::Type::kString && value_->type != Value::Type::kMap &&
      value_->type != Value::Type::kSeq) {
    // kubectl rejects `version: 1.0` for a string field too; say how to fix it.
    Fail(absl::StrFormat("expected a string, got %s (quote it: \"%s\")", Sv(TypeName(value_->type)),
                         value_->text));
  } else {
    Fail(absl::StrCat("expected ", Sv(TypeName(type)), ", got ", Sv(TypeName(value_->type))));
  }
  return false;
}

std::string Field::Str() const { return OptStr().value_or(""); }

std::optional<std::string> Field::OptStr() const {
  if (!present() || !Is(Value::Type::kString)) return std::nullopt;
  return value_->text;
}

bool Field::Bool(bool absent_value) const { return OptBool().value_or(absent_value); }

std::optional<bool> Field::OptBool() const {
  if (!present() || !Is(Value::Type::kBool)) return std::nullopt;
  return value_->boolean;
}

std::optional<int64_t> Field::Int(int64_t min, int64_t max) const {
  if (!present()) return std::nullopt;
  if (value_->type == Value::Type::kFloat) {
    bool integral = value_->text.find_first_of(".eEn") == std::string::npos;
    Fail(integral ? absl::StrFormat("%s out of range (%d-%d)", value_->text, min, max)
                  : absl::StrFormat("expected an integer, got %s", value_->text));
    return std::nullopt;
  }
  if (!Is(Value::Type::kInt)) return std::nullopt;
  if (value_->integer < min || value_->integer > max) {
    Fail(absl::StrFormat("%d out of range (%d-%d)", value_->integer, min, max));
    return std::nullopt;
  }
  return value_->integer;
}

std::vector<Field> Field::Items() const {
  std::vector<Field> out;
  if (!present() || !Is(Value::Type::kSeq)) return out;
  out.reserve(value_->seq.size());
  for (size_t i = 0; i < value_->seq.size(); ++i) {
    out.emplace_back(*decoder_, &value_->seq[i], absl::StrCat(path_, "[", i, "]"));
  }
  return out;
}

std::vector<std::pair<std::string, Field>> Field::Entries() const {
  std::vector<std::pair<std::string, Field>> out;
  if (!present() || !Is(Value::Type::kMap)) return out;
  out.reserve(value_->map.size());
  for (const auto& [k, v] : value_->map) {
    out.emplace_back(k, Field(*decoder_, &v, absl::StrCat(path_, "[", k, "]")));
  }
  return out;
}

std::vector<std::string> Field::Strings() const {
  std::vector<std::string> out;
  for (const Field& item : Items()) {
    if (!item.present()) {
      item.Fail("expected a string, got null");
      continue;
    }
    out.push_back(item.Str());
  }
  return out;
}

namespace {

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool IsAlnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }

// [a-z0-9]([-a-z0-9]*[a-z0-9])? within `max` bytes; `alpha_first` for DNS-1035.
bool IsDnsLabel(std::string_view s, size_t max, bool alpha_first) {
  if (s.empty() || s.size() > max || !IsLowerAlnum(s.front()) || !IsLowerAlnum(s.back())) {
    return false;
  }
  if (alpha_first && !(s.front() >= 'a' && s.front() <= 'z')) return false;
  for (char c : s) {
    if (!IsLowerAlnum(c) && c != '-') return false;
  }
  return true;
}

// A label name part: [A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?, at most 63 bytes.
bool IsQualifiedNamePart(std::string_view s) {
  if (s.empty() || s.size() > 63 || !IsAlnum(s.front()) || !IsAlnum(s.back())) return false;
  for (char c : s) {
    if (!IsAlnum(c) && c != '-' && c != '_' && c != '.') return false;
  }
  return true;
}

}  // namespace

std::string CheckDns1123Label(std::string_view s) {
  if (IsDnsLabel(s, 63, false)) return "";
  return absl::StrFormat(
      "invalid name \"%s\": must be a lowercase RFC 1123 label (a-z, 0-9, '-', at most 63)", Sv(s));
}

std::string CheckDns1123Subdomain(std::string_view s) {
  bool ok = !s.empty() && s.size() <= 253;
  for (absl::string_view part : absl::StrSplit(Sv(s), '.')) {
    ok = ok && IsDnsLabel(Sv(part), 63, false);
  }
  if (ok) return "";
  return absl::StrFormat(
      "invalid name \"%s\": must be a lowercase RFC 1123 subdomain (a-z, 0-9, '-', '.')", Sv(s));
}

std::string CheckDns1035Label(std::string_view s) {
  if (IsDnsLabel(s, 63, true)) return "";
  return absl::StrFormat(
      "invalid name \"%s\": must be an RFC 1035 label (a-z, 0-9, '-', starting with a letter, at "
      "most 63)",
      Sv(s));
}

std::string CheckIanaServiceName(std::string_view s) {
  bool ok = !s.empty() && s.size() <= 15 && s.front() != '-' && s.back() != '-' &&
            s.find("--") == std::string_view::npos;
  bool has_letter = false;
  for (char c : s) {
    ok = ok && (IsLowerAlnum(c) || c == '-');
    has_letter = has_letter || (c >= 'a' && c <= 'z');
  }
  if (ok && has_letter) return "";
  return absl::StrFormat(
      "invalid port name \"%s\": must be an IANA service name (a-z, 0-9, '-', at least one "
      "letter, at most 15)",
      Sv(s));
}

std::string CheckLabelKey(std::string_view s) {
  size_t slash = s.find('/');
  std::string_view name = slash == std::string_view::npos ? s : s.substr(slash + 1);
  bool ok = IsQualifiedNamePart(name);
  if (slash != std::string_view::npos) {
    ok = ok && CheckDns1123Subdomain(s.substr(0, slash)).empty();
  }
  if (ok) return "";
  return absl::StrFormat(
      "invalid label key \"%s\": must be [prefix/]name, name at most 63 of "
      "A-Z, a-z, 0-9, '-', '_', '.', starting and ending alphanumeric",
      Sv(s));
}

std::string CheckLabelValue(std::string_view s) {
  if (s.empty() || IsQualifiedNamePart(s)) return "";
  return absl::StrFormat(
      "invalid label value \"%s\": at most 63 of A-Z, a-z, 0-9, '-', '_', '.', "
      "starting and ending alphanumeric",
      Sv(s));
}

std::string DecodeName(const Field& f, std::string (*check)(std::string_view), bool required) {
  if (required && !f.Require()) return "";
  std::string s = f.Str();
  // An optional name may be "" (kubectl prints EndpointSlice ports as `name: ""`).
  if (f.present() && f.decoder().ok() && (required || !s.empty())) {
    if (std::string why = check(s); !why.empty()) {
      f.Fail(why);
      return "";
    }
  }
  return s;
}

Labels DecodeLabels(const Field& f) {
  Labels out;
  for (auto& [key, value] : f.Entries()) {
    if (std::string why = CheckLabelKey(key); !why.empty()) {
      value.Fail(why);
      continue;
    }
    std::string v = value.Str();
    if (std::string why = CheckLabelValue(v); !why.empty()) value.Fail(why);
    out[key] = std::move(v);
  }
  return out;
}

namespace {

std::optional<LabelSelector::Op> ParseSelectorOp(std::string_view s) {
  if (s == "In") return LabelSelector::Op::kIn;
  if (s == "NotIn") return LabelSelector::Op::kNotIn;
  if (s == "Exists") return LabelSelector::Op::kExists;
  if (s == "DoesNotExist") return LabelSelector::Op::kDoesNotExist;
  return std::nullopt;
}

LabelSelector::Requirement DecodeRequirement(const Field& f) {
  LabelSelector::Requirement r;
  f.Is(Value::Type::kMap);
  Field key = f["key"];
  if (key.Require()) {
    r.key = key.Str();
    if (std::string why = CheckLabelKey(r.key); !why.empty() && f.decoder().ok()) key.Fail(why);
  }
  Field op = f["operator"];
  if (op.Require()) {
    std::string text = op.Str();
    if (auto parsed = ParseSelectorOp(text)) {
      r.op = *parsed;
    } else if (f.decoder().ok()) {
      op.Fail(absl::StrFormat(
          "unsupported value \"%s\": must be one of In, NotIn, Exists, DoesNotExist", text));
    }
  }
  Field values = f["values"];
  r.values = values.Strings();
  for (size_t i = 0; i < r.values.size(); ++i) {
    if (std::string why = CheckLabelValue(r.values[i]); !why.empty()) {
      f.decoder().Fail(absl::StrCat(values.path(), "[", i, "]"), why);
    }
  }
  bool set_op = r.op == LabelSelector::Op::kIn || r.op == LabelSelector::Op::kNotIn;
  if (set_op && r.values.empty()) {
    values.Fail("must be specified when operator is In or NotIn");
  } else if (!set_op && !r.values.empty()) {
    values.Fail("may not be specified when operator is Exists or DoesNotExist");
  }
  return r;
}

}  // namespace

LabelSelector DecodeLabelSelector(const Field& f) {
  LabelSelector s;
  if (!f.Is(Value::Type::kMap)) return s;
  s.match_labels = DecodeLabels(f["matchLabels"]);
  for (const Field& item : f["matchExpressions"].Items()) {
    s.match_expressions.push_back(DecodeRequirement(item));
  }
  return s;
}

Protocol DecodeProtocol(const Field& f) {
  std::string s = f.Str();
  if (!f.present() || s == "TCP") return Protocol::kTcp;
  if (s == "UDP") return Protocol::kUdp;
  if (s == "SCTP") return Protocol::kSctp;
  if (f.decoder().ok()) {
    f.Fail(absl::StrFormat("unsupported value \"%s\": must be one of TCP, UDP, SCTP", s));
  }
  return Protocol::kTcp;
}

uint16_t DecodePort(const Field& f, bool allow_zero) {
  return static_cast<uint16_t>(f.Int(allow_zero ? 0 : 1, 65535).value_or(0));
}

std::variant<std::monostate, uint16_t, std::string> DecodeIntOrStringPort(const Field& f) {
  if (!f.present()) return std::monostate{};
  if (f.value()->type == Value::Type::kString) {
    std::string name = f.Str();
    if (std::string why = CheckIanaServiceName(name); !why.empty()) {
      f.Fail(why);
      return std::monostate{};
    }
    return name;
  }
  if (f.value()->type != Value::Type::kInt && f.value()->type != Value::Type::kFloat) {
    f.Fail(absl::StrCat("expected a port number or name, got ", Sv(TypeName(f.value()->type))));
    return std::monostate{};
  }
  return DecodePort(f);
}

IpAddr DecodeIp(const Field& f) {
  std::string s = f.Str();
  if (!f.present() || !f.decoder().ok()) return {};
  absl::StatusOr<IpAddr> ip = IpAddr::Parse(s);
  if (!ip.ok()) {
    f.Fail(Sv(ip.status().message()));
    return {};
  }
  return *ip;
}

std::vector<IpAddr> DecodeIps(const Field& f) {
  std::vector<IpAddr> out;
  for (const Field& item : f.Items()) {
    if (item.Require()) out.push_back(DecodeIp(item));
  }
  return out;
}

IpPrefix DecodeCidr(const Field& f, bool mask_host_bits) {
  std::string s = f.Str();
  if (!f.present() || !f.decoder().ok()) return {};
  absl::StatusOr<IpPrefix> prefix = IpPrefix::Parse(s, mask_host_bits);
  if (!prefix.ok()) {
    f.Fail(Sv(prefix.status().message()));
    return {};
  }
  if (s.find('/') == std::string::npos) {
    f.Fail(absl::StrFormat("invalid CIDR \"%s\": missing prefix length", s));
    return {};
  }
  if (mask_host_bits && !IpPrefix::Parse(s).ok()) {
    f.Warn(absl::StrFormat("host bits of \"%s\" ignored: read as %s", s, prefix->ToString()));
  }
  return *prefix;
}

std::vector<IpPrefix> DecodeCidrs(const Field& f, bool mask_host_bits) {
  std::vector<IpPrefix> out;
  for (const Field& item : f.Items()) {
    if (item.Require()) out.push_back(DecodeCidr(item, mask_host_bits));
  }
  return out;
}

std::vector<IpPrefix> DecodeCidrList(const Field& f, bool mask_host_bits) {
  std::vector<IpPrefix> out;
  std::string s = f.Str();
  if (s.empty()) return out;
  for (absl::string_view part : absl::StrSplit(s, ',')) {
    Value v = Value::String(std::string(absl::StripAsciiWhitespace(part)));
    Field item(f.decoder(), &v, f.path());
    out.push_back(DecodeCidr(item, mask_host_bits));
  }
  return out;
}

}  // namespace nicflow::flowtables::loader
