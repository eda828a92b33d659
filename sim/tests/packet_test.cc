#include "nicflow/sim/packet.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "nicflow/sim/checksum.h"
#include "packet_parse.h"
#include "test_programs.h"

namespace nicflow::sim {
namespace {

using testing::Ip;

PacketSpec Spec(uint8_t proto, const char* src, uint16_t sp, const char* dst, uint16_t dp) {
  PacketSpec s;
  s.proto = proto;
  s.src = Ip(src);
  s.dst = Ip(dst);
  s.src_port = sp;
  s.dst_port = dp;
  return s;
}

std::vector<PacketSpec> AllKinds() {
  std::vector<PacketSpec> v = {
      Spec(kProtoTcp, "10.0.0.1", 1234, "10.96.0.10", 80),
      Spec(kProtoUdp, "10.0.0.1", 5353, "10.96.0.10", 53),
      Spec(kProtoSctp, "10.0.0.1", 3868, "10.96.0.10", 3868),
      Spec(kProtoIcmp, "10.0.0.1", 77, "10.96.0.10", 0),
      Spec(kProtoTcp, "2001:db8::1", 1234, "fd00::10", 443),
      Spec(kProtoUdp, "2001:db8::1", 1234, "fd00::10", 53),
      Spec(kProtoSctp, "2001:db8::1", 1234, "fd00::10", 9),
      Spec(kProtoIcmpv6, "2001:db8::1", 99, "fd00::10", 0),
  };
  PacketSpec vlan = Spec(kProtoUdp, "10.0.0.1", 1, "10.0.0.2", 2);
  vlan.vlan = 100;
  vlan.payload_len = 33;
  v.push_back(vlan);
  PacketSpec zero = Spec(kProtoUdp, "10.0.0.1", 1, "10.0.0.2", 2);
  zero.udp_zero_checksum = true;
  v.push_back(zero);
  return v;
}

TEST(Packet, BuiltFramesParseWithTheirFieldsAndValidChecksums) {
  for (const PacketSpec& s : AllKinds()) {
    auto f = BuildPacket(s);
    ASSERT_TRUE(f.ok()) << f.status();
    ParsedPacket p;
    ASSERT_EQ(ParsePacket(*f, p), ParseError::kNone);
    EXPECT_EQ(SrcAddr(p), s.src);
    EXPECT_EQ(DstAddr(p), s.dst);
    EXPECT_TRUE(ChecksumsValid(*f, p));
    EXPECT_TRUE(p.has_l4);
    if (s.proto == kProtoIcmp || s.proto == kProtoIcmpv6) {
      EXPECT_FALSE(p.fields.has(Field::kL4Dst)) << "ICMP carries no L4 ports";
      EXPECT_EQ(p.icmp_id, s.src_port);
    } else {
      EXPECT_EQ(p.fields.get(Field::kL4Src).lo, s.src_port);
      EXPECT_EQ(p.fields.get(Field::kL4Dst).lo, s.dst_port);
    }
    EXPECT_EQ(p.fields.has(Field::kIpv6Src), !s.src.is_v4());
    EXPECT_EQ(p.fields.has(Field::kIpv4Src), s.src.is_v4());
  }
}

TEST(Packet, EveryTruncationIsRejectedNotOverread) {
  for (const PacketSpec& s : AllKinds()) {
    auto f = BuildPacket(s);
    ASSERT_TRUE(f.ok());
    for (size_t n = 0; n < f->size(); ++n) {
      // A fresh heap copy of exactly n bytes, so ASan catches any read past the end.
      std::vector<uint8_t> cut(f->begin(), f->begin() + static_cast<ptrdiff_t>(n));
      ParsedPacket p;
      EXPECT_NE(ParsePacket(cut, p), ParseError::kNone) << "length " << n;
    }
  }
}

TEST(Packet, RandomBytesNeverCrashAndGarbageIsClassified) {
  std::mt19937_64 rng(42);
  auto base = BuildPacket(Spec(kProtoTcp, "10.0.0.1", 1, "10.0.0.2", 2));
  size_t ok = 0;
  for (int i = 0; i < 20000; ++i) {
    std::vector<uint8_t> f;
    if (i % 2 == 0) {
      f.resize(rng() % 128);
      for (auto& b : f) b = static_cast<uint8_t>(rng());
    } else {  // a valid frame with a few bytes flipped: exercises the deeper parsers
      f = *base;
      for (int k = 0; k < 3; ++k) f[rng() % f.size()] = static_cast<uint8_t>(rng());
      f.resize(rng() % (f.size() + 1));
    }
    ParsedPacket p;
    const ParseError e = ParsePacket(f, p);
    if (e == ParseError::kNone) {
      ++ok;
      ASSERT_LE(p.l3_end, f.size());
      if (p.l4_offset) {
        ASSERT_LE(p.l4_offset, p.l3_end);
      }
    }
  }
  EXPECT_LT(ok, 20000u);
}

// The datapath parses cache probes with ParseHeaders and expands them for the interpreter; that
// must be indistinguishable from ParsePacket on every frame, good, cut short or garbage.
TEST(Packet, HeaderParseAndExpansionAgreeWithTheFullParse) {
  std::mt19937_64 rng(5);
  std::vector<std::vector<uint8_t>> frames;
  for (const PacketSpec& s : AllKinds()) {
    auto f = BuildPacket(s);
    ASSERT_TRUE(f.ok());
    for (size_t n = 0; n <= f->size(); ++n) frames.emplace_back(f->begin(), f->begin() + n);
    for (int i = 0; i < 2000; ++i) {
      std::vector<uint8_t> g = *f;
      for (int k = 0; k < 3; ++k) g[rng() % g.size()] = static_cast<uint8_t>(rng());
      frames.push_back(std::move(g));
    }
  }
  size_t parsed = 0;
  for (const std::vector<uint8_t>& f : frames) {
    ParsedPacket full;
    ParsedHeaders h;
    const ParseError e = ParsePacket(f, full);
    ASSERT_EQ(ParseHeaders(f, h), e);
    if (e != ParseError::kNone) continue;
    ++parsed;
    ParsedPacket expanded;
    expanded.fields.v.fill(U128::Of(0xdead));  // the expansion must overwrite every field
    ExpandHeaders(h, expanded);
    ASSERT_EQ(expanded.fields.present, full.fields.present);
    for (int i = 0; i < kFieldCount; ++i) ASSERT_EQ(expanded.fields.v[i], full.fields.v[i]) << i;
    EXPECT_EQ(expanded.eth_type, full.eth_type);
    EXPECT_EQ(expanded.l3_offset, full.l3_offset);
    EXPECT_EQ(expanded.l4_offset, full.l4_offset);
    EXPECT_EQ(expanded.l3_end, full.l3_end);
    EXPECT_EQ(expanded.l4_proto, full.l4_proto);
    EXPECT_EQ(expanded.is_v6, full.is_v6);
    EXPECT_EQ(expanded.has_l4, full.has_l4);
    EXPECT_EQ(expanded.is_fragment, full.is_fragment);
    EXPECT_EQ(expanded.icmp_id, full.icmp_id);
    EXPECT_EQ(expanded.sctp_chunk, full.sctp_chunk);
  }
  EXPECT_GT(parsed, 1000u);
}

TEST(Packet, Ipv6ExtensionHeadersAreWalkedToTheTransportHeader) {
  auto f = BuildPacket(Spec(kProtoUdp, "2001:db8::1", 10, "2001:db8::2", 20));
  ASSERT_TRUE(f.ok());
  // Insert a hop-by-hop (8 bytes) and a destination options header (16 bytes).
  std::vector<uint8_t> ext = {kProtoUdp, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  std::vector<uint8_t> hbh = {60, 0, 0, 0, 0, 0, 0, 0};
  std::vector<uint8_t> g(f->begin(), f->begin() + 54);
  g.insert(g.end(), hbh.begin(), hbh.end());
  g.insert(g.end(), ext.begin(), ext.end());
  g.insert(g.end(), f->begin() + 54, f->end());
  g[14 + 6] = 0;  // next header: hop-by-hop
  Store16(g.data() + 18, static_cast<uint16_t>(Load16(g.data() + 18) + 24));
  ParsedPacket p;
  ASSERT_EQ(ParsePacket(g, p), ParseError::kNone);
  EXPECT_EQ(p.l4_proto, kProtoUdp);
  EXPECT_EQ(p.l4_offset, 14 + 40 + 24);
  EXPECT_EQ(p.fields.get(Field::kL4Dst).lo, 20u);
  // A destination options header claiming more than the payload is rejected.
  g[54 + 8 + 1] = 200;
  EXPECT_EQ(ParsePacket(g, p), ParseError::kBadExtensionHeader);
}

TEST(Packet, NonFirstFragmentsCarryNoPorts) {
  auto f = BuildPacket(Spec(kProtoUdp, "10.0.0.1", 10, "10.0.0.2", 20));
  (*f)[14 + 6] = 0x00;
  (*f)[14 + 7] = 0x10;  // fragment offset 16 * 8 bytes
  ParsedPacket p;
  ASSERT_EQ(ParsePacket(*f, p), ParseError::kNone);
  EXPECT_TRUE(p.is_fragment);
  EXPECT_FALSE(p.fields.has(Field::kL4Dst));
  EXPECT_TRUE(p.fields.has(Field::kIpProto));
}

TEST(Packet, IncrementalNatRewriteMatchesFullRecomputation) {
  std::mt19937_64 rng(7);
  for (const PacketSpec& s : AllKinds()) {
    for (int i = 0; i < 50; ++i) {
      PacketSpec spec = s;
      spec.payload_len = rng() % 40;
      auto f = BuildPacket(spec);
      ASSERT_TRUE(f.ok());
      ParsedPacket p;
      ASSERT_EQ(ParsePacket(*f, p), ParseError::kNone);
      PacketFields target = p.fields;
      const bool v6 = p.is_v6;
      U128 a{v6 ? rng() : 0, v6 ? rng() : (rng() & 0xffffffff)};
      target.set(v6 ? Field::kIpv6Dst : Field::kIpv4Dst, a);
      if (i % 2) target.set(v6 ? Field::kIpv6Src : Field::kIpv4Src, U128{a.hi, a.lo ^ 0xff});
      if (p.fields.has(Field::kL4Dst)) target.set(Field::kL4Dst, U128::Of(rng() & 0xffff));
      if (p.fields.has(Field::kL4Src)) target.set(Field::kL4Src, U128::Of(rng() & 0xffff));
      const uint16_t udp_before = spec.udp_zero_checksum ? Load16(f->data() + 14 + 20 + 6) : 1;
      ASSERT_TRUE(RewriteAddressesAndPorts(*f, p, target));
      ParsedPacket q;
      ASSERT_EQ(ParsePacket(*f, q), ParseError::kNone);
      EXPECT_EQ(q.fields.get(v6 ? Field::kIpv6Dst : Field::kIpv4Dst), a);
      EXPECT_TRUE(ChecksumsValid(*f, q)) << "proto " << int(spec.proto) << " v6 " << v6;
      std::vector<uint8_t> full = *f;
      RecomputeChecksums(full, q);
      EXPECT_EQ(full, *f) << "incremental and full checksums differ";
      if (spec.udp_zero_checksum) {
        EXPECT_EQ(udp_before, 0);
        EXPECT_EQ(Load16(f->data() + 14 + 20 + 6), 0) << "IPv4 UDP zero checksum stays zero";
      }
    }
  }
}

// The rewrite adjusts each checksum once for all changed words; that must equal adjusting it
// change by change (RFC 1624 per field, as the rewrite did before), whatever the stored checksums
// are, including 0x0000 and 0xffff and IPv4 UDP's "no checksum" 0.
TEST(Checksum, OneAdjustmentForAllChangesEqualsOnePerChange) {
  std::mt19937_64 rng(9);
  for (uint8_t proto : {kProtoTcp, kProtoUdp}) {
    for (int i = 0; i < 3000; ++i) {
      auto f = BuildPacket(Spec(proto, "10.0.0.1", 1000, "10.96.0.10", 80));
      ASSERT_TRUE(f.ok());
      ParsedPacket p;
      ASSERT_EQ(ParsePacket(*f, p), ParseError::kNone);
      const size_t ip_c = p.l3_offset + 10;
      const size_t l4_c = p.l4_offset + (proto == kProtoTcp ? 16 : 6);
      const uint16_t picks[] = {0, 0xffff, 1, 0xfffe};
      Store16(f->data() + ip_c, i % 3 ? static_cast<uint16_t>(rng()) : picks[rng() % 4]);
      Store16(f->data() + l4_c, i % 3 ? static_cast<uint16_t>(rng()) : picks[rng() % 4]);
      PacketFields target = p.fields;
      const uint16_t words[] = {0, 0xffff, static_cast<uint16_t>(rng())};
      const auto word = [&] { return uint64_t{words[rng() % 3]}; };
      if (rng() % 2) target.set(Field::kIpv4Src, U128::Of(word() << 16 | word()));
      if (rng() % 2) target.set(Field::kIpv4Dst, U128::Of(word() << 16 | word()));
      if (rng() % 2) target.set(Field::kL4Src, U128::Of(word()));
      if (rng() % 2) target.set(Field::kL4Dst, U128::Of(word()));
      std::vector<uint8_t> want = *f;
      const auto change = [&](size_t at, const uint8_t* to, size_t len, bool ip) {
        const std::span<const uint8_t> old_b(want.data() + at, len), new_b(to, len);
        if (ip) Store16(&want[ip_c], ChecksumAdjust(Load16(&want[ip_c]), old_b, new_b));
        const uint16_t have = Load16(&want[l4_c]);
        if (!(proto == kProtoUdp && have == 0)) {
          uint16_t now = ChecksumAdjust(have, old_b, new_b);
          if (proto == kProtoUdp && now == 0) now = 0xffff;
          Store16(&want[l4_c], now);
        }
        std::memcpy(want.data() + at, to, len);
      };
      const Field fields[] = {Field::kIpv4Src, Field::kIpv4Dst, Field::kL4Src, Field::kL4Dst};
      for (int k = 0; k < 4; ++k) {
        if (target.get(fields[k]) == p.fields.get(fields[k])) continue;
        uint8_t b[4];
        Store32(b, static_cast<uint32_t>(target.get(fields[k]).lo));
        if (k < 2) change(p.l3_offset + 12 + 4 * k, b, 4, true);
        if (k >= 2) change(p.l4_offset + 2 * (k - 2), b + 2, 2, false);
      }
      RewriteAddressesAndPorts(*f, p, target);
      ASSERT_EQ(*f, want) << "case " << i;
    }
  }
}

TEST(Checksum, Rfc1624ExampleAndCrc32cTestVector) {
  // RFC 1624 section 4: HC=0xdd2f, m=0x5555 -> m'=0x3285 gives HC'=0x0000 (not 0xffff).
  EXPECT_EQ(ChecksumAdjust16(0xdd2f, 0x5555, 0x3285), 0x0000);
  // CRC32c("123456789") = 0xe3069283 (RFC 3720 B.4 check value).
  const std::string s = "123456789";
  const uint32_t crc = ~Crc32c({reinterpret_cast<const uint8_t*>(s.data()), s.size()});
  EXPECT_EQ(crc, 0xe3069283u);
}

}  // namespace
}  // namespace nicflow::sim
