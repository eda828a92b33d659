/* nicflow match-action kernel (OpenCL C 1.2). The build prepends hw/include/nicflow/hw/
 * image_format.h, which defines every layout used here; docs/fpga-image-format.md specifies the
 * behaviour an RTL implementation must reproduce.
 *
 * One work-item processes one packet of a batch: parse -> pipeline (tables from 0, goto forward,
 * defaults on a miss, select groups, conntrack lookup) -> NAT rewrite with incremental checksums
 * -> result record. Written for synthesis: every loop has a constant trip-count bound (early
 * exits are `break`s inside it), no recursion, no dynamic allocation, private state of fixed
 * size. "HLS:" comments mark where a Vitis HLS pragma belongs when this source is compiled for an
 * FPGA (they are inert for PoCL and other CPU/GPU devices).
 *
 * Conntrack split: the kernel looks connections up in a device-memory table the host fills, and
 * tracks protocol state of known connections with atomics. A CtCommit of a connection the table
 * does not hold is *not* done here: the packet's result carries NF_RF_COMMIT with its original
 * and translated tuples, and the host commits it (allocating SNAT ports when needed) and
 * installs both tuples -- the slow path real FPGA NICs use for connection setup. */

#define NF_TCP_FIN 0x01u
#define NF_TCP_SYN 0x02u
#define NF_TCP_RST 0x04u
#define NF_TCP_ACK 0x10u
#define NF_PROTO_ICMP 1u
#define NF_PROTO_TCP 6u
#define NF_PROTO_UDP 17u
#define NF_PROTO_ICMPV6 58u
#define NF_PROTO_SCTP 132u
#define NF_CT_TRK 0x20u
#define NF_CT_NEW 0x01u
#define NF_CT_EST 0x02u
#define NF_CT_RPL 0x08u
#define NF_CT_INV 0x10u
#define NF_MAX_STEPS NF_MAX_TABLES
/* Parse errors: the values of nicflow::sim::ParseError. */
#define NF_PE_TRUNC_ETH 1u
#define NF_PE_TRUNC_VLAN 2u
#define NF_PE_NON_IP 3u
#define NF_PE_TRUNC_IPV4 4u
#define NF_PE_BAD_IPV4 5u
#define NF_PE_TRUNC_IPV6 6u
#define NF_PE_BAD_IPV6 7u
#define NF_PE_BAD_EXT 8u
#define NF_PE_TRUNC_L4 9u
#define NF_PE_BAD_L4 10u

__constant uint nf_crc_table[256] = {
    0x00000000u, 0xf26b8303u, 0xe13b70f7u, 0x1350f3f4u, 0xc79a971fu, 0x35f1141cu, 0x26a1e7e8u,
    0xd4ca64ebu, 0x8ad958cfu, 0x78b2dbccu, 0x6be22838u, 0x9989ab3bu, 0x4d43cfd0u, 0xbf284cd3u,
    0xac78bf27u, 0x5e133c24u, 0x105ec76fu, 0xe235446cu, 0xf165b798u, 0x030e349bu, 0xd7c45070u,
    0x25afd373u, 0x36ff2087u, 0xc494a384u, 0x9a879fa0u, 0x68ec1ca3u, 0x7bbcef57u, 0x89d76c54u,
    0x5d1d08bfu, 0xaf768bbcu, 0xbc267848u, 0x4e4dfb4bu, 0x20bd8edeu, 0xd2d60dddu, 0xc186fe29u,
    0x33ed7d2au, 0xe72719c1u, 0x154c9ac2u, 0x061c6936u, 0xf477ea35u, 0xaa64d611u, 0x580f5512u,
    0x4b5fa6e6u, 0xb93425e5u, 0x6dfe410eu, 0x9f95c20du, 0x8cc531f9u, 0x7eaeb2fau, 0x30e349b1u,
    0xc288cab2u, 0xd1d83946u, 0x23b3ba45u, 0xf779deaeu, 0x05125dadu, 0x1642ae59u, 0xe4292d5au,
    0xba3a117eu, 0x4851927du, 0x5b016189u, 0xa96ae28au, 0x7da08661u, 0x8fcb0562u, 0x9c9bf696u,
    0x6ef07595u, 0x417b1dbcu, 0xb3109ebfu, 0xa0406d4bu, 0x522bee48u, 0x86e18aa3u, 0x748a09a0u,
    0x67dafa54u, 0x95b17957u, 0xcba24573u, 0x39c9c670u, 0x2a993584u, 0xd8f2b687u, 0x0c38d26cu,
    0xfe53516fu, 0xed03a29bu, 0x1f682198u, 0x5125dad3u, 0xa34e59d0u, 0xb01eaa24u, 0x42752927u,
    0x96bf4dccu, 0x64d4cecfu, 0x77843d3bu, 0x85efbe38u, 0xdbfc821cu, 0x2997011fu, 0x3ac7f2ebu,
    0xc8ac71e8u, 0x1c661503u, 0xee0d9600u, 0xfd5d65f4u, 0x0f36e6f7u, 0x61c69362u, 0x93ad1061u,
    0x80fde395u, 0x72966096u, 0xa65c047du, 0x5437877eu, 0x4767748au, 0xb50cf789u, 0xeb1fcbadu,
    0x197448aeu, 0x0a24bb5au, 0xf84f3859u, 0x2c855cb2u, 0xdeeedfb1u, 0xcdbe2c45u, 0x3fd5af46u,
    0x7198540du, 0x83f3d70eu, 0x90a324fau, 0x62c8a7f9u, 0xb602c312u, 0x44694011u, 0x5739b3e5u,
    0xa55230e6u, 0xfb410cc2u, 0x092a8fc1u, 0x1a7a7c35u, 0xe811ff36u, 0x3cdb9bddu, 0xceb018deu,
    0xdde0eb2au, 0x2f8b6829u, 0x82f63b78u, 0x709db87bu, 0x63cd4b8fu, 0x91a6c88cu, 0x456cac67u,
    0xb7072f64u, 0xa457dc90u, 0x563c5f93u, 0x082f63b7u, 0xfa44e0b4u, 0xe9141340u, 0x1b7f9043u,
    0xcfb5f4a8u, 0x3dde77abu, 0x2e8e845fu, 0xdce5075cu, 0x92a8fc17u, 0x60c37f14u, 0x73938ce0u,
    0x81f80fe3u, 0x55326b08u, 0xa759e80bu, 0xb4091bffu, 0x466298fcu, 0x1871a4d8u, 0xea1a27dbu,
    0xf94ad42fu, 0x0b21572cu, 0xdfeb33c7u, 0x2d80b0c4u, 0x3ed04330u, 0xccbbc033u, 0xa24bb5a6u,
    0x502036a5u, 0x4370c551u, 0xb11b4652u, 0x65d122b9u, 0x97baa1bau, 0x84ea524eu, 0x7681d14du,
    0x2892ed69u, 0xdaf96e6au, 0xc9a99d9eu, 0x3bc21e9du, 0xef087a76u, 0x1d63f975u, 0x0e330a81u,
    0xfc588982u, 0xb21572c9u, 0x407ef1cau, 0x532e023eu, 0xa145813du, 0x758fe5d6u, 0x87e466d5u,
    0x94b49521u, 0x66df1622u, 0x38cc2a06u, 0xcaa7a905u, 0xd9f75af1u, 0x2b9cd9f2u, 0xff56bd19u,
    0x0d3d3e1au, 0x1e6dcdeeu, 0xec064eedu, 0xc38d26c4u, 0x31e6a5c7u, 0x22b65633u, 0xd0ddd530u,
    0x0417b1dbu, 0xf67c32d8u, 0xe52cc12cu, 0x1747422fu, 0x49547e0bu, 0xbb3ffd08u, 0xa86f0efcu,
    0x5a048dffu, 0x8ecee914u, 0x7ca56a17u, 0x6ff599e3u, 0x9d9e1ae0u, 0xd3d3e1abu, 0x21b862a8u,
    0x32e8915cu, 0xc083125fu, 0x144976b4u, 0xe622f5b7u, 0xf5720643u, 0x07198540u, 0x590ab964u,
    0xab613a67u, 0xb831c993u, 0x4a5a4a90u, 0x9e902e7bu, 0x6cfbad78u, 0x7fab5e8cu, 0x8dc0dd8fu,
    0xe330a81au, 0x115b2b19u, 0x020bd8edu, 0xf0605beeu, 0x24aa3f05u, 0xd6c1bc06u, 0xc5914ff2u,
    0x37faccf1u, 0x69e9f0d5u, 0x9b8273d6u, 0x88d28022u, 0x7ab90321u, 0xae7367cau, 0x5c18e4c9u,
    0x4f48173du, 0xbd23943eu, 0xf36e6f75u, 0x0105ec76u, 0x12551f82u, 0xe03e9c81u, 0x34f4f86au,
    0xc69f7b69u, 0xd5cf889du, 0x27a40b9eu, 0x79b737bau, 0x8bdcb4b9u, 0x988c474du, 0x6ae7c44eu,
    0xbe2da0a5u, 0x4c4623a6u, 0x5f16d052u, 0xad7d5351u,
};

