#include "nicflow/sim/packet.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "nicflow/sim/checksum.h"
#include "packet_parse.h"

namespace nicflow::sim {
namespace {

U128 LoadU128(const uint8_t* p) {
  uint64_t hi = 0;
  uint64_t lo = 0;
  for (int i = 0; i < 8; ++i) hi = hi << 8 | p[i];
  for (int i = 8; i < 16; ++i) lo = lo << 8 | p[i];
  return {hi, lo};
}

// The parser below is a template over its output: ParsedPacket (the full field vector) or
// ParsedHeaders (packet_parse.h says why). Both have the same layout members and a `fields` with
// set() and has(); the ICMP type is read through these two overloads.
uint64_t IcmpTypeOf(const PacketFields& f) { return f.get(Field::kIcmpType).lo; }
uint64_t IcmpTypeOf(const HeaderFields& f) { return f.icmp_type; }

template <class P>
bool IsEcho(const P& p) noexcept {
  if (!p.fields.has(Field::kIcmpType)) return false;
  const uint64_t t = IcmpTypeOf(p.fields);
  return p.is_v6 ? (t == 128 || t == 129) : (t == 8 || t == 0);
}

// Parses IPv4 at out.l3_offset; sets l3_end, l4_offset (0 for non-first fragments), proto.
template <class P>
ParseError ParseIpv4(std::span<const uint8_t> f, P& out) noexcept {
  const size_t off = out.l3_offset;
  if (f.size() < off + 20) return ParseError::kTruncatedIpv4;
  const uint8_t* ip = f.data() + off;
  const size_t ihl = (ip[0] & 0x0f) * 4u;
  const size_t total = Load16(ip + 2);
  if ((ip[0] >> 4) != 4 || ihl < 20 || total < ihl) return ParseError::kBadIpv4Header;
  if (f.size() < off + total) return ParseError::kTruncatedIpv4;
  const uint16_t frag = Load16(ip + 6);
  out.is_fragment = (frag & 0x3fff) != 0;
  const bool first_fragment = (frag & 0x1fff) == 0;
  out.l3_end = static_cast<uint16_t>(off + total);
  out.l4_proto = ip[9];
  out.fields.set(Field::kIpv4Src, U128::Of(Load32(ip + 12)));
  out.fields.set(Field::kIpv4Dst, U128::Of(Load32(ip + 16)));
  out.l4_offset = first_fragment ? static_cast<uint16_t>(off + ihl) : 0;
  return ParseError::kNone;
}

// Walks IPv6 extension headers; sets the final next header and the L4 offset.
template <class P>
ParseError ParseIpv6(std::span<const uint8_t> f, P& out) noexcept {
  const size_t off = out.l3_offset;
  if (f.size() < off + 40) return ParseError::kTruncatedIpv6;
  const uint8_t* ip = f.data() + off;
  if ((ip[0] >> 4) != 6) return ParseError::kBadIpv6Header;
  const size_t end = off + 40 + Load16(ip + 4);
  if (f.size() < end) return ParseError::kTruncatedIpv6;
  out.l3_end = static_cast<uint16_t>(end);
  out.fields.set(Field::kIpv6Src, LoadU128(ip + 8));
  out.fields.set(Field::kIpv6Dst, LoadU128(ip + 24));
  uint8_t nh = ip[6];
  size_t pos = off + 40;
  bool first_fragment = true;
  for (int n = 0;; ++n) {
    const bool ext = nh == 0 || nh == 43 || nh == 44 || nh == 51 || nh == 60 || nh == 135 ||
                     nh == 139 || nh == 140;
    if (!ext) break;
    if (n == kMaxIpv6ExtensionHeaders || pos + 8 > end) return ParseError::kBadExtensionHeader;
    const uint8_t* x = f.data() + pos;
    size_t len = (x[1] + 1u) * 8u;
    if (nh == 44) {
      len = 8;
      out.is_fragment = true;
      first_fragment = (Load16(x + 2) >> 3) == 0;
    } else if (nh == 51) {
      len = (x[1] + 2u) * 4u;
    }
    if (pos + len > end) return ParseError::kBadExtensionHeader;
    nh = x[0];
    pos += len;
  }
  out.l4_proto = nh;
  out.l4_offset = first_fragment ? static_cast<uint16_t>(pos) : 0;
  return ParseError::kNone;
}

template <class P>
ParseError ParseL4(std::span<const uint8_t> f, P& out) noexcept {
  const size_t off = out.l4_offset;
  const size_t avail = out.l3_end - off;
  const uint8_t* x = f.data() + off;
  switch (out.l4_proto) {
    case kProtoTcp: {
      if (avail < 20) return ParseError::kTruncatedL4;
      const size_t doff = (x[12] >> 4) * 4u;
      if (doff < 20) return ParseError::kBadL4Header;
      if (doff > avail) return ParseError::kTruncatedL4;
      out.fields.set(Field::kTcpFlags, U128::Of(x[13]));
      break;
    }
    case kProtoUdp: {
      if (avail < 8) return ParseError::kTruncatedL4;
      const size_t ulen = Load16(x + 4);
      if (ulen < 8 || ulen > avail) return ParseError::kBadL4Header;
      break;
    }
    case kProtoSctp:
      if (avail < 12) return ParseError::kTruncatedL4;
      out.sctp_chunk = avail >= 16 ? x[12] : 0xff;
      break;
    case kProtoIcmp:
    case kProtoIcmpv6:
      if (out.l4_proto == kProtoIcmp ? out.is_v6 : !out.is_v6) return ParseError::kNone;
      if (avail < 4) return ParseError::kTruncatedL4;
      out.fields.set(Field::kIcmpType, U128::Of(x[0]));
      out.has_l4 = true;
      if (IsEcho(out)) {
        if (avail < 8) return ParseError::kTruncatedL4;
        out.icmp_id = Load16(x + 4);
      }
      return ParseError::kNone;
    default:
      return ParseError::kNone;
  }
  out.fields.set(Field::kL4Src, U128::Of(Load16(x)));
  out.fields.set(Field::kL4Dst, U128::Of(Load16(x + 2)));
  out.has_l4 = true;
  return ParseError::kNone;
}

template <class P>
ParseError ParseFrame(std::span<const uint8_t> frame, P& out) noexcept {
  out = P{};
  out.sctp_chunk = 0xff;
  out.fields.present = kMetadataFieldBits;
  if (frame.size() < 14) return ParseError::kTruncatedEthernet;
  uint16_t eth_type = Load16(frame.data() + 12);
  size_t off = 14;
  if (eth_type == kEthTypeVlan) {
    if (frame.size() < 18) return ParseError::kTruncatedVlan;
    eth_type = Load16(frame.data() + 16);
    off = 18;
  }
  out.eth_type = eth_type;
  out.l3_offset = static_cast<uint16_t>(off);
  if (frame.size() > 0xffff) return ParseError::kBadIpv4Header;  // offsets are 16-bit
  ParseError e;
  if (eth_type == kEthTypeIpv4) {
    e = ParseIpv4(frame, out);
  } else if (eth_type == kEthTypeIpv6) {
    out.is_v6 = true;
    e = ParseIpv6(frame, out);
  } else {
    return ParseError::kNonIp;
  }
  if (e != ParseError::kNone) return e;
  out.fields.set(Field::kEthType, U128::Of(eth_type));
  out.fields.set(Field::kIpProto, U128::Of(out.l4_proto));
  if (out.l4_offset == 0) return ParseError::kNone;
  return ParseL4(frame, out);
}

}  // namespace

std::string_view ParseErrorName(ParseError e) {
  switch (e) {
    case ParseError::kNone:
      return "none";
    case ParseError::kTruncatedEthernet:
      return "truncated_ethernet";
    case ParseError::kTruncatedVlan:
      return "truncated_vlan";
    case ParseError::kNonIp:
      return "non_ip";
    case ParseError::kTruncatedIpv4:
      return "truncated_ipv4";
    case ParseError::kBadIpv4Header:
      return "bad_ipv4_header";
    case ParseError::kTruncatedIpv6:
      return "truncated_ipv6";
    case ParseError::kBadIpv6Header:
      return "bad_ipv6_header";
    case ParseError::kBadExtensionHeader:
      return "bad_ipv6_extension_header";
    case ParseError::kTruncatedL4:
      return "truncated_l4";
    case ParseError::kBadL4Header:
      return "bad_l4_header";
    case ParseError::kCount:
      break;
  }
  return "unknown";
}

bool IsIcmpEcho(const ParsedPacket& p) noexcept { return IsEcho(p); }

ParseError ParsePacket(std::span<const uint8_t> frame, ParsedPacket& out) noexcept {
  return ParseFrame(frame, out);
}

ParseError ParseHeaders(std::span<const uint8_t> frame, ParsedHeaders& out) noexcept {
  return ParseFrame(frame, out);
}

void ExpandHeaders(const ParsedHeaders& h, ParsedPacket& out) noexcept {
  const HeaderFields& f = h.fields;
  out.fields.v = {};
  out.fields.present = f.present;
  const auto put = [&](Field field, U128 value) {
    if (f.has(field)) out.fields.v[static_cast<int>(field)] = value;
  };
  put(Field::kIpv4Src, f.src);
  put(Field::kIpv4Dst, f.dst);
  put(Field::kIpv6Src, f.src);
  put(Field::kIpv6Dst, f.dst);
  put(Field::kL4Src, U128::Of(f.l4_src));
  put(Field::kL4Dst, U128::Of(f.l4_dst));
  put(Field::kEthType, U128::Of(f.eth_type));
  put(Field::kIpProto, U128::Of(f.ip_proto));
  put(Field::kIcmpType, U128::Of(f.icmp_type));
  put(Field::kTcpFlags, U128::Of(f.tcp_flags));
  out.eth_type = h.eth_type;
  out.l3_offset = h.l3_offset;
  out.l4_offset = h.l4_offset;
  out.l3_end = h.l3_end;
  out.l4_proto = h.l4_proto;
  out.is_v6 = h.is_v6;
  out.has_l4 = h.has_l4;
  out.is_fragment = h.is_fragment;
  out.icmp_id = h.icmp_id;
  out.sctp_chunk = h.sctp_chunk;
}

IpAddr AddrFromU128(U128 v, bool is_v6) {
  if (!is_v6) return IpAddr::V4(static_cast<uint32_t>(v.lo));
  std::array<uint8_t, 16> b{};
  for (int i = 0; i < 8; ++i) {
    b[i] = static_cast<uint8_t>(v.hi >> (56 - 8 * i));
    b[8 + i] = static_cast<uint8_t>(v.lo >> (56 - 8 * i));
  }
  return IpAddr::V6(b);
}

IpAddr SrcAddr(const ParsedPacket& p) {
  return AddrFromU128(p.fields.get(p.is_v6 ? Field::kIpv6Src : Field::kIpv4Src), p.is_v6);
}
IpAddr DstAddr(const ParsedPacket& p) {
  return AddrFromU128(p.fields.get(p.is_v6 ? Field::kIpv6Dst : Field::kIpv4Dst), p.is_v6);
}

namespace {

size_t L4HeaderLen(const PacketSpec& s) {
  switch (s.proto) {
    case kProtoTcp:
      return 20;
    case kProtoUdp:
      return 8;
    case kProtoSctp:
      return 12 + 20;  // common header + one 20-byte chunk
    default:
      return 8;  // ICMP(v6) echo header
  }
}

void WriteL4(const PacketSpec& s, bool v6, uint8_t* x, size_t l4_len) {
  switch (s.proto) {
    case kProtoTcp:
      Store16(x, s.src_port);
      Store16(x + 2, s.dst_port);
      Store32(x + 4, s.tcp_seq);
      Store32(x + 8, s.tcp_ack);
      x[12] = 5 << 4;
      x[13] = s.tcp_flags;
      Store16(x + 14, 65535);
      break;
    case kProtoUdp:
      Store16(x, s.src_port);
      Store16(x + 2, s.dst_port);
      Store16(x + 4, static_cast<uint16_t>(l4_len));
      break;
    case kProtoSctp:
      Store16(x, s.src_port);
      Store16(x + 2, s.dst_port);
      Store32(x + 4, s.sctp_chunk == 1 ? 0 : 0x1234abcd);  // INIT carries verification tag 0
      x[12] = s.sctp_chunk;
      Store16(x + 14, 20);
      Store32(x + 16, 0x5ca1ab1e);  // initiate tag
      Store32(x + 20, 65536);       // a_rwnd
      Store16(x + 24, 1);
      Store16(x + 26, 1);
      Store32(x + 28, 1);  // initial TSN
      break;
    default: {
      uint8_t type = s.icmp_type;
      if (v6 && type == 8) type = 128;
      if (v6 && type == 0) type = 129;
      x[0] = type;
      Store16(x + 4, s.src_port);
      Store16(x + 6, 1);
      break;
    }
  }
}

}  // namespace

absl::StatusOr<std::vector<uint8_t>> BuildPacket(const PacketSpec& s) {
  if (s.src.family() != s.dst.family()) {
    return absl::InvalidArgumentError(absl::StrCat("BuildPacket: mixed address families ",
                                                   s.src.ToString(), " -> ", s.dst.ToString()));
  }
  const bool v6 = !s.src.is_v4();
  if (s.proto != kProtoTcp && s.proto != kProtoUdp && s.proto != kProtoSctp &&
      s.proto != (v6 ? kProtoIcmpv6 : kProtoIcmp)) {
    return absl::InvalidArgumentError(
        absl::StrCat("BuildPacket: protocol ", s.proto, " not supported for IPv", v6 ? 6 : 4));
  }
  const size_t l2 = s.vlan ? 18 : 14;
  const size_t l3 = v6 ? 40 : 20;
  const size_t l4 = L4HeaderLen(s) + s.payload_len;
  if (l3 + l4 > 0xffff) return absl::InvalidArgumentError("BuildPacket: payload too large");
  std::vector<uint8_t> f(l2 + l3 + l4, 0);
  std::memcpy(f.data(), s.dst_mac.data(), 6);
  std::memcpy(f.data() + 6, s.src_mac.data(), 6);
  if (s.vlan) {
    Store16(f.data() + 12, kEthTypeVlan);
    Store16(f.data() + 14, *s.vlan & 0x0fff);
  }
  Store16(f.data() + l2 - 2, v6 ? kEthTypeIpv6 : kEthTypeIpv4);
  uint8_t* ip = f.data() + l2;
  if (v6) {
    Store32(ip, 0x60000000u);
    Store16(ip + 4, static_cast<uint16_t>(l4));
    ip[6] = s.proto;
    ip[7] = s.ttl;
    std::memcpy(ip + 8, s.src.bytes().data(), 16);
    std::memcpy(ip + 24, s.dst.bytes().data(), 16);
  } else {
    ip[0] = 0x45;
    Store16(ip + 2, static_cast<uint16_t>(l3 + l4));
    Store16(ip + 6, 0x4000);  // DF
    ip[8] = s.ttl;
    ip[9] = s.proto;
    std::memcpy(ip + 12, s.src.bytes().data(), 4);
    std::memcpy(ip + 16, s.dst.bytes().data(), 4);
  }
  WriteL4(s, v6, ip + l3, l4);
  ParsedPacket p;
  if (ParsePacket(f, p) != ParseError::kNone) return absl::InternalError("BuildPacket: reparse");
  RecomputeChecksums(f, p);
  if (s.proto == kProtoUdp && !v6 && s.udp_zero_checksum) Store16(ip + l3 + 6, 0);
  return f;
}

}  // namespace nicflow::sim
