#include "nicflow/sim/checksum.h"

#include <array>
#include <cstring>

#include "packet_parse.h"

namespace nicflow::sim {
namespace {

constexpr std::array<uint32_t, 256> MakeCrc32cTable() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
    t[i] = c;
  }
  return t;
}
constexpr std::array<uint32_t, 256> kCrc32cTable = MakeCrc32cTable();

// ChecksumFinish(), which the rewrite inlines (called out of line it was a tenth of the rewrite).
inline uint16_t FoldAndInvert(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

// Sum of the pseudo-header (RFC 793 / RFC 8200 section 8.1) for an L4 length.
uint32_t PseudoHeaderSum(std::span<const uint8_t> f, const ParsedPacket& p, uint32_t l4_len) {
  const uint8_t* ip = f.data() + p.l3_offset;
  uint32_t sum = p.is_v6 ? ChecksumPartial({ip + 8, 32}) : ChecksumPartial({ip + 12, 8});
  sum += p.l4_proto;
  sum += l4_len >> 16;
  sum += l4_len & 0xffff;
  return sum;
}

// Offset of the L4 checksum field, or 0 when the protocol has none covered by Internet sums.
template <class P>
size_t L4ChecksumOffset(const P& p) {
  if (!p.has_l4) return 0;
  switch (p.l4_proto) {
    case kProtoTcp:
      return p.l4_offset + 16u;
    case kProtoUdp:
      return p.l4_offset + 6u;
    case kProtoIcmp:
    case kProtoIcmpv6:
      return p.l4_offset + 2u;
    default:
      return 0;
  }
}

uint16_t ComputeL4Checksum(std::span<const uint8_t> f, const ParsedPacket& p, size_t csum_off) {
  const uint32_t l4_len = p.l3_end - p.l4_offset;
  // The sum over the segment includes the checksum field itself; subtract it by summing the two
  // halves around it.
  uint32_t sum = ChecksumPartial(f.subspan(p.l4_offset, csum_off - p.l4_offset));
  sum = ChecksumPartial(f.subspan(csum_off + 2, p.l3_end - csum_off - 2), sum);
  if (p.l4_proto != kProtoIcmp) sum += PseudoHeaderSum(f, p, l4_len);
  uint16_t c = ChecksumFinish(sum);
  if (p.l4_proto == kProtoUdp && c == 0) c = 0xffff;
  return c;
}

template <class P>
uint32_t SctpCrc(std::span<const uint8_t> f, const P& p) {
  const size_t off = p.l4_offset;
  static constexpr std::array<uint8_t, 4> kZero{};
  uint32_t crc = Crc32c(f.subspan(off, 8));
  crc = Crc32c(kZero, crc);
  crc = Crc32c(f.subspan(off + 12, p.l3_end - off - 12), crc);
  return ~crc;
}

// SCTP stores the CRC32c little-endian (RFC 9260 appendix A).
void StoreLe32(uint8_t* x, uint32_t v) {
  for (int i = 0; i < 4; ++i) x[i] = static_cast<uint8_t>(v >> (8 * i));
}
uint32_t LoadLe32(const uint8_t* x) {
  return uint32_t{x[0]} | uint32_t{x[1]} << 8 | uint32_t{x[2]} << 16 | uint32_t{x[3]} << 24;
}

}  // namespace

uint32_t ChecksumPartial(std::span<const uint8_t> data, uint32_t sum) noexcept {
  // 64-bit accumulator: no carry folding inside the loop for any frame size we handle.
  uint64_t acc = sum;
  size_t i = 0;
  for (; i + 1 < data.size(); i += 2) acc += Load16(data.data() + i);
  if (i < data.size()) acc += uint32_t{data[i]} << 8;
  while (acc >> 32) acc = (acc & 0xffffffffu) + (acc >> 32);
  return static_cast<uint32_t>(acc);
}

uint16_t ChecksumFinish(uint32_t sum) noexcept { return FoldAndInvert(sum); }

uint16_t ChecksumAdjust16(uint16_t checksum, uint16_t old_word, uint16_t new_word) noexcept {
  uint32_t sum = static_cast<uint16_t>(~checksum);
  sum += static_cast<uint16_t>(~old_word);
  sum += new_word;
  return ChecksumFinish(sum);
}