/* ---- Packet state (private, fixed size) ----------------------------------------------------- */
typedef struct {
  uint f[NF_FIELD_WORDS];  /* current field values (actions change these) */
  uint f0[NF_FIELD_WORDS]; /* as parsed: the rewrite compares against them */
  uint present;            /* bit per field the packet carries */
  uint len, l3_off, l4_off, l3_end, l4_proto, is_v6, has_l4, is_frag, icmp_id, sctp_chunk;
} nf_pkt;

uint nf_ld16(__global const uchar* p, uint off) { return ((uint)p[off] << 8) | (uint)p[off + 1]; }
uint nf_ld32(__global const uchar* p, uint off) {
  return (nf_ld16(p, off) << 16) | nf_ld16(p, off + 2);
}
void nf_set1(nf_pkt* k, uint fid, uint v) {
  k->f[NF_FIELD_OFF(fid)] = v;
  k->present |= 1u << fid;
}

/* ---- Hashes ------------------------------------------------------------------------------- */
uint nf_hash(const uint* w, uint n, uint seed) {
  uint crc = seed;
  /* HLS: PIPELINE II=1 (one word per cycle with a 4-byte-wide CRC unit) */
  for (uint i = 0; i < NF_MAX_KEY_WORDS; i++) {
    if (i >= n) break;
    uint x = w[i];
    for (uint b = 0; b < 4; b++) {
      /* HLS: UNROLL */
      crc = nf_crc_table[(crc ^ (x >> (8 * b))) & 0xffu] ^ (crc >> 8);
    }
  }
  return crc;
}

ulong nf_mix(ulong h) {
  h ^= h >> 31;
  h *= 0x7fb5d329728ea185UL;
  h ^= h >> 27;
  h *= 0x81dadef4bc2dd44dUL;
  h ^= h >> 33;
  return h;
}

/* ---- Parser (mirrors nicflow::sim::ParsePacket; every read is bounds-checked) ------------------
 */
uint nf_parse_ipv4(__global const uchar* fr, nf_pkt* k) {
  uint off = k->l3_off;
  if (k->len < off + 20) return NF_PE_TRUNC_IPV4;
  uint ihl = (fr[off] & 0x0fu) * 4u;
  uint total = nf_ld16(fr, off + 2);
  if ((fr[off] >> 4) != 4 || ihl < 20 || total < ihl) return NF_PE_BAD_IPV4;
  if (k->len < off + total) return NF_PE_TRUNC_IPV4;
  uint frag = nf_ld16(fr, off + 6);
  k->is_frag = (frag & 0x3fffu) != 0;
  uint first = (frag & 0x1fffu) == 0;
  k->l3_end = off + total;
  k->l4_proto = fr[off + 9];
  nf_set1(k, NF_FIELD_IPV4_SRC, nf_ld32(fr, off + 12));
  nf_set1(k, NF_FIELD_IPV4_DST, nf_ld32(fr, off + 16));
  k->l4_off = first ? off + ihl : 0;
  return 0;
}

uint nf_parse_ipv6(__global const uchar* fr, nf_pkt* k) {
  uint off = k->l3_off;
  if (k->len < off + 40) return NF_PE_TRUNC_IPV6;
  if ((fr[off] >> 4) != 6) return NF_PE_BAD_IPV6;
  uint end = off + 40 + nf_ld16(fr, off + 4);
  if (k->len < end) return NF_PE_TRUNC_IPV6;
  k->l3_end = end;
  for (uint i = 0; i < 4; i++) {
    /* HLS: UNROLL */
    k->f[NF_FIELD_OFF(NF_FIELD_IPV6_SRC) + i] = nf_ld32(fr, off + 8 + 4 * i);
    k->f[NF_FIELD_OFF(NF_FIELD_IPV6_DST) + i] = nf_ld32(fr, off + 24 + 4 * i);
  }
  k->present |= (1u << NF_FIELD_IPV6_SRC) | (1u << NF_FIELD_IPV6_DST);
  uint nh = fr[off + 6];
  uint pos = off + 40;
  uint first = 1;
  /* At most 8 extension headers (nicflow::sim::kMaxIpv6ExtensionHeaders); the 9th is an error. */
  for (uint n = 0; n < 9; n++) {
    uint ext = nh == 0 || nh == 43 || nh == 44 || nh == 51 || nh == 60 || nh == 135 || nh == 139 ||
               nh == 140;
    if (!ext) break;
    if (n == 8 || pos + 8 > end) return NF_PE_BAD_EXT;
    uint xlen = (fr[pos + 1] + 1u) * 8u;
    if (nh == 44) {
      xlen = 8;
      k->is_frag = 1;
      first = (nf_ld16(fr, pos + 2) >> 3) == 0;
    } else if (nh == 51) {
      xlen = (fr[pos + 1] + 2u) * 4u;
    }
    if (pos + xlen > end) return NF_PE_BAD_EXT;
    nh = fr[pos];
    pos += xlen;
  }
  k->l4_proto = nh;
  k->l4_off = first ? pos : 0;
  return 0;
}

uint nf_is_echo(const nf_pkt* k) {
  if (!(k->present & (1u << NF_FIELD_ICMP_TYPE))) return 0;
  uint t = k->f[NF_FIELD_OFF(NF_FIELD_ICMP_TYPE)];
  return k->is_v6 ? (t == 128 || t == 129) : (t == 8 || t == 0);
}

uint nf_parse_l4(__global const uchar* fr, nf_pkt* k) {
  uint off = k->l4_off;
  uint avail = k->l3_end - off;
  uint p = k->l4_proto;
  if (p == NF_PROTO_TCP) {
    if (avail < 20) return NF_PE_TRUNC_L4;
    uint doff = (fr[off + 12] >> 4) * 4u;
    if (doff < 20) return NF_PE_BAD_L4;
    if (doff > avail) return NF_PE_TRUNC_L4;
    nf_set1(k, NF_FIELD_TCP_FLAGS, fr[off + 13]);
  } else if (p == NF_PROTO_UDP) {
    if (avail < 8) return NF_PE_TRUNC_L4;
    uint ulen = nf_ld16(fr, off + 4);
    if (ulen < 8 || ulen > avail) return NF_PE_BAD_L4;
  } else if (p == NF_PROTO_SCTP) {
    if (avail < 12) return NF_PE_TRUNC_L4;
    k->sctp_chunk = avail >= 16 ? fr[off + 12] : 0xffu;
  } else if (p == NF_PROTO_ICMP || p == NF_PROTO_ICMPV6) {
    if (p == NF_PROTO_ICMP ? k->is_v6 : !k->is_v6) return 0;
    if (avail < 4) return NF_PE_TRUNC_L4;
    nf_set1(k, NF_FIELD_ICMP_TYPE, fr[off]);
    k->has_l4 = 1;
    if (nf_is_echo(k)) {
      if (avail < 8) return NF_PE_TRUNC_L4;
      k->icmp_id = nf_ld16(fr, off + 4);
    }
    return 0;
  } else {
    return 0;
  }
  nf_set1(k, NF_FIELD_L4_SRC, nf_ld16(fr, off));
  nf_set1(k, NF_FIELD_L4_DST, nf_ld16(fr, off + 2));
  k->has_l4 = 1;
  return 0;
}

