// Frames as the simulated NIC sees them: a defensive parser, the header-field vector the pipeline
// matches on, and a builder for tests, traces and generated replies.
//
// The parser reads Ethernet, one optional 802.1Q tag, IPv4 (with options) or IPv6 (with up to
// kMaxIpv6ExtensionHeaders extension headers), then TCP, UDP, SCTP, ICMP or ICMPv6. Every read is
// bounds-checked against the frame length *and* the IP total/payload length; a frame that is
// shorter than its headers claim is rejected with a ParseError naming the first header that did
// not fit. Non-first fragments carry no L4 fields (they match only wildcards on L4 keys). The
// parser does not verify checksums (like a NIC that only reports checksum status): the datapath
// rewrites checksums incrementally, which preserves a bad checksum as bad.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "nicflow/flowtables/ip.h"
#include "nicflow/flowtables/ir.h"

namespace nicflow::sim {

using flowtables::Field;
using flowtables::IpAddr;
using flowtables::U128;

inline constexpr int kFieldCount = static_cast<int>(Field::kCount);
inline constexpr int kMaxIpv6ExtensionHeaders = 8;

inline constexpr uint16_t kEthTypeIpv4 = 0x0800;
inline constexpr uint16_t kEthTypeIpv6 = 0x86dd;
inline constexpr uint16_t kEthTypeArp = 0x0806;
inline constexpr uint16_t kEthTypeVlan = 0x8100;
inline constexpr uint8_t kProtoIcmp = 1;
inline constexpr uint8_t kProtoTcp = 6;
inline constexpr uint8_t kProtoUdp = 17;
inline constexpr uint8_t kProtoSctp = 132;
inline constexpr uint8_t kProtoIcmpv6 = 58;

/// TCP flag bits (the flags byte, as Field::kTcpFlags carries it).
enum TcpFlag : uint8_t {
  kTcpFin = 0x01,
  kTcpSyn = 0x02,
  kTcpRst = 0x04,
  kTcpPsh = 0x08,
  kTcpAck = 0x10,
};

/// Why a frame was dropped before the pipeline saw it. Counted per reason by the device.
enum class ParseError : uint8_t {
  kNone = 0,
  kTruncatedEthernet,
  kTruncatedVlan,
  kNonIp,  ///< not IPv4/IPv6 (ARP is answered by the port's proxy, if any, before parsing)
  kTruncatedIpv4,
  kBadIpv4Header,  ///< version != 4, IHL < 5, or total length < header length
  kTruncatedIpv6,
  kBadIpv6Header,       ///< version != 6
  kBadExtensionHeader,  ///< truncated, or too many extension headers
  kTruncatedL4,
  kBadL4Header,  ///< TCP data offset < 5, UDP length < 8 or past the IP payload
  kCount,
};
std::string_view ParseErrorName(ParseError e);

/// The values of every Field for one packet, plus which ones the packet carries.
/// Metadata fields are always "present" (they start at zero).
struct PacketFields {
  std::array<U128, kFieldCount> v{};
  uint32_t present = 0;  ///< bit i: Field(i) is carried by the packet

  U128 get(Field f) const { return v[static_cast<int>(f)]; }
  void set(Field f, U128 value) {
    v[static_cast<int>(f)] = value;
    present |= 1u << static_cast<int>(f);
  }
  bool has(Field f) const { return (present >> static_cast<int>(f)) & 1u; }
};
inline constexpr uint32_t FieldBit(Field f) { return 1u << static_cast<int>(f); }

/// Where the headers are inside a frame, and the values the datapath needs besides fields.
struct ParsedPacket {
  PacketFields fields;
  uint16_t eth_type = 0;
  uint16_t l3_offset = 0;
  uint16_t l4_offset = 0;  ///< 0 when the packet has no L4 header (non-first fragment, other)
  uint16_t l3_end = 0;     ///< end of the IP packet (frames may be padded past it)
  uint8_t l4_proto = 0;    ///< IPv4 protocol / last IPv6 next header
  bool is_v6 = false;
  bool has_l4 = false;  ///< an L4 header of a known protocol was parsed
  bool is_fragment = false;
  uint16_t icmp_id = 0;    ///< echo identifier for ICMP(v6) echo request/reply
  uint8_t sctp_chunk = 0;  ///< first chunk type of an SCTP packet (1 = INIT), 0xff if none
};

/// Parses `frame`. On success fills `out` and returns kNone; never reads past frame.size().
ParseError ParsePacket(std::span<const uint8_t> frame, ParsedPacket& out) noexcept;

/// True for an ICMP/ICMPv6 echo request or reply (they have an identifier conntrack tracks).
bool IsIcmpEcho(const ParsedPacket& p) noexcept;

/// What to build. Addresses must be of one family.
struct PacketSpec {
  uint8_t proto = kProtoTcp;  ///< kProtoTcp, kProtoUdp, kProtoSctp, kProtoIcmp or kProtoIcmpv6
  IpAddr src;
  IpAddr dst;
  uint16_t src_port = 0;  ///< TCP/UDP/SCTP; the echo identifier for ICMP echo
  uint16_t dst_port = 0;
  uint8_t tcp_flags = kTcpSyn;
  uint32_t tcp_seq = 1000;
  uint32_t tcp_ack = 0;
  uint8_t icmp_type = 8;   ///< echo request (128 for ICMPv6 is chosen automatically)
  uint8_t sctp_chunk = 1;  ///< INIT
  size_t payload_len = 0;  ///< zero bytes appended after the L4 header
  std::array<uint8_t, 6> src_mac{0x02, 0, 0, 0, 0, 1};
  std::array<uint8_t, 6> dst_mac{0x02, 0, 0, 0, 0, 2};
  std::optional<uint16_t> vlan;  ///< 802.1Q VLAN id
  uint8_t ttl = 64;
  bool udp_zero_checksum = false;  ///< IPv4 UDP without checksum
};

/// Builds a frame with valid IPv4, TCP, UDP, ICMP(v6) checksums and SCTP CRC32c.
/// Errors: InvalidArgument for mixed families or an unsupported protocol.
absl::StatusOr<std::vector<uint8_t>> BuildPacket(const PacketSpec& spec);

/// Reads a frame's L3/L4 addresses and ports back (for tests and traces).
IpAddr SrcAddr(const ParsedPacket& p);
IpAddr DstAddr(const ParsedPacket& p);

/// U128 <-> IpAddr for v4 (low 32 bits) and v6 (128 bits).
IpAddr AddrFromU128(U128 v, bool is_v6);

/// Big-endian accessors that the parser, rewriter and builder share.
inline uint16_t Load16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
inline uint32_t Load32(const uint8_t* p) {
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3];
}
inline void Store16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
inline void Store32(uint8_t* p, uint32_t v) {
  Store16(p, static_cast<uint16_t>(v >> 16));
  Store16(p + 2, static_cast<uint16_t>(v));
}

}  // namespace nicflow::sim