uint16_t ChecksumAdjust(uint16_t checksum, std::span<const uint8_t> old_bytes,
                        std::span<const uint8_t> new_bytes) noexcept {
  uint32_t sum = static_cast<uint16_t>(~checksum);
  for (size_t i = 0; i + 1 < old_bytes.size(); i += 2) {
    sum += static_cast<uint16_t>(~Load16(old_bytes.data() + i));
    sum += Load16(new_bytes.data() + i);
  }
  return ChecksumFinish(sum);
}

uint32_t Crc32c(std::span<const uint8_t> data, uint32_t crc) noexcept {
  for (uint8_t b : data) crc = kCrc32cTable[(crc ^ b) & 0xff] ^ (crc >> 8);
  return crc;
}

void RecomputeChecksums(std::span<uint8_t> f, const ParsedPacket& p) noexcept {
  if (!p.is_v6) {
    uint8_t* ip = f.data() + p.l3_offset;
    const size_t ihl = (ip[0] & 0x0f) * 4u;
    Store16(ip + 10, 0);
    Store16(ip + 10, ChecksumFinish(ChecksumPartial({ip, ihl})));
  }
  if (!p.has_l4 || p.is_fragment) return;
  if (p.l4_proto == kProtoSctp) {
    StoreLe32(f.data() + p.l4_offset + 8, SctpCrc(f, p));
    return;
  }
  const size_t off = L4ChecksumOffset(p);
  if (off == 0) return;
  if (p.l4_proto == kProtoUdp && !p.is_v6 && Load16(f.data() + off) == 0) return;
  Store16(f.data() + off, ComputeL4Checksum(f, p, off));
}

bool ChecksumsValid(std::span<const uint8_t> f, const ParsedPacket& p) noexcept {
  if (!p.is_v6) {
    const uint8_t* ip = f.data() + p.l3_offset;
    if (ChecksumFinish(ChecksumPartial({ip, (ip[0] & 0x0f) * 4u})) != 0) return false;
  }
  if (!p.has_l4 || p.is_fragment) return true;
  if (p.l4_proto == kProtoSctp) return LoadLe32(f.data() + p.l4_offset + 8) == SctpCrc(f, p);
  const size_t off = L4ChecksumOffset(p);
  if (off == 0) return true;
  const uint16_t have = Load16(f.data() + off);
  if (p.l4_proto == kProtoUdp && !p.is_v6 && have == 0) return true;
  return have == ComputeL4Checksum(f, p, off);
}

namespace {

// The one's complement sum of ~old + new over `len` (even) bytes: what RFC 1624's eqn. 3 adds
// to ~checksum for them. Several changes' sums add up, so each checksum is adjusted once for all
// of them; the result equals adjusting it change by change (one's complement addition is
// associative, and folding a positive sum never yields 0, so no intermediate -0/+0 differs).
uint32_t ChangeSum(const uint8_t* old_b, const uint8_t* new_b, size_t len) {
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < len; i += 2) {
    sum += static_cast<uint16_t>(~Load16(old_b + i));
    sum += Load16(new_b + i);
  }
  return sum;
}

uint16_t Adjusted(uint16_t checksum, uint32_t change_sum) {
  return FoldAndInvert(static_cast<uint16_t>(~checksum) + change_sum);
}

template <bool v6>
void U128ToBytes(U128 v, uint8_t* out) {
  if constexpr (!v6) {
    Store32(out, static_cast<uint32_t>(v.lo));
  } else {
    Store32(out, static_cast<uint32_t>(v.hi >> 32));
    Store32(out + 4, static_cast<uint32_t>(v.hi));
    Store32(out + 8, static_cast<uint32_t>(v.lo >> 32));
    Store32(out + 12, static_cast<uint32_t>(v.lo));
  }
}

}  // namespace

L34Values CaptureL34(const ParsedPacket& p) noexcept {
  const bool v6 = p.is_v6;
  return {p.fields.get(v6 ? Field::kIpv6Src : Field::kIpv4Src),
          p.fields.get(v6 ? Field::kIpv6Dst : Field::kIpv4Dst), p.fields.get(Field::kL4Src),
          p.fields.get(Field::kL4Dst)};
}

bool RewriteAddressesAndPorts(std::span<uint8_t> f, const ParsedPacket& p,
                              const PacketFields& target) noexcept {
  return RewriteAddressesAndPorts(f, p, CaptureL34(p), target);
}