uint nf_parse(__global const uchar* fr, uint len, nf_pkt* k) {
  for (uint i = 0; i < NF_FIELD_WORDS; i++) k->f[i] = 0; /* HLS: UNROLL */
  k->present = NF_METADATA_FIELDS;
  k->len = len;
  k->l3_off = k->l4_off = k->l3_end = k->l4_proto = 0;
  k->is_v6 = k->has_l4 = k->is_frag = k->icmp_id = 0;
  k->sctp_chunk = 0xffu;
  if (len < 14) return NF_PE_TRUNC_ETH;
  uint et = nf_ld16(fr, 12);
  uint off = 14;
  if (et == 0x8100u) {
    if (len < 18) return NF_PE_TRUNC_VLAN;
    et = nf_ld16(fr, 16);
    off = 18;
  }
  k->l3_off = off;
  uint e;
  if (et == 0x0800u) {
    e = nf_parse_ipv4(fr, k);
  } else if (et == 0x86ddu) {
    k->is_v6 = 1;
    e = nf_parse_ipv6(fr, k);
  } else {
    return NF_PE_NON_IP;
  }
  if (e != 0) return e;
  nf_set1(k, NF_FIELD_ETH_TYPE, et);
  nf_set1(k, NF_FIELD_IP_PROTO, k->l4_proto);
  if (k->l4_off == 0) return 0;
  return nf_parse_l4(fr, k);
}

uint nf_has_ports(const nf_pkt* k) {
  return k->has_l4 && (k->l4_proto == NF_PROTO_TCP || k->l4_proto == NF_PROTO_UDP ||
                       k->l4_proto == NF_PROTO_SCTP);
}
uint nf_l4_flags(const nf_pkt* k) {
  if (k->l4_proto == NF_PROTO_TCP && k->has_l4) return k->f0[NF_FIELD_OFF(NF_FIELD_TCP_FLAGS)];
  return k->l4_proto == NF_PROTO_SCTP ? k->sctp_chunk : 0;
}

/* ---- Counters: 64-bit as two words with 32-bit atomics ----------------------------------------
 */
void nf_cnt_add(__global uint* c, uint v) {
  uint old = atomic_add(c, v);
  if (old + v < old) atomic_inc(c + 1);
}

/* ---- Table lookup: exact unit, LPM unit, TCAM; the highest priority wins ----------------------
 */
typedef struct {
  int prio;
  uint slot;
  uint found;
  uint tie;
} nf_best;

void nf_offer(nf_best* b, int prio, uint slot) {
  if (!b->found || prio > b->prio) {
    b->prio = prio;
    b->slot = slot;
    b->found = 1;
  } else if (prio == b->prio) {
    b->tie = 1;
  }
}

void nf_lookup_exact(__global const uint* img, uint d, const uint* kv, uint present, nf_best* b) {
  uint buckets = img[d + NF_TD_HASH_BUCKETS];
  uint required = img[d + NF_TD_HASH_REQUIRED];
  if (buckets == 0 || (present & required) != required) return;
  uint wm = img[d + NF_TD_HASH_WORDMASK];
  uint hk[NF_MAX_KEY_WORDS];
  uint n = 0;
  for (uint w = 0; w < NF_MAX_KEY_WORDS; w++) { /* HLS: UNROLL */
    hk[w] = 0;
    if (wm & (1u << w)) hk[n++] = kv[w];
  }
  uint h = nf_hash(hk, n, (d - NF_HDR_TABLES) / NF_TABLE_DESC_WORDS) & (buckets - 1);
  uint base = img[d + NF_TD_HASH_BASE];
  uint probes = img[d + NF_TD_HASH_PROBES]; /* no valid slot lies deeper */
  for (uint p = 0; p < NF_HASH_MAX_PROBE; p++) {
    /* HLS: UNROLL (the probed buckets are read in parallel from a wide memory port) */
    if (p >= probes) break;
    uint bucket = (h + p) & (buckets - 1);
    for (uint s = 0; s < NF_HASH_BUCKET_SLOTS; s++) { /* HLS: UNROLL */
      uint at = base + (bucket * NF_HASH_BUCKET_SLOTS + s) * NF_HASH_SLOT_WORDS;
      if (!(img[at + NF_HASH_FLAGS] & NF_VALID)) continue;
      uint eq = 1;
      for (uint w = 0; w < NF_MAX_KEY_WORDS; w++) { /* HLS: UNROLL */
        if ((wm & (1u << w)) && img[at + NF_HASH_KEY + w] != kv[w]) {
          eq = 0;
          break; /* a sequential device stops reading; unrolled hardware compares all at once */
        }
      }
      if (eq) nf_offer(b, (int)img[at + NF_HASH_PRIORITY], img[at + NF_HASH_ACTION]);
    }
  }
}

void nf_lookup_lpm(__global const uint* img, uint d, const uint* kv, uint present, nf_best* b) {
  uint buckets = img[d + NF_TD_LPM_BUCKETS];
  if (buckets == 0) return;
  uint kd = img[d + NF_TD_KEYS + img[d + NF_TD_LPM_KEY]];
  uint fid = NF_KEY_FIELD(kd);
  if (!(present & (1u << fid))) return;
  uint nw = NF_KEY_NWORDS(kd);
  uint woff = NF_KEY_WOFF(kd);
  uint maxlen = 32 * nw;
  uint base = img[d + NF_TD_LPM_BASE];
  uint seed = 0x4c500000u | ((d - NF_HDR_TABLES) / NF_TABLE_DESC_WORDS);
  uint probes = img[d + NF_TD_LPM_PROBES]; /* no valid slot lies deeper */
  /* Longest prefix first. HLS: PIPELINE over lengths; an RTL design would test all lengths in
   * parallel (one hash probe per length) and priority-encode. */
  for (int len = 128; len >= 0; len--) {
    if ((uint)len > maxlen) continue;
    if (!(img[d + NF_TD_LPM_LENS + len / 32] & (1u << (len % 32)))) continue;
    uint hk[5];
    hk[0] = (uint)len;
    for (uint j = 0; j < 4; j++) { /* HLS: UNROLL */
      int bits = len - 32 * (int)j;
      uint m = bits >= 32 ? 0xffffffffu : (bits <= 0 ? 0u : ~(0xffffffffu >> bits));
      hk[1 + j] = j < nw ? (kv[woff + j] & m) : 0;
    }
    uint h = nf_hash(hk, 1 + nw, seed) & (buckets - 1);
    uint hit = 0;
    for (uint p = 0; p < NF_HASH_MAX_PROBE; p++) { /* HLS: UNROLL */
      if (p >= probes) break;
      uint bucket = (h + p) & (buckets - 1);
      for (uint s = 0; s < NF_HASH_BUCKET_SLOTS; s++) { /* HLS: UNROLL */
        uint at = base + (bucket * NF_HASH_BUCKET_SLOTS + s) * NF_LPM_SLOT_WORDS;
        uint fl = img[at + NF_LPM_FLAGS];
        if (!(fl & NF_VALID) || (fl & 0xffu) != (uint)len) continue;
        uint eq = 1;
        for (uint j = 0; j < 4; j++) { /* HLS: UNROLL */
          if (j >= nw) break;
          if (img[at + NF_LPM_VALUE + j] != hk[1 + j]) {
            eq = 0;
            break;
          }
        }
        if (eq) {
          nf_offer(b, (int)img[at + NF_LPM_PRIORITY], img[at + NF_LPM_ACTION]);
          hit = 1;
        }
      }
    }
    if (hit) break;
  }
}

