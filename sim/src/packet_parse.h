// Private: the frame parser, written once for two outputs.
//
// ParsePacket() (packet.h) fills a ParsedPacket: the layout facts plus the whole field vector the
// tables match on, zeroed first (absent fields and metadata read as zero). A flow cache hit needs
// far less: the key fields, the layout for the rewrite and the TCP flags for conntrack. Building
// and zeroing the full vector for it cost about a fifth of an established packet's time, so the
// datapath parses cache probes into a ParsedHeaders (the same layout members, and a HeaderFields
// holding only the fields the parser sets) and builds the full vector only for frames the cache
// does not answer (ExpandHeaders, no second parse). Both come out of one template (packet.cc), so
// they accept and reject the same frames with the same ParseError and extract the same values;
// packet_test checks that, and that the expansion equals ParsePacket's result.
#pragma once

#include <cstdint>
#include <span>

#include "nicflow/sim/checksum.h"
#include "nicflow/sim/packet.h"

namespace nicflow::sim {

inline constexpr uint32_t kMetadataFieldBits =
    FieldBit(Field::kInPort) | FieldBit(Field::kCtState) | FieldBit(Field::kMetaPortClass) |
    FieldBit(Field::kMetaFlags) | FieldBit(Field::kMetaSrcSet) | FieldBit(Field::kMetaDstSet) |
    FieldBit(Field::kMetaPeerBits);

/// The fields the parser sets, without the rest of the vector. `present` has the same bits a
/// PacketFields of the same frame would have.
struct HeaderFields {
  U128 src, dst;  ///< IPv4 (low bits) or IPv6 addresses, as ParsedHeaders::is_v6 says
  uint32_t present = 0;
  uint16_t l4_src = 0, l4_dst = 0, eth_type = 0;
  uint8_t ip_proto = 0, icmp_type = 0, tcp_flags = 0;

  void set(Field f, U128 value) noexcept {
    switch (f) {
      case Field::kIpv4Src:
      case Field::kIpv6Src:
        src = value;
        break;
      case Field::kIpv4Dst:
      case Field::kIpv6Dst:
        dst = value;
        break;
      case Field::kL4Src:
        l4_src = static_cast<uint16_t>(value.lo);
        break;
      case Field::kL4Dst:
        l4_dst = static_cast<uint16_t>(value.lo);
        break;
      case Field::kEthType:
        eth_type = static_cast<uint16_t>(value.lo);
        break;
      case Field::kIpProto:
        ip_proto = static_cast<uint8_t>(value.lo);
        break;
      case Field::kIcmpType:
        icmp_type = static_cast<uint8_t>(value.lo);
        break;
      case Field::kTcpFlags:
        tcp_flags = static_cast<uint8_t>(value.lo);
        break;
      default:  // the parser sets no other field
        break;
    }
    present |= FieldBit(f);
  }
  bool has(Field f) const noexcept { return (present >> static_cast<int>(f)) & 1u; }
};

/// ParsedPacket's layout members with HeaderFields instead of the full vector.
struct ParsedHeaders {
  HeaderFields fields;
  uint16_t eth_type = 0;
  uint16_t l3_offset = 0;
  uint16_t l4_offset = 0;
  uint16_t l3_end = 0;
  uint8_t l4_proto = 0;
  bool is_v6 = false;
  bool has_l4 = false;
  bool is_fragment = false;
  uint16_t icmp_id = 0;
  uint8_t sctp_chunk = 0;
};

/// Parses `frame` into ParsedPacket semantics, headers only. Never reads past frame.size().
ParseError ParseHeaders(std::span<const uint8_t> frame, ParsedHeaders& out) noexcept;

/// What ParsePacket() would have produced for the frame `h` was parsed from.
void ExpandHeaders(const ParsedHeaders& h, ParsedPacket& out) noexcept;

/// The L3/L4 values of a parsed frame (what CaptureL34 reads from a ParsedPacket).
inline L34Values HeaderL34(const ParsedHeaders& p) noexcept {
  return {p.fields.src, p.fields.dst, U128::Of(p.fields.l4_src), U128::Of(p.fields.l4_dst)};
}

/// RewriteAddressesAndPorts for a ParsedHeaders frame: writes `to` where it differs from `from`,
/// with the same incremental checksum updates. True when something changed.
bool RewriteL34(std::span<uint8_t> frame, const ParsedHeaders& p, const L34Values& from,
                const L34Values& to) noexcept;

}  // namespace nicflow::sim
