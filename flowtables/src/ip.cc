#include "nicflow/flowtables/ip.h"

#include <arpa/inet.h>

#include <charconv>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "nicflow/flowtables/status.h"

namespace nicflow::flowtables {

IpAddr IpAddr::V4(uint32_t host_order) {
  IpAddr a;
  a.family_ = IpFamily::kV4;
  a.bytes_[0] = static_cast<uint8_t>(host_order >> 24);
  a.bytes_[1] = static_cast<uint8_t>(host_order >> 16);
  a.bytes_[2] = static_cast<uint8_t>(host_order >> 8);
  a.bytes_[3] = static_cast<uint8_t>(host_order);
  return a;
}

IpAddr IpAddr::V6(const std::array<uint8_t, 16>& bytes) {
  IpAddr a;
  a.family_ = IpFamily::kV6;
  a.bytes_ = bytes;
  return a;
}

namespace {

// Strict dotted quad: four decimal octets, no leading zeros, nothing else.
std::optional<uint32_t> ParseV4(std::string_view text) {
  uint32_t value = 0;
  int octets = 0;
  size_t i = 0;
  while (octets < 4) {
    size_t start = i;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i;
    size_t len = i - start;
    if (len == 0 || len > 3 || (len > 1 && text[start] == '0')) return std::nullopt;
    unsigned octet = 0;
    std::from_chars(text.data() + start, text.data() + i, octet);
    if (octet > 255) return std::nullopt;
    value = (value << 8) | octet;
    ++octets;
    if (octets < 4) {
      if (i >= text.size() || text[i] != '.') return std::nullopt;
      ++i;
    }
  }
  if (i != text.size()) return std::nullopt;
  return value;
}

}  // namespace

absl::StatusOr<IpAddr> IpAddr::Parse(std::string_view text) {
  if (text.find(':') == std::string_view::npos) {
    if (auto v4 = ParseV4(text)) return V4(*v4);
    return absl::InvalidArgumentError(absl::StrCat("invalid IP address \"", Sv(text), "\""));
  }
  if (text.size() > 45 || text.find('%') != std::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("invalid IP address \"", Sv(text), "\""));
  }
  std::string buf(text);
  std::array<uint8_t, 16> bytes{};
  if (inet_pton(AF_INET6, buf.c_str(), bytes.data()) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("invalid IP address \"", Sv(text), "\""));
  }
  return V6(bytes);
}

uint32_t IpAddr::v4() const {
  if (!is_v4()) return 0;
  return (uint32_t{bytes_[0]} << 24) | (uint32_t{bytes_[1]} << 16) | (uint32_t{bytes_[2]} << 8) |
         uint32_t{bytes_[3]};
}

IpAddr IpAddr::Masked(int prefix_len_bits) const {
  IpAddr out = *this;
  int width = width_bits();
  for (int bit = std::max(prefix_len_bits, 0); bit < width; ++bit) {
    out.bytes_[bit / 8] &= static_cast<uint8_t>(~(0x80u >> (bit % 8)));
  }
  return out;
}

std::string IpAddr::ToString() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (is_v4()) {
    inet_ntop(AF_INET, bytes_.data(), buf, sizeof buf);
  } else {
    inet_ntop(AF_INET6, bytes_.data(), buf, sizeof buf);
  }
  return buf;
}

absl::StatusOr<IpPrefix> IpPrefix::Parse(std::string_view text, bool mask_host_bits) {
  size_t slash = text.find('/');
  auto addr = IpAddr::Parse(text.substr(0, slash));
  if (!addr.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("invalid CIDR \"", Sv(text), "\""));
  }
  int len = addr->width_bits();
  if (slash != std::string_view::npos) {
    std::string_view digits = text.substr(slash + 1);
    auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), len);
    if (digits.empty() || ec != std::errc() || ptr != digits.data() + digits.size() || len < 0 ||
        len > addr->width_bits() || (digits.size() > 1 && digits[0] == '0')) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid CIDR \"", Sv(text), "\": bad prefix length"));
    }
  }
  IpAddr masked = addr->Masked(len);
  if (masked != *addr && !mask_host_bits) {
    return absl::InvalidArgumentError(absl::StrCat("invalid CIDR \"", Sv(text),
                                                   "\": host bits set (did you mean ",
                                                   masked.ToString(), "/", len, "?)"));
  }
  return IpPrefix{masked, len};
}

bool IpPrefix::Contains(const IpAddr& a) const {
  return a.family() == addr.family() && a.Masked(prefix_len_bits) == addr;
}

bool IpPrefix::Contains(const IpPrefix& p) const {
  return p.prefix_len_bits >= prefix_len_bits && Contains(p.addr);
}

std::string IpPrefix::ToString() const {
  return absl::StrCat(addr.ToString(), "/", prefix_len_bits);
}

std::string FormatEndpoint(const IpAddr& addr, uint16_t port) {
  if (addr.is_v4()) return absl::StrCat(addr.ToString(), ":", port);
  return absl::StrCat("[", addr.ToString(), "]:", port);
}

absl::StatusOr<std::pair<IpAddr, uint16_t>> ParseEndpoint(std::string_view text,
                                                          bool port_required) {
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid endpoint \"", Sv(text), "\": ", Sv(why)));
  };
  std::string_view host = text;
  std::string_view port_text;
  if (!text.empty() && text[0] == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos) return bad("missing ']'");
    host = text.substr(1, close - 1);
    std::string_view rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':') return bad("expected ':' after ']'");
      port_text = rest.substr(1);
    }
  } else if (size_t colon = text.rfind(':');
             colon != std::string_view::npos && text.find(':') == colon) {
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
  }
  auto addr = IpAddr::Parse(host);
  if (!addr.ok()) return bad("bad address");
  if (port_text.empty()) {
    if (port_required) return bad("missing port (IPv6 is written [addr]:port)");
    return std::pair{*addr, uint16_t{0}};
  }
  unsigned port = 0;
  auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || ptr != port_text.data() + port_text.size() || port == 0 ||
      port > 65535) {
    return bad("port out of range 1-65535");
  }
  return std::pair{*addr, static_cast<uint16_t>(port)};
}

}  // namespace nicflow::flowtables