void nf_lookup_tcam(__global const uint* img, uint d, const uint* kv, uint present, nf_best* b) {
  uint used = img[d + NF_TD_TCAM_USED];
  uint base = img[d + NF_TD_TCAM_BASE];
  uint nkw = img[d + NF_TD_KEY_WORDS];
  uint range_words = 0;
  uint range_field[NF_MAX_KEY_WORDS]; /* field bit of each range word */
  for (uint w = 0; w < NF_MAX_KEY_WORDS; w++) range_field[w] = 0;
  for (uint k = 0; k < NF_MAX_KEYS; k++) { /* HLS: UNROLL */
    if (k >= img[d + NF_TD_KEY_COUNT]) break;
    uint kd = img[d + NF_TD_KEYS + k];
    if (NF_KEY_KIND(kd) == NF_KIND_RANGE) {
      range_words |= 1u << NF_KEY_WOFF(kd);
      range_field[NF_KEY_WOFF(kd)] = 1u << NF_KEY_FIELD(kd);
    }
  }
  /* A TCAM compares every row at once; here rows are scanned. HLS: PIPELINE II=1 with the row
   * memory ARRAY_PARTITION'ed by key word so one row is compared per cycle. */
  for (uint r = 0; r < NF_MAX_TCAM_ROWS; r++) {
    if (r >= used) break;
    uint at = base + r * NF_TCAM_ROW_WORDS;
    if (!(img[at + NF_TCAM_FLAGS] & NF_VALID)) continue;
    uint req = img[at + NF_TCAM_REQUIRED];
    if ((present & req) != req) continue;
    uint ok = 1;
    for (uint w = 0; w < NF_MAX_KEY_WORDS; w++) { /* HLS: UNROLL */
      if (w >= nkw) break;
      uint v = img[at + NF_TCAM_VALUE + w];
      uint m = img[at + NF_TCAM_MASK + w];
      if (range_words & (1u << w)) {
        /* A range key the entry does not mention (its field not in `req`) is a wildcard. */
        if ((req & range_field[w]) && (kv[w] < v || kv[w] > m)) ok = 0;
      } else if ((kv[w] & m) != v) {
        ok = 0;
      }
      if (!ok) break; /* the row cannot match: the rest of its words need not be read */
    }
    if (ok) nf_offer(b, (int)img[at + NF_TCAM_PRIORITY], img[at + NF_TCAM_ACTION]);
  }
}

/* Builds the table's key vector from the packet fields and returns the best entry. */
nf_best nf_lookup(__global const uint* img, uint t, const nf_pkt* k) {
  uint d = NF_HDR_TABLES + t * NF_TABLE_DESC_WORDS;
  uint kv[NF_MAX_KEY_WORDS];
  for (uint w = 0; w < NF_MAX_KEY_WORDS; w++) kv[w] = 0; /* HLS: ARRAY_PARTITION complete */
  for (uint i = 0; i < NF_MAX_KEYS; i++) {
    if (i >= img[d + NF_TD_KEY_COUNT]) break;
    uint kd = img[d + NF_TD_KEYS + i];
    uint fid = NF_KEY_FIELD(kd);
    for (uint j = 0; j < 4; j++) { /* HLS: UNROLL */
      if (j < NF_KEY_NWORDS(kd)) kv[NF_KEY_WOFF(kd) + j] = k->f[NF_FIELD_OFF(fid) + j];
    }
  }
  nf_best b;
  b.prio = 0;
  b.slot = NF_NO_SLOT;
  b.found = 0;
  b.tie = 0;
  nf_lookup_exact(img, d, kv, k->present, &b);
  nf_lookup_lpm(img, d, kv, k->present, &b);
  nf_lookup_tcam(img, d, kv, k->present, &b);
  return b;
}

/* ---- Conntrack ------------------------------------------------------------------------------ */
/* The tuple of the packet as its fields are now: meta, src[4], dst[4], ports (NF_CT_* order). */
void nf_tuple_of(const uint* f, const nf_pkt* k, uint zone, uint* t) {
  t[0] = zone << 16 | k->l4_proto << 8 | k->is_v6;
  for (uint j = 0; j < 4; j++) { /* HLS: UNROLL */
    if (k->is_v6) {
      t[1 + j] = f[NF_FIELD_OFF(NF_FIELD_IPV6_SRC) + j];
      t[5 + j] = f[NF_FIELD_OFF(NF_FIELD_IPV6_DST) + j];
    } else {
      t[1 + j] = j == 3 ? f[NF_FIELD_OFF(NF_FIELD_IPV4_SRC)] : 0;
      t[5 + j] = j == 3 ? f[NF_FIELD_OFF(NF_FIELD_IPV4_DST)] : 0;
    }
  }
  if (nf_has_ports(k)) {
    t[9] = f[NF_FIELD_OFF(NF_FIELD_L4_SRC)] << 16 | f[NF_FIELD_OFF(NF_FIELD_L4_DST)];
  } else if (nf_is_echo(k)) {
    t[9] = k->icmp_id << 16 | k->icmp_id;
  } else {
    t[9] = 0;
  }
}
void nf_tuple(const nf_pkt* k, uint zone, uint* t) { nf_tuple_of(k->f, k, zone, t); }

void nf_reverse(const uint* t, uint* r) {
  r[0] = t[0];
  for (uint j = 0; j < 4; j++) { /* HLS: UNROLL */
    r[1 + j] = t[5 + j];
    r[5 + j] = t[1 + j];
  }
  r[9] = (t[9] << 16) | (t[9] >> 16);
}

/* Returns the word offset of the slot holding tuple `t`, or NF_NO_SLOT. */
uint nf_ct_find(__global const uint* ct, const uint* t) {
  uint buckets = ct[NF_CT_HDR_BUCKETS];
  if (buckets == 0) return NF_NO_SLOT;
  uint h = nf_hash(t, NF_CT_KEY_WORDS, NF_CT_SEED) & (buckets - 1);
  for (uint p = 0; p < NF_HASH_MAX_PROBE; p++) { /* HLS: UNROLL */
    uint bucket = (h + p) & (buckets - 1);
    for (uint s = 0; s < NF_HASH_BUCKET_SLOTS; s++) { /* HLS: UNROLL */
      uint at = NF_CT_HDR_WORDS + (bucket * NF_HASH_BUCKET_SLOTS + s) * NF_CT_SLOT_WORDS;
      if (!(ct[at + NF_CT_FLAGS] & NF_VALID)) continue;
      uint eq = 1;
      for (uint w = 0; w < NF_CT_KEY_WORDS; w++) { /* HLS: UNROLL */
        if (ct[at + 1 + w] != t[w]) {
          eq = 0;
          break;
        }
      }
      if (eq) return at;
    }
  }
  return NF_NO_SLOT;
}

uint nf_tcp_impossible(uint f) {
  uint syn = f & NF_TCP_SYN;
  return (syn && (f & (NF_TCP_FIN | NF_TCP_RST))) ||
         (f & (NF_TCP_SYN | NF_TCP_FIN | NF_TCP_RST | NF_TCP_ACK)) == 0;
}
uint nf_tcp_can_start(uint f) {
  if (nf_tcp_impossible(f) || (f & (NF_TCP_FIN | NF_TCP_RST))) return 0;
  return !((f & NF_TCP_SYN) && (f & NF_TCP_ACK));
}

/* TCP state step (mirrors nicflow::sim's table): returns the new state word, or 0xffffffff when
 * the segment is invalid for the state. State word: state bits 0-3, fin_seen bits 4-5. */
uint nf_tcp_step(uint word, uint reply, uint f) {
  uint s = word & 0xfu;
  uint fin = (word >> 4) & 3u;
  uint rest = word & ~0x3fu;
  if (nf_tcp_impossible(f)) return 0xffffffffu;
  if (f & NF_TCP_RST) return rest | fin << 4 | NF_CT_TCP_CLOSE;
  if ((f & NF_TCP_SYN) && !(f & NF_TCP_ACK)) {
    if (reply) return rest | fin << 4 | (s == NF_CT_TCP_SYN_SENT ? NF_CT_TCP_SYN_RECV : s);
    if (s == NF_CT_TCP_TIME_WAIT || s == NF_CT_TCP_CLOSE) return rest | NF_CT_TCP_SYN_SENT;
    return word;
  }
  if (f & NF_TCP_SYN) {
    if (!reply) return s != NF_CT_TCP_SYN_SENT ? word : 0xffffffffu;
    return rest | fin << 4 | (s == NF_CT_TCP_SYN_SENT ? NF_CT_TCP_SYN_RECV : s);
  }
  uint dir_bit = reply ? 2u : 1u;
  if (f & NF_TCP_FIN) {
    if (s == NF_CT_TCP_SYN_SENT) return 0xffffffffu;
    fin |= dir_bit;
    return rest | fin << 4 | (fin == 3 ? NF_CT_TCP_LAST_ACK : NF_CT_TCP_FIN_WAIT);
  }
  uint n = s;
  if (s == NF_CT_TCP_SYN_RECV)
    n = reply ? s : NF_CT_TCP_ESTABLISHED;
  else if (s == NF_CT_TCP_LAST_ACK)
    n = NF_CT_TCP_TIME_WAIT;
  else if (s == NF_CT_TCP_FIN_WAIT)
    n = (fin & dir_bit) ? s : NF_CT_TCP_CLOSE_WAIT;
  return rest | fin << 4 | n;
}

