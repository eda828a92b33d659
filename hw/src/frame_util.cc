#include "frame_util.h"

#include <algorithm>
#include <cstring>

#include "nicflow/hw/image_format.h"

namespace nicflow::hw {
namespace {

constexpr uint8_t kTcp = 6, kUdp = 17, kSctp = 132, kIcmp = 1, kIcmpv6 = 58;
constexpr uint8_t kRst = 0x04, kSyn = 0x02, kFin = 0x01, kAck = 0x10;

uint16_t Ld16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
uint32_t Ld32(const uint8_t* p) { return uint32_t{Ld16(p)} << 16 | Ld16(p + 2); }
void St16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
void St32(uint8_t* p, uint32_t v) {
  St16(p, static_cast<uint16_t>(v >> 16));
  St16(p + 2, static_cast<uint16_t>(v));
}

uint32_t Partial(const uint8_t* d, size_t n, uint32_t sum = 0) {
  uint64_t acc = sum;
  size_t i = 0;
  for (; i + 1 < n; i += 2) acc += Ld16(d + i);
  if (i < n) acc += uint32_t{d[i]} << 8;
  while (acc >> 32) acc = (acc & 0xffffffffu) + (acc >> 32);
  return static_cast<uint32_t>(acc);
}
uint16_t Finish(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

uint32_t Crc32c(const uint8_t* d, size_t n, uint32_t crc) {
  for (size_t i = 0; i < n; ++i) {
    crc ^= d[i];
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (NF_CRC32C_POLY & (0u - (crc & 1u)));
  }
  return crc;
}

void StoreSctpCrc(uint8_t* f, const FrameInfo& fi) {
  static const uint8_t kZero[4] = {0, 0, 0, 0};
  uint32_t crc = Crc32c(f + fi.l4_off, 8, 0xffffffffu);
  crc = Crc32c(kZero, 4, crc);
  crc = ~Crc32c(f + fi.l4_off + 12, fi.l3_end - fi.l4_off - 12, crc);
  for (int i = 0; i < 4; ++i) f[fi.l4_off + 8 + i] = static_cast<uint8_t>(crc >> (8 * i));
}

// Full recompute of a reply's checksums (IPv4 header, TCP or ICMP/ICMPv6).
void RecomputeReply(uint8_t* f, const FrameInfo& fi) {
  if (!fi.v6) {
    uint8_t* ip = f + fi.l3_off;
    St16(ip + 10, 0);
    St16(ip + 10, Finish(Partial(ip, 20)));
  }
  const size_t csum = fi.l4_off + (fi.proto == kTcp ? 16 : 2);
  St16(f + csum, 0);
  const uint32_t l4_len = fi.l3_end - fi.l4_off;
  uint32_t sum = Partial(f + fi.l4_off, l4_len);
  if (fi.proto != kIcmp) {
    const uint8_t* ip = f + fi.l3_off;
    sum = fi.v6 ? Partial(ip + 8, 32, sum) : Partial(ip + 12, 8, sum);
    sum += fi.proto + (l4_len >> 16) + (l4_len & 0xffff);
  }
  St16(f + csum, Finish(sum));
}

size_t WriteReplyHeaders(std::span<const uint8_t> in, const FrameInfo& fi, uint8_t* out,
                         uint8_t proto, size_t l4_len) {
  const size_t l2 = fi.l3_off;
  std::memcpy(out, in.data() + 6, 6);
  std::memcpy(out + 6, in.data(), 6);
  std::memcpy(out + 12, in.data() + 12, l2 - 12);
  const uint8_t* ip = in.data() + l2;
  uint8_t* o = out + l2;
  if (fi.v6) {
    St32(o, 0x60000000u);
    St16(o + 4, static_cast<uint16_t>(l4_len));
    o[6] = proto;
    o[7] = 64;
    std::memcpy(o + 8, ip + 24, 16);
    std::memcpy(o + 24, ip + 8, 16);
    return l2 + 40;
  }
  o[0] = 0x45;
  St16(o + 2, static_cast<uint16_t>(20 + l4_len));
  o[8] = 64;
  o[9] = proto;
  std::memcpy(o + 12, ip + 16, 4);
  std::memcpy(o + 16, ip + 12, 4);
  return l2 + 20;
}

}  // namespace

FrameInfo FrameInfoOf(std::span<const uint32_t> r) {
  FrameInfo fi;
  fi.l3_off = r[NF_R_OFFSETS] & 0xffffu;
  fi.l4_off = r[NF_R_OFFSETS] >> 16;
  fi.l3_end = r[NF_R_L3INFO] & 0xffffu;
  fi.proto = static_cast<uint8_t>(r[NF_R_L3INFO] >> 16);
  fi.v6 = (r[NF_R_L3INFO] >> 24) & 1u;
  fi.has_l4 = (r[NF_R_L3INFO] >> 25) & 1u;
  fi.fragment = (r[NF_R_L3INFO] >> 26) & 1u;
  return fi;
}

void RewriteSourcePort(std::span<uint8_t> frame, const FrameInfo& fi, uint16_t port) {
  if (!fi.has_l4 || (fi.proto != kTcp && fi.proto != kUdp && fi.proto != kSctp)) return;
  uint8_t* f = frame.data();
  const uint16_t old = Ld16(f + fi.l4_off);
  if (old == port) return;
  if (fi.proto != kSctp) {
    uint8_t* c = f + fi.l4_off + (fi.proto == kTcp ? 16 : 6);
    const uint16_t have = Ld16(c);
    if (!(fi.proto == kUdp && !fi.v6 && have == 0)) {
      uint16_t now =
          Finish(uint32_t{static_cast<uint16_t>(~have)} + static_cast<uint16_t>(~old) + port);
      if (fi.proto == kUdp && now == 0) now = 0xffff;
      St16(c, now);
    }
  }
  St16(f + fi.l4_off, port);
  if (fi.proto == kSctp && !fi.fragment) StoreSctpCrc(f, fi);
}

std::vector<uint8_t> BuildRejectReply(std::span<const uint8_t> in, const FrameInfo& fi,
                                      size_t max_len) {
  std::vector<uint8_t> out;
  FrameInfo r = fi;
  r.l3_off = fi.l3_off;
  if (fi.proto == kTcp && fi.has_l4) {
    const uint8_t* t = in.data() + fi.l4_off;
    const uint8_t flags = t[13];
    if (flags & kRst) return {};
    const size_t n = fi.l3_off + (fi.v6 ? 40u : 20u) + 20u;
    if (n > max_len) return {};
    out.assign(n, 0);
    const size_t l4 = WriteReplyHeaders(in, fi, out.data(), kTcp, 20);
    uint8_t* o = out.data() + l4;
    St16(o, Ld16(t + 2));
    St16(o + 2, Ld16(t));
    if (flags & kAck) {
      St32(o + 4, Ld32(t + 8));
      o[13] = kRst;
    } else {
      const size_t hdr = (t[12] >> 4) * 4u;
      const uint32_t seg = static_cast<uint32_t>(fi.l3_end - fi.l4_off - hdr) +
                           ((flags & kSyn) ? 1 : 0) + ((flags & kFin) ? 1 : 0);
      St32(o + 8, Ld32(t + 4) + seg);
      o[13] = kRst | kAck;
    }
    o[12] = 5 << 4;
    r.l4_off = static_cast<uint32_t>(l4);
    r.l3_end = static_cast<uint32_t>(n);
    r.proto = kTcp;
  } else {
    // No error about an ICMP error (RFC 1122 3.2.2).
    const bool icmp_l4 = fi.has_l4 && fi.proto == (fi.v6 ? kIcmpv6 : kIcmp);
    if (icmp_l4) {
      const uint8_t type = in[fi.l4_off];
      if (fi.v6 ? type < 128 : (type == 3 || type == 4 || type == 5 || type == 11 || type == 12)) {
        return {};
      }
    }
    const size_t ip_hdr = fi.v6 ? 40 : 20;
    const size_t max_ip = fi.v6 ? 1280 : 576;
    size_t quote = std::min<size_t>(fi.l3_end - fi.l3_off, max_ip - ip_hdr - 8);
    if (fi.l3_off + ip_hdr + 8 > max_len) return {};
    quote = std::min(quote, max_len - fi.l3_off - ip_hdr - 8);
    const size_t n = fi.l3_off + ip_hdr + 8 + quote;
    out.assign(n, 0);
    const uint8_t proto = fi.v6 ? kIcmpv6 : kIcmp;
    const size_t l4 = WriteReplyHeaders(in, fi, out.data(), proto, 8 + quote);
    uint8_t* o = out.data() + l4;
    o[0] = fi.v6 ? 1 : 3;
    o[1] = fi.v6 ? 4 : 3;
    std::memcpy(o + 8, in.data() + fi.l3_off, quote);
    r.l4_off = static_cast<uint32_t>(l4);
    r.l3_end = static_cast<uint32_t>(n);
    r.proto = proto;
  }
  RecomputeReply(out.data(), r);
  return out;
}

}  // namespace nicflow::hw