namespace {

// Writes `to` where it differs from `from` and adjusts the IPv4 header checksum and the L4
// checksum once for all changed bytes (an IPv4 UDP checksum of 0 means "none" and stays 0; a
// computed UDP checksum of 0 is sent as 0xffff). SCTP's CRC32c is recomputed.
// The address family is a template parameter so the address length is a constant and the byte
// loops unroll (an established packet's rewrite spent most of its time in them).
template <bool v6, class P>
bool RewriteFamily(std::span<uint8_t> f, const P& p, const L34Values& from, const L34Values& to) {
  constexpr size_t alen = v6 ? 16 : 4;
  const size_t src_at = p.l3_offset + (v6 ? 8u : 12u);
  // ICMPv4's checksum does not cover the IP header; every other L4 checksum does.
  const bool l4_covers_ips = p.l4_proto != kProtoIcmp && !(p.is_fragment && p.l4_offset == 0);
  uint32_t ip_sum = 0;
  uint32_t l4_sum = 0;
  bool ip_changed = false;
  bool l4_changed = false;
  uint8_t buf[16];
  for (int i = 0; i < 2; ++i) {
    const U128 want = i == 0 ? to.src : to.dst;
    if (want == (i == 0 ? from.src : from.dst)) continue;
    U128ToBytes<v6>(want, buf);
    uint8_t* at = f.data() + src_at + i * alen;
    const uint32_t sum = ChangeSum(at, buf, alen);
    ip_sum += sum;
    ip_changed = true;
    if (l4_covers_ips) l4_sum += sum, l4_changed = true;
    std::memcpy(at, buf, alen);
  }
  const bool has_ports =
      p.has_l4 && (p.l4_proto == kProtoTcp || p.l4_proto == kProtoUdp || p.l4_proto == kProtoSctp);
  if (has_ports) {
    for (int i = 0; i < 2; ++i) {
      const U128 want = i == 0 ? to.src_port : to.dst_port;
      if (want == (i == 0 ? from.src_port : from.dst_port)) continue;
      Store16(buf, static_cast<uint16_t>(want.lo));
      uint8_t* at = f.data() + p.l4_offset + i * 2u;
      l4_sum += ChangeSum(at, buf, 2);
      l4_changed = true;
      std::memcpy(at, buf, 2);
    }
  }
  if (ip_changed && !v6) {
    uint8_t* c = f.data() + p.l3_offset + 10;
    Store16(c, Adjusted(Load16(c), ip_sum));
  }
  const size_t off = L4ChecksumOffset(p);
  if (l4_changed && off != 0) {
    uint8_t* c = f.data() + off;
    const uint16_t have = Load16(c);
    if (!(p.l4_proto == kProtoUdp && !v6 && have == 0)) {
      uint16_t now = Adjusted(have, l4_sum);
      if (p.l4_proto == kProtoUdp && now == 0) now = 0xffff;
      Store16(c, now);
    }
  }
  const bool changed = ip_changed || l4_changed;
  if (changed && p.l4_proto == kProtoSctp && p.has_l4 && !p.is_fragment) {
    StoreLe32(f.data() + p.l4_offset + 8, SctpCrc(f, p));
  }
  return changed;
}

template <class P>
bool Rewrite(std::span<uint8_t> f, const P& p, const L34Values& from, const L34Values& to) {
  return p.is_v6 ? RewriteFamily<true>(f, p, from, to) : RewriteFamily<false>(f, p, from, to);
}

}  // namespace

bool RewriteAddressesAndPorts(std::span<uint8_t> f, const ParsedPacket& p, const L34Values& from,
                              const PacketFields& target) noexcept {
  const Field src = p.is_v6 ? Field::kIpv6Src : Field::kIpv4Src;
  const Field dst = p.is_v6 ? Field::kIpv6Dst : Field::kIpv4Dst;
  return Rewrite(
      f, p, from,
      {target.get(src), target.get(dst), target.get(Field::kL4Src), target.get(Field::kL4Dst)});
}

bool RewriteL34(std::span<uint8_t> f, const ParsedHeaders& p, const L34Values& from,
                const L34Values& to) noexcept {
  return Rewrite(f, p, from, to);
}

}  // namespace nicflow::sim