/* Advances the connection's protocol state; 0 when the packet is invalid for it. */
uint nf_ct_track(__global uint* ct, uint slot, const nf_pkt* k, uint now_s) {
  uint reply = ct[slot + NF_CT_FLAGS] & 1u;
  uint conn = ct[slot + NF_CT_CONN];
  if (conn >= ct[NF_CT_HDR_CONNS]) return 1;
  __global uint* st = ct + ct[NF_CT_HDR_STATE_BASE] + conn * NF_CTS_WORDS;
  uint fl = nf_l4_flags(k);
  /* Compare-and-swap with a bounded retry count (packets of one connection in one batch). */
  for (uint attempt = 0; attempt < 8; attempt++) {
    uint old = st[NF_CTS_STATE];
    uint nw = old;
    if (k->l4_proto == NF_PROTO_TCP) {
      nw = nf_tcp_step(old, reply, fl);
      if (nw == 0xffffffffu) return 0;
    } else if (k->l4_proto == NF_PROTO_SCTP) {
      uint closing = (old >> 7) & 3u;
      if (fl == 6u || fl == 14u)
        closing = 2; /* ABORT, SHUTDOWN COMPLETE */
      else if (fl == 7u && closing == 0)
        closing = 1; /* SHUTDOWN */
      nw = (old & ~(3u << 7)) | closing << 7;
    }
    if (reply) nw |= 1u << 6;
    if (atomic_cmpxchg(st + NF_CTS_STATE, old, nw) == old) break;
  }
  st[NF_CTS_LAST_S] = now_s;
  return 1;
}

/* Rewrites the packet's addresses/ports to the slot's "leaves as" tuple. */
void nf_ct_nat(__global const uint* ct, uint slot, nf_pkt* k) {
  for (uint j = 0; j < 4; j++) { /* HLS: UNROLL */
    if (k->is_v6) {
      k->f[NF_FIELD_OFF(NF_FIELD_IPV6_SRC) + j] = ct[slot + NF_CT_NEW_SRC + j];
      k->f[NF_FIELD_OFF(NF_FIELD_IPV6_DST) + j] = ct[slot + NF_CT_NEW_DST + j];
    }
  }
  if (!k->is_v6) {
    k->f[NF_FIELD_OFF(NF_FIELD_IPV4_SRC)] = ct[slot + NF_CT_NEW_SRC + 3];
    k->f[NF_FIELD_OFF(NF_FIELD_IPV4_DST)] = ct[slot + NF_CT_NEW_DST + 3];
  }
  if (nf_has_ports(k)) {
    uint ports = ct[slot + NF_CT_NEW_PORTS];
    k->f[NF_FIELD_OFF(NF_FIELD_L4_SRC)] = ports >> 16;
    k->f[NF_FIELD_OFF(NF_FIELD_L4_DST)] = ports & 0xffffu;
  }
}

/* ---- Select groups -------------------------------------------------------------------------- */
ulong nf_flow_hash(__global const uint* img, uint gd, const nf_pkt* k) {
  ulong h = 0x243f6a8885a308d3UL;
  uint n = img[gd + NF_GD_HASH_N];
  for (uint i = 0; i < NF_MAX_HASH_FIELDS; i++) {
    if (i >= n) break;
    uint fid = (img[gd + NF_GD_HASH_F + i / 4] >> (8 * (i % 4))) & 0xffu;
    if (fid >= NF_FIELD_COUNT) continue;
    uint o = NF_FIELD_OFF(fid);
    ulong hi = 0, lo;
    if (NF_FIELD_NWORDS(fid) == 4) {
      hi = (ulong)k->f[o] << 32 | k->f[o + 1];
      lo = (ulong)k->f[o + 2] << 32 | k->f[o + 3];
    } else {
      lo = k->f[o];
    }
    h = nf_mix(h ^ hi) + lo;
  }
  return nf_mix(h);
}

/* Picks a bucket (index into the group's bucket table) or NF_NO_SLOT when the group is empty. */
uint nf_pick_bucket(__global const uint* img, __global uint* ct, uint gi, const nf_pkt* k,
                    ulong now_ns, __global uint* res) {
  uint gd = img[NF_HDR_GROUP_BASE] + gi * NF_GROUP_DESC_WORDS;
  uint size = img[gd + NF_GD_SIZE];
  uint region = img[NF_HDR_MAGLEV_BASE] + img[gd + NF_GD_BASE];
  uint nb = img[gd + NF_GD_NBUCKETS];
  uint aff_s = img[gd + NF_GD_AFFINITY_S];
  uint key[NF_AFF_KEY_WORDS];
  uint aff_at = NF_NO_SLOT;
  if (aff_s != 0 && ct[NF_CT_HDR_AFF_BUCKETS] != 0) {
    uint v6 = (k->present >> NF_FIELD_IPV6_SRC) & 1u;
    key[0] = gi;
    for (uint j = 0; j < 4; j++) {
      key[1 + j] = v6 ? k->f[NF_FIELD_OFF(NF_FIELD_IPV6_SRC) + j]
                      : (j == 3 ? k->f[NF_FIELD_OFF(NF_FIELD_IPV4_SRC)] : 0);
    }
    uint buckets = ct[NF_CT_HDR_AFF_BUCKETS];
    uint h = nf_hash(key, NF_AFF_KEY_WORDS, NF_AFF_SEED) & (buckets - 1);
    for (uint p = 0; p < NF_HASH_MAX_PROBE; p++) {      /* HLS: UNROLL */
      for (uint s = 0; s < NF_HASH_BUCKET_SLOTS; s++) { /* HLS: UNROLL */
        uint at = ct[NF_CT_HDR_AFF_BASE] +
                  (((h + p) & (buckets - 1)) * NF_HASH_BUCKET_SLOTS + s) * NF_AFF_SLOT_WORDS;
        if (!(ct[at + NF_AFF_FLAGS] & NF_VALID)) continue;
        uint eq = 1;
        for (uint w = 0; w < NF_AFF_KEY_WORDS; w++) {
          if (ct[at + 1 + w] != key[w]) eq = 0;
        }
        if (eq && aff_at == NF_NO_SLOT) aff_at = at;
      }
    }
    if (aff_at != NF_NO_SLOT) {
      ulong last = (ulong)ct[aff_at + NF_AFF_LAST_HI] << 32 | ct[aff_at + NF_AFF_LAST_LO];
      if (last + (ulong)aff_s * 1000000000UL > now_ns) {
        for (uint b = 0; b < NF_MAX_BUCKETS; b++) { /* HLS: PIPELINE (label search) */
          if (b >= nb) break;
          uint bk = region + b * NF_BUCKET_WORDS;
          if (img[bk + NF_BK_LABEL_LO] == ct[aff_at + NF_AFF_LABEL_LO] &&
              img[bk + NF_BK_LABEL_HI] == ct[aff_at + NF_AFF_LABEL_HI] &&
              img[bk + NF_BK_WEIGHT] > 0) {
            ct[aff_at + NF_AFF_LAST_LO] = (uint)now_ns;
            ct[aff_at + NF_AFF_LAST_HI] = (uint)(now_ns >> 32);
            return b;
          }
        }
      }
    }
  }
  if (size == 0) return NF_NO_SLOT;
  ulong h = nf_flow_hash(img, gd, k);
  /* Multiply-shift range reduction ((h * size) >> 64), as the simulator's Maglev Pick(): one
   * 64x32 multiplier instead of a divider. */
  uint b = img[region + nb * NF_BUCKET_WORDS + (uint)mul_hi(h, (ulong)size)];
  if (aff_s != 0) {
    res[NF_R_FLAGS] |= NF_RF_AFFINITY_NEW;
    res[NF_R_AFF_GROUP] = gi;
    res[NF_R_AFF_BUCKET] = b;
    for (uint j = 0; j < 4; j++) res[NF_R_AFF_CLIENT + j] = key[1 + j];
  }
  return b;
}

/* ---- Actions -------------------------------------------------------------------------------- */
#define NF_FLOW_NEXT 0
#define NF_FLOW_GOTO 1
#define NF_FLOW_DONE 2

