// IP addresses and prefixes shared by the model, the IR and every backend.
//
// An address is stored as 16 big-endian bytes with its family; IPv4 uses the first four bytes.
// Parsing is strict: no leading zeros in IPv4 octets (as Kubernetes validates since 1.22), no
// zones, and a prefix's host bits must be zero unless the caller asks to mask them.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace nicflow::flowtables {

enum class IpFamily : uint8_t { kV4 = 4, kV6 = 6 };

/// One IPv4 or IPv6 address. Value type, totally ordered (v4 before v6).
class IpAddr {
 public:
  IpAddr() = default;
  static IpAddr V4(uint32_t host_order);
  static IpAddr V6(const std::array<uint8_t, 16>& bytes);

  /// Parses dotted-quad IPv4 or RFC 4291 IPv6 text. Errors: InvalidArgument naming the text.
  static absl::StatusOr<IpAddr> Parse(std::string_view text);

  IpFamily family() const { return family_; }
  bool is_v4() const { return family_ == IpFamily::kV4; }
  int width_bits() const { return is_v4() ? 32 : 128; }
  /// IPv4 value in host order; 0 for IPv6.
  uint32_t v4() const;
  const std::array<uint8_t, 16>& bytes() const { return bytes_; }
  /// The address with every bit past `prefix_len_bits` cleared.
  IpAddr Masked(int prefix_len_bits) const;
  /// Canonical text: dotted quad, or RFC 5952 compressed IPv6.
  std::string ToString() const;

  friend auto operator<=>(const IpAddr&, const IpAddr&) = default;

 private:
  IpFamily family_ = IpFamily::kV4;
  std::array<uint8_t, 16> bytes_{};
};

/// An address prefix (CIDR).
struct IpPrefix {
  IpAddr addr;
  int prefix_len_bits = 0;

  /// Parses "a.b.c.d/n" or "x::/n"; a bare address is a host prefix. Host bits set are an error
  /// unless `mask_host_bits` (then they are cleared, as for Node podCIDRs written loosely).
  static absl::StatusOr<IpPrefix> Parse(std::string_view text, bool mask_host_bits = false);
  static IpPrefix Host(const IpAddr& a) { return {a, a.width_bits()}; }

  IpFamily family() const { return addr.family(); }
  bool Contains(const IpAddr& a) const;
  bool Contains(const IpPrefix& p) const;
  std::string ToString() const;

  friend auto operator<=>(const IpPrefix&, const IpPrefix&) = default;
};

/// "ip:port", with IPv6 written "[ip]:port" (arguments and output alike).
std::string FormatEndpoint(const IpAddr& addr, uint16_t port);
/// Parses "ip:port" / "[ipv6]:port"; `port_required` false also accepts a bare address (port 0).
absl::StatusOr<std::pair<IpAddr, uint16_t>> ParseEndpoint(std::string_view text,
                                                          bool port_required = true);

}  // namespace nicflow::flowtables
