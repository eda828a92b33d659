// REJECT replies: a TCP RST (RFC 9293 section 3.10.7.1) or an ICMP/ICMPv6 port unreachable
// (RFC 792 / RFC 4443) sent back to the sender out of the port the packet came in on.
#include <algorithm>
#include <cstring>

#include "device_state.h"
#include "nicflow/sim/checksum.h"

namespace nicflow::sim {
namespace {

// Copies the L2 header with the MAC addresses swapped and writes an IP header from dst to src of
// the original packet. Returns the L4 offset in `out`.
size_t WriteReplyHeaders(std::span<const uint8_t> in, const ParsedPacket& p, uint8_t* out,
                         uint8_t proto, size_t l4_len) {
  const size_t l2 = p.l3_offset;
  std::memcpy(out, in.data() + 6, 6);
  std::memcpy(out + 6, in.data(), 6);
  std::memcpy(out + 12, in.data() + 12, l2 - 12);
  const uint8_t* ip = in.data() + l2;
  uint8_t* o = out + l2;
  if (p.is_v6) {
    std::memset(o, 0, 40);
    Store32(o, 0x60000000u);
    Store16(o + 4, static_cast<uint16_t>(l4_len));
    o[6] = proto;
    o[7] = 64;
    std::memcpy(o + 8, ip + 24, 16);
    std::memcpy(o + 24, ip + 8, 16);
    return l2 + 40;
  }
  std::memset(o, 0, 20);
  o[0] = 0x45;
  Store16(o + 2, static_cast<uint16_t>(20 + l4_len));
  o[8] = 64;
  o[9] = proto;
  std::memcpy(o + 12, ip + 16, 4);
  std::memcpy(o + 16, ip + 12, 4);
  return l2 + 20;
}

size_t BuildRst(std::span<const uint8_t> in, const ParsedPacket& p, std::span<uint8_t> out) {
  const uint8_t* t = in.data() + p.l4_offset;
  const uint8_t flags = t[13];
  if (flags & kTcpRst) return 0;  // never answer a reset
  const size_t n = p.l3_offset + (p.is_v6 ? 40u : 20u) + 20u;
  if (n > out.size()) return 0;
  std::memset(out.data(), 0, n);
  uint8_t* o = out.data() + WriteReplyHeaders(in, p, out.data(), kProtoTcp, 20);
  Store16(o, Load16(t + 2));
  Store16(o + 2, Load16(t));
  if (flags & kTcpAck) {
    Store32(o + 4, Load32(t + 8));  // seq = their ack
    o[13] = kTcpRst;
  } else {
    const size_t hdr = (t[12] >> 4) * 4u;
    const uint32_t seg = static_cast<uint32_t>(p.l3_end - p.l4_offset - hdr) +
                         ((flags & kTcpSyn) ? 1 : 0) + ((flags & kTcpFin) ? 1 : 0);
    Store32(o + 8, Load32(t + 4) + seg);
    o[13] = kTcpRst | kTcpAck;
  }
  o[12] = 5 << 4;
  return n;
}

bool IsIcmpError(const ParsedPacket& p) {
  if (!p.fields.has(Field::kIcmpType)) return false;
  const uint64_t t = p.fields.get(Field::kIcmpType).lo;
  return p.is_v6 ? t < 128 : (t == 3 || t == 4 || t == 5 || t == 11 || t == 12);
}

size_t BuildPortUnreachable(std::span<const uint8_t> in, const ParsedPacket& p,
                            std::span<uint8_t> out) {
  if (IsIcmpError(p)) return 0;  // RFC 1122 3.2.2: no error about an error
  const size_t ip_hdr = p.is_v6 ? 40 : 20;
  const size_t max_ip = p.is_v6 ? 1280 : 576;  // RFC 4443 2.4(c), RFC 1812 4.3.2.3
  size_t quote = p.l3_end - p.l3_offset;
  quote = std::min(quote, max_ip - ip_hdr - 8);
  if (p.l3_offset + ip_hdr + 8 > out.size()) return 0;
  quote = std::min(quote, out.size() - p.l3_offset - ip_hdr - 8);
  const size_t n = p.l3_offset + ip_hdr + 8 + quote;
  std::memset(out.data(), 0, n);
  const uint8_t proto = p.is_v6 ? kProtoIcmpv6 : kProtoIcmp;
  uint8_t* o = out.data() + WriteReplyHeaders(in, p, out.data(), proto, 8 + quote);
  o[0] = p.is_v6 ? 1 : 3;  // destination unreachable
  o[1] = p.is_v6 ? 4 : 3;  // port unreachable
  std::memcpy(o + 8, in.data() + p.l3_offset, quote);
  return n;
}

}  // namespace

size_t BuildRejectReply(std::span<const uint8_t> in, const ParsedPacket& p,
                        std::span<uint8_t> out) noexcept {
  size_t n = 0;
  if (p.l4_proto == kProtoTcp && p.has_l4) {
    n = BuildRst(in, p, out);
  } else {
    n = BuildPortUnreachable(in, p, out);
  }
  if (n == 0) return 0;
  ParsedPacket reply;
  if (ParsePacket(out.first(n), reply) != ParseError::kNone) return 0;
  RecomputeChecksums(out.first(n), reply);
  return n;
}

}  // namespace nicflow::sim