typedef struct {
  uint flow;    /* NF_FLOW_* */
  uint table;   /* goto target */
  uint verdict; /* when done */
  uint port;
} nf_step;

typedef struct {
  uint have_orig;
  uint orig[NF_CT_KEY_WORDS];
  uint orig_missed; /* the lookup that set `orig` found no slot (the table is fixed in a batch) */
  uint committed;
} nf_ctx;

void nf_set_addr(nf_pkt* k, uint src, __global const uint* a) {
  uint fid = k->is_v6 ? (src ? NF_FIELD_IPV6_SRC : NF_FIELD_IPV6_DST)
                      : (src ? NF_FIELD_IPV4_SRC : NF_FIELD_IPV4_DST);
  if (k->is_v6) {
    for (uint j = 0; j < 4; j++) k->f[NF_FIELD_OFF(fid) + j] = a[j];
  } else {
    k->f[NF_FIELD_OFF(fid)] = a[3];
  }
  k->present |= 1u << fid;
}

void nf_do_set_field(nf_pkt* k, __global const uint* a) {
  uint fid = a[1];
  if (fid >= NF_FIELD_COUNT || !(k->present & (1u << fid))) return;
  uint o = NF_FIELD_OFF(fid);
  if (NF_FIELD_NWORDS(fid) == 4) {
    for (uint j = 0; j < 4; j++) k->f[o + j] = (k->f[o + j] & ~a[6 + j]) | a[2 + j];
  } else {
    k->f[o] = (k->f[o] & ~a[9]) | a[5];
  }
}

/* SNAT: new source address; the source port is kept when it is in range and the translated
 * tuple's reply is unused, otherwise the host allocates one (NF_RF_SNAT_ALLOC). */
void nf_do_snat(nf_pkt* k, __global const uint* a, __global const uint* ct, __global uint* res) {
  uint t[NF_CT_KEY_WORDS];
  nf_tuple(k, 0, t);
  for (uint j = 0; j < 4; j++) {
    res[NF_R_SNAT_BEFORE_SRC + j] = t[1 + j];
    res[NF_R_SNAT_BEFORE_DST + j] = t[5 + j];
  }
  res[NF_R_SNAT_ORIG_PORTS] = t[9];
  res[NF_R_SNAT_RANGE] = a[6];
  for (uint j = 0; j < 4; j++) res[NF_R_SNAT_ADDR + j] = a[2 + j];
  res[NF_R_FLAGS] |= NF_RF_SNAT;
  nf_set_addr(k, 1, a + 2);
  if (!nf_has_ports(k)) return;
  uint lo = a[6] >> 16;
  uint hi = a[6] & 0xffffu;
  if (hi < lo) hi = lo;
  uint keep = t[9] >> 16;
  if (keep >= lo && keep <= hi) {
    uint x[NF_CT_KEY_WORDS], r[NF_CT_KEY_WORDS];
    nf_tuple(k, 0, x);
    nf_reverse(x, r);
    if (nf_ct_find(ct, r) == NF_NO_SLOT) return;
  }
  res[NF_R_FLAGS] |= NF_RF_SNAT_ALLOC;
}

void nf_ct_lookup(nf_pkt* k, nf_ctx* c, uint zone, __global uint* ct, uint now_s,
                  __global uint* res, __global uint* dev) {
  uint t[NF_CT_KEY_WORDS];
  nf_tuple(k, zone, t);
  if (!c->have_orig) {
    for (uint w = 0; w < NF_CT_KEY_WORDS; w++) c->orig[w] = t[w];
    c->have_orig = 1;
    /* Reported for every packet conntrack looked at: the host re-runs a packet that missed a
     * connection an earlier packet of the same batch committed (see fpga_pipeline.h). */
    res[NF_R_FLAGS] |= NF_RF_CT_LOOKUP;
    res[NF_R_ORIG_META] = t[0];
    for (uint j = 0; j < 4; j++) {
      res[NF_R_ORIG_SRC + j] = t[1 + j];
      res[NF_R_ORIG_DST + j] = t[5 + j];
    }
    res[NF_R_ORIG_PORTS] = t[9];
  }
  uint state = NF_CT_TRK;
  uint slot = nf_ct_find(ct, t);
  if (slot == NF_NO_SLOT && c->have_orig && !c->orig_missed) {
    uint same = 1;
    for (uint w = 0; w < NF_CT_KEY_WORDS; w++) same &= c->orig[w] == t[w] ? 1u : 0u;
    c->orig_missed = same;
  }
  if (slot != NF_NO_SLOT) {
    if (nf_ct_track(ct, slot, k, now_s)) {
      state |= NF_CT_EST | ((ct[slot + NF_CT_FLAGS] & 1u) ? NF_CT_RPL : 0u);
      nf_ct_nat(ct, slot, k);
      res[NF_R_FLAGS] |= NF_RF_CT_HIT;
      nf_cnt_add(dev + 2 * NF_DEV_CT_HITS, 1);
    } else {
      state |= NF_CT_INV;
    }
  } else if (k->l4_proto == NF_PROTO_TCP && !nf_tcp_can_start(nf_l4_flags(k))) {
    state |= NF_CT_INV;
  } else {
    state |= NF_CT_NEW;
  }
  k->f[NF_FIELD_OFF(NF_FIELD_CT_STATE)] = state;
}

/* CtCommit: nothing to do for a known connection; a clash drops (as Linux and the simulator do);
 * a new connection is handed to the host (NF_RF_COMMIT) with its two tuples. */
uint nf_ct_commit(nf_pkt* k, nf_ctx* c, uint zone, __global const uint* ct, __global uint* res) {
  uint orig[NF_CT_KEY_WORDS], x[NF_CT_KEY_WORDS], r[NF_CT_KEY_WORDS];
  if (c->have_orig) {
    for (uint w = 0; w < NF_CT_KEY_WORDS; w++) orig[w] = c->orig[w];
  } else {
    nf_tuple_of(k->f0, k, zone, orig);
  }
  orig[0] = (orig[0] & 0xffffu) | zone << 16;
  if (c->committed) return 1;
  /* The host only writes the table between batches: a tuple conntrack just missed is still not
   * there, and a new connection is not looked up a second time. */
  if (!(c->orig_missed && orig[0] == c->orig[0]) && nf_ct_find(ct, orig) != NF_NO_SLOT) return 1;
  nf_tuple(k, zone, x);
  nf_reverse(x, r);
  if (!(res[NF_R_FLAGS] & NF_RF_SNAT_ALLOC) && nf_ct_find(ct, r) != NF_NO_SLOT) {
    res[NF_R_FLAGS] |= NF_RF_CT_CLASH;
    return 0;
  }
  if (orig[0] >> 8 == (zone << 8 | NF_PROTO_TCP) && !nf_tcp_can_start(nf_l4_flags(k))) return 1;
  c->committed = 1;
  res[NF_R_FLAGS] |= NF_RF_COMMIT;
  res[NF_R_COMMIT_ZONE] = zone;
  res[NF_R_ORIG_META] = orig[0];
  for (uint j = 0; j < 4; j++) {
    res[NF_R_ORIG_SRC + j] = orig[1 + j];
    res[NF_R_ORIG_DST + j] = orig[5 + j];
    res[NF_R_XLATE_SRC + j] = x[1 + j];
    res[NF_R_XLATE_DST + j] = x[5 + j];
  }
  res[NF_R_ORIG_PORTS] = orig[9];
  res[NF_R_XLATE_PORTS] = x[9];
  return 1;
}

