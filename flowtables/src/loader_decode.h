// Typed, path-tracking reads of one Kubernetes object from the document tree.
//
// Decoding an object is a long series of field reads, each of which may find a wrong type or an
// invalid value. Instead of threading a Status through every read, a Decoder keeps the *first*
// error (with its field path, e.g. `spec.ports[0].targetPort`) and later reads return harmless
// defaults; the caller checks `ok()` once at the end and throws the half-built object away.
// Absent keys and explicit nulls read the same (Go's JSON decoding treats them alike); unknown
// keys are ignored, as the API server does (it only warns).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "loader_tree.h"
#include "nicflow/flowtables/ip.h"
#include "nicflow/flowtables/model.h"

namespace nicflow::flowtables::loader {

class Decoder {
 public:
  bool ok() const { return error_.empty(); }
  /// "<path>: <message>" of the first failure.
  const std::string& error() const { return error_; }
  void Fail(const std::string& path, std::string_view message);
  /// Warnings worth a note (e.g. host bits masked), "<path>: <message>".
  const std::vector<std::string>& warnings() const { return warnings_; }
  void Warn(const std::string& path, std::string_view message);

 private:
  std::string error_;
  std::vector<std::string> warnings_;
};

/// A cursor on one field: its value (nullptr when absent or null) and its path.
class Field {
 public:
  Field(Decoder& decoder, const Value* value, std::string path)
      : decoder_(&decoder),
        value_(value && !value->is_null() ? value : nullptr),
        path_(std::move(path)) {}

  bool present() const { return value_ != nullptr; }
  const Value* value() const { return value_; }
  const std::string& path() const { return path_; }
  Decoder& decoder() const { return *decoder_; }
  void Fail(std::string_view message) const { decoder_->Fail(path_, message); }
  void Warn(std::string_view message) const { decoder_->Warn(path_, message); }

  /// Child `key` of a map (this field must be a map or absent).
  Field operator[](std::string_view key) const;
  /// Fails with "required value" when absent; returns present().
  bool Require() const;
  /// Checks the type; absent passes. Fails "expected <want>, got <have>".
  bool Is(Value::Type type) const;

  std::string Str() const;  ///< "" when absent
  std::optional<std::string> OptStr() const;
  bool Bool(bool absent_value = false) const;
  std::optional<bool> OptBool() const;
  /// An integer in [min, max]; absent gives nullopt. Fails "<n> out of range" outside.
  std::optional<int64_t> Int(int64_t min, int64_t max) const;
  /// Items of a list (empty when absent).
  std::vector<Field> Items() const;
  /// Entries of a map (empty when absent).
  std::vector<std::pair<std::string, Field>> Entries() const;
  /// A list of strings.
  std::vector<std::string> Strings() const;

 private:
  Decoder* decoder_;
  const Value* value_;
  std::string path_;
};

// Kubernetes value decoders. Each fails on `f` with the API server's reason and returns a
// harmless default on error.

Labels DecodeLabels(const Field& f);
LabelSelector DecodeLabelSelector(const Field& f);
Protocol DecodeProtocol(const Field& f);  ///< default TCP
/// A port number 1-65535 (0 allowed when `allow_zero`); absent gives 0.
uint16_t DecodePort(const Field& f, bool allow_zero = false);
/// An int-or-string port: a number 1-65535 or an IANA service name; absent gives monostate.
std::variant<std::monostate, uint16_t, std::string> DecodeIntOrStringPort(const Field& f);
IpAddr DecodeIp(const Field& f);
std::vector<IpAddr> DecodeIps(const Field& f);
/// A CIDR; host bits set fail unless `mask_host_bits` (then a warning notes the masking).
IpPrefix DecodeCidr(const Field& f, bool mask_host_bits);
std::vector<IpPrefix> DecodeCidrs(const Field& f, bool mask_host_bits);
/// Parses "a.b.c.d/n[,x::/m]" (comma-separated CIDRs in one string, as kube-proxy flags are).
std::vector<IpPrefix> DecodeCidrList(const Field& f, bool mask_host_bits);

// Name checks from k8s.io/apimachinery/pkg/util/validation. Return "" or the reason.
std::string CheckDns1123Label(std::string_view s);
std::string CheckDns1123Subdomain(std::string_view s);
std::string CheckDns1035Label(std::string_view s);
std::string CheckIanaServiceName(std::string_view s);
std::string CheckLabelKey(std::string_view s);
std::string CheckLabelValue(std::string_view s);

/// Reads a name field, checked with `check`; "" on error.
std::string DecodeName(const Field& f, std::string (*check)(std::string_view), bool required);

/// kube-proxy's detectLocalMode (absent: ClusterCIDR); other values fail naming the field.
DetectLocalMode DecodeDetectLocal(const Field& f);

}  // namespace nicflow::flowtables::loader