/* Runs one action list (and, in place of a GROUP, the chosen bucket's list). */
nf_step nf_run_actions(__global const uint* img, uint slot, nf_pkt* k, nf_ctx* c, __global uint* ct,
                       ulong now_ns, __global uint* res, __global uint* dev) {
  nf_step st;
  st.flow = NF_FLOW_NEXT;
  st.table = 0;
  st.verdict = NF_VERDICT_DROP;
  st.port = NF_NO_SLOT;
  uint abase = img[NF_HDR_ACTION_BASE];
  uint pc = abase + slot * NF_ACTION_SLOT_WORDS;
  uint end = pc + NF_ACTION_SLOT_WORDS;
  uint ret_pc = 0, ret_end = 0, in_group = 0;
  /* Each record is at least one word: two slots' worth of steps bounds the walk. */
  for (uint n = 0; n < 2 * NF_ACTION_SLOT_WORDS; n++) {
    uint w = pc < end ? img[pc] : NF_OP_END;
    uint op = NF_OP_CODE(w);
    if (op == NF_OP_END || NF_OP_LEN(w) == 0) {
      if (!in_group) break;
      pc = ret_pc;
      end = ret_end;
      in_group = 0;
      continue;
    }
    __global const uint* a = img + pc;
    pc += NF_OP_LEN(w);
    if (op == NF_OP_DROP || op == NF_OP_REJECT || op == NF_OP_PUNT || op == NF_OP_OUTPUT) {
      st.flow = NF_FLOW_DONE;
      st.verdict = op == NF_OP_DROP     ? NF_VERDICT_DROP
                   : op == NF_OP_REJECT ? NF_VERDICT_REJECT
                   : op == NF_OP_PUNT   ? NF_VERDICT_PUNT
                                        : NF_VERDICT_OUTPUT;
      if (op == NF_OP_OUTPUT) st.port = a[1];
      return st;
    } else if (op == NF_OP_GOTO) {
      st.flow = NF_FLOW_GOTO;
      st.table = a[1];
      return st;
    } else if (op == NF_OP_SET_FIELD) {
      nf_do_set_field(k, a);
    } else if (op == NF_OP_DNAT) {
      if ((a[1] & 1u) != k->is_v6) {
        res[NF_R_FLAGS] |= NF_RF_BAD_REWRITE;
        st.flow = NF_FLOW_DONE;
        return st;
      }
      nf_set_addr(k, 0, a + 2);
      if ((a[1] & 2u) && nf_has_ports(k)) nf_set1(k, NF_FIELD_L4_DST, a[6]);
      res[NF_R_FLAGS] |= NF_RF_DNAT;
    } else if (op == NF_OP_SNAT) {
      if ((a[1] & 1u) != k->is_v6) {
        res[NF_R_FLAGS] |= NF_RF_BAD_REWRITE;
        st.flow = NF_FLOW_DONE;
        return st;
      }
      nf_do_snat(k, a, ct, res);
    } else if (op == NF_OP_GROUP) {
      if (in_group) continue; /* the encoder never nests groups */
      uint b = nf_pick_bucket(img, ct, a[1], k, now_ns, res);
      if (b == NF_NO_SLOT) {
        res[NF_R_FLAGS] |= NF_RF_NO_BUCKET;
        st.flow = NF_FLOW_DONE;
        return st;
      }
      res[NF_R_GROUP] = a[1];
      res[NF_R_BUCKET] = b;
      uint gd = img[NF_HDR_GROUP_BASE] + a[1] * NF_GROUP_DESC_WORDS;
      uint bk = img[NF_HDR_MAGLEV_BASE] + img[gd + NF_GD_BASE] + b * NF_BUCKET_WORDS;
      ret_pc = pc;
      ret_end = end;
      in_group = 1;
      pc = abase + img[bk + NF_BK_SLOT] * NF_ACTION_SLOT_WORDS;
      end = pc + NF_ACTION_SLOT_WORDS;
    } else if (op == NF_OP_CT_LOOKUP) {
      nf_ct_lookup(k, c, a[1], ct, (uint)(now_ns / 1000000000UL), res, dev);
    } else if (op == NF_OP_CT_COMMIT) {
      if (!nf_ct_commit(k, c, a[1], ct, res)) {
        st.flow = NF_FLOW_DONE;
        return st;
      }
    }
  }
  return st;
}

/* ---- Rewrite with incremental checksums (RFC 1624) ---------------------------------------------
 */
uint nf_fold(uint sum) {
  for (uint i = 0; i < 3; i++) sum = (sum & 0xffffu) + (sum >> 16); /* HLS: UNROLL */
  return (~sum) & 0xffffu;
}
uint nf_go16(__global const uchar* p, uint off) { return nf_ld16(p, off); }
void nf_st16(__global uchar* p, uint off, uint v) {
  p[off] = (uchar)(v >> 8);
  p[off + 1] = (uchar)v;
}

uint nf_l4_csum_off(const nf_pkt* k) {
  if (!k->has_l4) return 0;
  if (k->l4_proto == NF_PROTO_TCP) return k->l4_off + 16;
  if (k->l4_proto == NF_PROTO_UDP) return k->l4_off + 6;
  if (k->l4_proto == NF_PROTO_ICMP || k->l4_proto == NF_PROTO_ICMPV6) return k->l4_off + 2;
  return 0;
}

/* Replaces n bytes (2, 4 or 16) at `at` with `to`, adjusting the IPv4 header checksum (when the
 * bytes are in it) and the L4 checksum (when it covers them). */
void nf_replace(__global uchar* fr, const nf_pkt* k, uint at, const uchar* to, uint n, uint in_ip,
                uint l4_covers) {
  uint sum_ip = 0, sum_l4 = 0;
  for (uint i = 0; i < 16; i += 2) { /* HLS: UNROLL */
    if (i >= n) break;
    uint o = nf_go16(fr, at + i);
    uint nw = ((uint)to[i] << 8) | to[i + 1];
    sum_ip += (~o & 0xffffu) + nw;
    sum_l4 += (~o & 0xffffu) + nw;
  }
  if (in_ip && !k->is_v6) {
    uint c = k->l3_off + 10;
    nf_st16(fr, c, nf_fold((~nf_go16(fr, c) & 0xffffu) + sum_ip));
  }
  uint co = nf_l4_csum_off(k);
  if (l4_covers && co != 0) {
    uint have = nf_go16(fr, co);
    uint udp = k->l4_proto == NF_PROTO_UDP;
    if (!(udp && !k->is_v6 && have == 0)) {
      uint now = nf_fold((~have & 0xffffu) + sum_l4);
      if (udp && now == 0) now = 0xffffu;
      nf_st16(fr, co, now);
    }
  }
  for (uint i = 0; i < 16; i++) { /* HLS: UNROLL */
    if (i >= n) break;
    fr[at + i] = to[i];
  }
}

void nf_sctp_crc(__global uchar* fr, const nf_pkt* k) {
  uint off = k->l4_off;
  uint crc = 0xffffffffu;
  /* HLS: PIPELINE II=1 -- one byte per cycle; a wide CRC unit would take 8 bytes per cycle. */
  for (uint i = 0; i < NF_MAX_FRAME_BYTES; i++) {
    if (off + i >= k->l3_end) break;
    uint b = (i >= 8 && i < 12) ? 0u : fr[off + i];
    crc = nf_crc_table[(crc ^ b) & 0xffu] ^ (crc >> 8);
  }
  crc = ~crc;
  for (uint i = 0; i < 4; i++) fr[off + 8 + i] = (uchar)(crc >> (8 * i)); /* little-endian */
}

void nf_words_to_bytes(const uint* w, uint n, uchar* out) {
  for (uint i = 0; i < 4; i++) {
    if (i >= n) break;
    out[4 * i] = (uchar)(w[i] >> 24);
    out[4 * i + 1] = (uchar)(w[i] >> 16);
    out[4 * i + 2] = (uchar)(w[i] >> 8);
    out[4 * i + 3] = (uchar)w[i];
  }
}

/* Writes the NAT the fields accumulated into the frame (mirrors sim RewriteAddressesAndPorts). */
void nf_rewrite(__global uchar* fr, const nf_pkt* k) {
  uint v6 = k->is_v6;
  uint alen = v6 ? 16 : 4;
  uint nw = v6 ? 4 : 1;
  uint src_at = k->l3_off + (v6 ? 8u : 12u);
  uint l4_covers_ips = k->l4_proto != NF_PROTO_ICMP && !(k->is_frag && k->l4_off == 0);
  uint changed = 0;
  uchar buf[16];
  for (uint i = 0; i < 2; i++) {
    uint fid = v6 ? (i == 0 ? NF_FIELD_IPV6_SRC : NF_FIELD_IPV6_DST)
                  : (i == 0 ? NF_FIELD_IPV4_SRC : NF_FIELD_IPV4_DST);
    uint o = NF_FIELD_OFF(fid);
    uint same = 1;
    uint w[4];
    for (uint j = 0; j < 4; j++) {
      w[j] = j < nw ? k->f[o + j] : 0;
      if (j < nw && k->f[o + j] != k->f0[o + j]) same = 0;
    }
    if (same) continue;
    nf_words_to_bytes(w, nw, buf);
    nf_replace(fr, k, src_at + i * alen, buf, alen, 1, l4_covers_ips);
    changed = 1;
  }
  if (nf_has_ports(k)) {
    for (uint i = 0; i < 2; i++) {
      uint o = NF_FIELD_OFF(i == 0 ? NF_FIELD_L4_SRC : NF_FIELD_L4_DST);
      if (k->f[o] == k->f0[o]) continue;
      buf[0] = (uchar)(k->f[o] >> 8);
      buf[1] = (uchar)k->f[o];
      nf_replace(fr, k, k->l4_off + 2 * i, buf, 2, 0, 1);
      changed = 1;
    }
  }
  if (changed && k->l4_proto == NF_PROTO_SCTP && k->has_l4 && !k->is_frag) nf_sctp_crc(fr, k);
}

/* ---- The kernel ------------------------------------------------------------------------------ */
__kernel void nf_match_action(__global const uint* restrict img0,
                              __global const uint* restrict img1,
                              __global const uint* restrict ctrl, __global uint* ct,
                              __global uint* counters, __global const uchar* restrict frames_in,
                              __global uchar* restrict frames_out,
                              __global const uint* restrict desc, __global uint* restrict results,
                              uint count, uint now_lo, uint now_hi) {
  /* HLS: one work-item per packet maps to a pipelined loop over the batch (PIPELINE II=1 on the
   * outer loop once the inner loops above are unrolled/pipelined). */
  uint i = get_global_id(0);
  if (i >= count) return;
  __global const uint* img = (ctrl[0] & 1u) ? img1 : img0;
  ulong now_ns = (ulong)now_hi << 32 | now_lo;
  uint off = desc[i * NF_PKT_DESC_WORDS];
  uint len = desc[i * NF_PKT_DESC_WORDS + 1];
  __global const uchar* in = frames_in + off;
  __global uchar* out = frames_out + off;
  __global uint* res = results + i * NF_R_WORDS;
  uint slots = img[NF_HDR_ACTION_SLOTS];
  __global uint* tcnt = counters + NF_CNT_TABLE_BASE(slots);
  __global uint* dev = counters + NF_CNT_DEVICE_BASE(slots);
  for (uint w = 0; w < NF_R_WORDS; w++) res[w] = 0; /* HLS: UNROLL */
  res[NF_R_GROUP] = NF_NO_SLOT;
  res[NF_R_BUCKET] = NF_NO_SLOT;
  if (len > NF_MAX_FRAME_BYTES) len = 0;          /* the host never submits these */
  for (uint b = 0; b < NF_MAX_FRAME_BYTES; b++) { /* HLS: PIPELINE (burst copy) */
    if (b >= len) break;
    out[b] = in[b];
  }
  nf_cnt_add(dev + 2 * NF_DEV_RX, 1);

  nf_pkt k;
  uint pe = nf_parse(in, len, &k);
  if (pe != 0) {
    res[NF_R_VERDICT] = NF_VERDICT_PARSE_ERROR;
    res[NF_R_PARSE_ERROR] = pe;
    nf_cnt_add(dev + 2 * NF_DEV_PARSE_ERRORS, 1);
    return;
  }
  k.f[NF_FIELD_OFF(NF_FIELD_IN_PORT)] = desc[i * NF_PKT_DESC_WORDS + 2];
  k.f[NF_FIELD_OFF(NF_FIELD_PORT_CLASS)] = desc[i * NF_PKT_DESC_WORDS + 3];
  for (uint w = 0; w < NF_FIELD_WORDS; w++) k.f0[w] = k.f[w];

  nf_ctx c;
  c.have_orig = 0;
  c.orig_missed = 0;
  c.committed = 0;
  nf_step st;
  st.flow = NF_FLOW_NEXT;
  st.verdict = NF_VERDICT_DROP;
  st.port = NF_NO_SLOT;
  uint t = 0;
  uint ntrace = 0;
  uint tables = img[NF_HDR_TABLE_COUNT];
  uint fell_off = 1;
  /* Gotos only go forward, so at most NF_MAX_TABLES tables run. */
  for (uint step = 0; step < NF_MAX_STEPS; step++) {
    if (t >= tables) break;
    nf_best b = nf_lookup(img, t, &k);
    uint d = NF_HDR_TABLES + t * NF_TABLE_DESC_WORDS;
    __global uint* tc = tcnt + img[d + NF_TD_COUNTER] * NF_CNT_TABLE_WORDS;
    uint slot = b.found ? b.slot : img[d + NF_TD_DEFAULT_ACTION];
    if (b.found) {
      nf_cnt_add(tc, 1);
      __global uint* ec = counters + slot * NF_CNT_ENTRY_WORDS;
      nf_cnt_add(ec, 1);
      nf_cnt_add(ec + 2, len);
    } else {
      nf_cnt_add(tc + 2, 1);
    }
    nf_cnt_add(tc + 4, len);
    if (b.tie) {
      nf_cnt_add(tc + 6, 1);
      res[NF_R_FLAGS] |= NF_RF_TIE;
    }
    if (ntrace < NF_MAX_TRACE) {
      res[NF_R_TRACE + ntrace] =
          t << 24 | (b.found ? NF_TRACE_HIT : 0u) | (slot & NF_TRACE_SLOT_MASK);
      ntrace++;
    }
    st = nf_run_actions(img, slot, &k, &c, ct, now_ns, res, dev);
    if (st.flow == NF_FLOW_DONE) {
      fell_off = 0;
      break;
    }
    if (st.flow == NF_FLOW_NEXT || st.table <= t) break;
    t = st.table;
  }
  if (fell_off) {
    st.verdict = NF_VERDICT_DROP;
    res[NF_R_FLAGS] |= NF_RF_FELL_OFF;
    nf_cnt_add(dev + 2 * NF_DEV_FELL_OFF, 1);
  }
  if (st.verdict == NF_VERDICT_OUTPUT) nf_rewrite(out, &k);
  if (st.verdict == NF_VERDICT_PUNT) nf_cnt_add(dev + 2 * NF_DEV_PUNTS, 1);
  if (res[NF_R_FLAGS] & (NF_RF_COMMIT | NF_RF_SNAT_ALLOC | NF_RF_AFFINITY_NEW)) {
    nf_cnt_add(dev + 2 * NF_DEV_SLOW_PATH, 1);
  }
  res[NF_R_VERDICT] = st.verdict;
  res[NF_R_PORT] = st.port;
  res[NF_R_CT_STATE] = k.f[NF_FIELD_OFF(NF_FIELD_CT_STATE)];
  res[NF_R_TRACE_COUNT] = ntrace;
  res[NF_R_L4_FLAGS] = nf_l4_flags(&k);
  res[NF_R_META_FLAGS] = k.f[NF_FIELD_OFF(NF_FIELD_META_FLAGS)];
  res[NF_R_OFFSETS] = k.l3_off | k.l4_off << 16;
  res[NF_R_L3INFO] = k.l3_end | k.l4_proto << 16 | k.is_v6 << 24 | k.has_l4 << 25 | k.is_frag << 26;
}

/* ---- The commit log ---------------------------------------------------------------------------
 * The host's connection-table writes of one batch (new connections' tuple slots and state words,
 * affinity records, expiry clears) arrive as one buffer of records [at, n, word0 .. word(n-1)]
 * and are scattered into the table here -- what a hardware command ring does. One work-item
 * applies the records in order, so a record's body lands before a later record's valid word and
 * a later write to the same word wins, as with the host's writes one by one. It runs between
 * batches (the queue is in order), so no lookup sees a half-written slot. */
__kernel void nf_ct_scatter(__global uint* ct, __global const uint* restrict log, uint log_words,
                            uint ct_words) {
  if (get_global_id(0) != 0) return;
  uint p = 0;
  while (p + 2 <= log_words) { /* HLS: PIPELINE over the words of a record */
    uint at = log[p];
    uint n = log[p + 1];
    p += 2;
    if (n > log_words - p || at > ct_words || n > ct_words - at) break; /* host-checked */
    for (uint w = 0; w < n; w++) ct[at + w] = log[p + w];
    p += n;
  }
}
