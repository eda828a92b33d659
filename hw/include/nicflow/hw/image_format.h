/* The FPGA table image: the memory layout shared by the host encoder and the match-action kernel.
 *
 * This header is written in the common subset of C++ and OpenCL C 1.2 (no templates, no
 * namespaces, no enums with fixed types): the host includes it as a C++ header, and the build
 * prepends it to hw/kernels/match_action.cl, so both sides read one definition of every offset.
 * docs/fpga-image-format.md is the prose specification (what an RTL implementation must do).
 *
 * Everything is an array of 32-bit little-endian words ("words"), addressed by word index. Three
 * device buffers hold state:
 *   image[2]   two copies of the table image (double buffer). The kernel reads control word 0 at
 * the start of a batch and uses image[ctrl[0] & 1] for the whole batch; the host writes the other
 * copy, then flips the index, so a change is atomic for packets. conntrack  the connection table
 * (written by the host row by row, valid word last; the kernel updates per-connection protocol
 * state words with atomics). counters   per-entry and per-table counters (written only by the
 * kernel, with atomics; read back by the host). Counters live outside the image so that they
 * survive a flip.
 *
 * Image layout (word offsets relative to the image start):
 *   [0, NF_HDR_WORDS)                    header: nf_image_header_t
 *   [action_base, +action_slots * NF_ACTION_SLOT_WORDS)     action slots (see "Actions")
 *   [group_base,  +group_cap * NF_GROUP_DESC_WORDS)         select group descriptors
 *   [maglev_base, +maglev_words)                            group lookup tables (bucket slots)
 *   per table: tcam rows, exact-hash buckets and LPM buckets at the offsets in its descriptor.
 *
 * All sizes are fixed when the image is created (nicflow::hw::ImageGeometry); nothing grows.
 */
#ifndef NICFLOW_HW_IMAGE_FORMAT_H_
#define NICFLOW_HW_IMAGE_FORMAT_H_

#ifdef __OPENCL_C_VERSION__
typedef uint nf_u32;
#else
#include <stdint.h>
typedef uint32_t nf_u32;
#endif

#define NF_IMAGE_MAGIC 0x4d49464eu /* "NFIM" little-endian */
#define NF_IMAGE_VERSION 1u

/* ---- Fields -------------------------------------------------------------------------------
 * Field ids equal nicflow::flowtables::Field. The kernel keeps a packet's fields in a vector of
 * NF_FIELD_WORDS words: field f occupies NF_FIELD_NWORDS(f) words from NF_FIELD_OFF(f), most
 * significant word first (an IPv6 address is 4 words, network order). */
#define NF_FIELD_IN_PORT 0
#define NF_FIELD_ETH_TYPE 1
#define NF_FIELD_IP_PROTO 2
#define NF_FIELD_IPV4_SRC 3
#define NF_FIELD_IPV4_DST 4
#define NF_FIELD_IPV6_SRC 5
#define NF_FIELD_IPV6_DST 6
#define NF_FIELD_L4_SRC 7
#define NF_FIELD_L4_DST 8
#define NF_FIELD_ICMP_TYPE 9
#define NF_FIELD_TCP_FLAGS 10
#define NF_FIELD_CT_STATE 11
#define NF_FIELD_PORT_CLASS 12
#define NF_FIELD_META_FLAGS 13
#define NF_FIELD_SRC_SET 14
#define NF_FIELD_DST_SET 15
#define NF_FIELD_PEER_BITS 16
#define NF_FIELD_COUNT 17
#define NF_FIELD_WORDS 23
/* Word offset of each field in the vector: fields 0..4 one word each, 5 and 6 four words each,
 * 7..16 one word each. */
#define NF_FIELD_OFF(f) ((f) <= 5 ? (f) : ((f) == 6 ? 9 : (f) + 6))
#define NF_FIELD_NWORDS(f) (((f) == 5 || (f) == 6) ? 4 : 1)
/* Fields that are always present (metadata) in the packet's presence bitmap. */
#define NF_METADATA_FIELDS 0x1f801u /* in_port, ct_state, port_class, flags, src/dst set, peers */

/* ---- Header -------------------------------------------------------------------------------- */
#define NF_MAX_TABLES 16
#define NF_MAX_KEYS 8       /* key fields per table */
#define NF_MAX_KEY_WORDS 16 /* words of a table's key vector */
#define NF_HDR_WORDS 1024

/* Key descriptor word: field id (bits 0-7), match kind (8-15), word offset in the table's key
 * vector (16-23), words (24-31). */
#define NF_KIND_EXACT 0
#define NF_KIND_TERNARY 1
#define NF_KIND_LPM 2
#define NF_KIND_RANGE 3
#define NF_KEY_FIELD(k) ((k)&0xffu)
#define NF_KEY_KIND(k) (((k) >> 8) & 0xffu)
#define NF_KEY_WOFF(k) (((k) >> 16) & 0xffu)
#define NF_KEY_NWORDS(k) (((k) >> 24) & 0xffu)

/* Table descriptor: NF_TABLE_DESC_WORDS words at NF_HDR_TABLES + t * NF_TABLE_DESC_WORDS. */
#define NF_TD_KEY_COUNT 0
#define NF_TD_KEY_WORDS 1
#define NF_TD_KEYS 2            /* NF_MAX_KEYS key descriptor words */
#define NF_TD_DEFAULT_ACTION 10 /* action slot run on a miss */
#define NF_TD_TCAM_BASE 11
#define NF_TD_TCAM_CAP 12
#define NF_TD_TCAM_USED 13 /* rows [0, used) are scanned; invalid rows are skipped */
#define NF_TD_HASH_BASE 14
#define NF_TD_HASH_BUCKETS 15  /* power of two; 0 = no exact unit */
#define NF_TD_HASH_WORDMASK 16 /* key-vector words the exact unit hashes and compares */
#define NF_TD_HASH_REQUIRED 17 /* fields a packet must carry to use the exact unit */
#define NF_TD_LPM_BASE 18
#define NF_TD_LPM_BUCKETS 19 /* power of two; 0 = no LPM unit */
#define NF_TD_LPM_KEY 20     /* index (0..key_count-1) of the LPM key */
#define NF_TD_LPM_LENS 21    /* 5 words: bit L set when some LPM entry has prefix length L */
#define NF_TD_COUNTER 26     /* index of the table's hit/miss counter pair */
/* Buckets a lookup probes from the home bucket (0..NF_HASH_MAX_PROBE): 1 + the deepest probe at
 * which the unit holds a valid slot, 0 when empty. Kept exact by the host on every insert and
 * delete; a device probing all NF_HASH_MAX_PROBE buckets is also correct. */
#define NF_TD_HASH_PROBES 27
#define NF_TD_LPM_PROBES 28
#define NF_TABLE_DESC_WORDS 32

/* Header words. */
#define NF_HDR_MAGIC 0
#define NF_HDR_VERSION 1
#define NF_HDR_TOTAL_WORDS 2
#define NF_HDR_TABLE_COUNT 3
#define NF_HDR_ACTION_BASE 4
#define NF_HDR_ACTION_SLOTS 5
#define NF_HDR_GROUP_BASE 6
#define NF_HDR_GROUP_CAP 7
#define NF_HDR_MAGLEV_BASE 8
#define NF_HDR_MAGLEV_WORDS 9
#define NF_HDR_GENERATION 10 /* bumped on every committed update (read by traces) */
#define NF_HDR_TABLES 64
/* NF_HDR_TABLES + NF_MAX_TABLES * NF_TABLE_DESC_WORDS = 576 <= NF_HDR_WORDS */

/* ---- Ternary (TCAM) rows ----------------------------------------------------------------------
 * A row matches when the packet carries every field in `required` and, for each key word w,
 * (key[w] & mask[w]) == value[w] -- except words of a RANGE key, where value holds the inclusive
 * low bound and mask the inclusive high bound (range keys are at most one word wide). Exact and
 * LPM keys are stored as masks (all ones; the prefix mask). Among matching rows the highest
 * priority wins; equal priorities: the lowest row index. */
#define NF_TCAM_FLAGS 0    /* bit 31: valid */
#define NF_TCAM_PRIORITY 1 /* signed 32-bit */
#define NF_TCAM_ACTION 2   /* action slot index (also the entry's counter index) */
#define NF_TCAM_REQUIRED 3 /* bitmap of fields the entry mentions */
#define NF_TCAM_VALUE 4    /* NF_MAX_KEY_WORDS words */
#define NF_TCAM_MASK 20    /* NF_MAX_KEY_WORDS words */
#define NF_TCAM_ROW_WORDS 36
#define NF_VALID 0x80000000u

/* ---- Exact-match hash unit ------------------------------------------------------------------
 * Entries whose every mentioned field is matched exactly (full mask) and whose mentioned fields
 * are exactly the unit's key set. Buckets of NF_HASH_BUCKET_SLOTS slots; the key hashes to bucket
 * b = nf_hash(words in HASH_WORDMASK, seed = table id) & (buckets - 1); a lookup probes buckets
 * b, b+1, ... b+NF_HASH_MAX_PROBE-1 (mod buckets) and compares every valid slot (so inserts may
 * use any of them). Several slots may hold the same key with different priorities: the highest
 * priority wins. */
#define NF_HASH_BUCKET_SLOTS 4
#define NF_HASH_MAX_PROBE 4
#define NF_HASH_FLAGS 0 /* bit 31 valid */
#define NF_HASH_PRIORITY 1
#define NF_HASH_ACTION 2
#define NF_HASH_KEY 4 /* NF_MAX_KEY_WORDS words at their key-vector positions (others zero) */
#define NF_HASH_SLOT_WORDS 20

/* ---- LPM unit --------------------------------------------------------------------------------
 * Entries that mention only the table's LPM key. Stored in a hash of (length, masked prefix):
 * bucket = nf_hash(length, prefix words, seed = 0x4c500000 | table id) & (buckets - 1), probed as
 * above. A lookup walks the lengths set in TD_LPM_LENS from the longest down and stops at the
 * first hit. The encoder admits an entry only if priorities never decrease with prefix length
 * across the unit, so the longest match is also the highest priority one. */
#define NF_LPM_FLAGS 0 /* bit 31 valid, bits 0-7 prefix length */
#define NF_LPM_PRIORITY 1
#define NF_LPM_ACTION 2
#define NF_LPM_VALUE 4 /* 4 words, the key's words (masked), most significant first */
#define NF_LPM_SLOT_WORDS 8

/* ---- Actions -----------------------------------------------------------------------------------
 * An action slot holds one action list: records of `len` words, the first word op | len << 8,
 * ended by NF_OP_END (or the slot's end). Table defaults, entries and group buckets each own a
 * slot; an entry's slot index doubles as its counter index. */
#define NF_ACTION_SLOT_WORDS 64
#define NF_OP_END 0
#define NF_OP_DROP 1
#define NF_OP_REJECT 2
#define NF_OP_OUTPUT 3     /* w1: port index (the host's port table) */
#define NF_OP_GOTO 4       /* w1: table id (greater than the current one) */
#define NF_OP_SET_FIELD 5  /* w1: field id; w2-5: value; w6-9: mask (4 words, MSW first) */
#define NF_OP_DNAT 6       /* w1: bit0 v6, bit1 has port; w2-5: address; w6: port */
#define NF_OP_SNAT 7       /* w1: bit0 v6; w2-5: address; w6: port_lo << 16 | port_hi */
#define NF_OP_GROUP 8      /* w1: group index */
#define NF_OP_CT_LOOKUP 9  /* w1: zone */
#define NF_OP_CT_COMMIT 10 /* w1: zone */
#define NF_OP_PUNT 11
#define NF_OP_WORD(op, len) ((nf_u32)(op) | ((nf_u32)(len) << 8))
#define NF_OP_CODE(w) ((w)&0xffu)
#define NF_OP_LEN(w) (((w) >> 8) & 0xffu)
#define NF_NO_SLOT 0xffffffffu

/* ---- Select groups -------------------------------------------------------------------------
 * Descriptor words. The kernel computes nf_flow_hash over the packet's current values of the
 * HASH_N fields listed in HASH_F (8 bits each, in the group's order), and picks bucket
 * lookup[(hash * size) >> 64]. A group's region in the maglev area is its bucket table (size
 * NBUCKETS x NF_BUCKET_WORDS: action slot, weight, label hash lo, hi) followed by its lookup table
 * (SIZE words, each a bucket index). SIZE 0 means no bucket has a positive weight: the packet
 * drops. With AFFINITY_S > 0 (ClientIP affinity) the affinity table is consulted first (see below).
 */
#define NF_GD_FLAGS 0 /* bit 31 valid */
#define NF_GD_HASH_N 1
#define NF_GD_HASH_F 2 /* 2 words: field ids, 8 bits each, first field in the low byte */
#define NF_GD_BASE 4   /* word offset of the region from maglev_base */
#define NF_GD_NBUCKETS 5
#define NF_GD_SIZE 6
#define NF_GD_AFFINITY_S 7
#define NF_GROUP_DESC_WORDS 8
#define NF_MAX_HASH_FIELDS 8
#define NF_BUCKET_WORDS 4
#define NF_BK_SLOT 0
#define NF_BK_WEIGHT 1
#define NF_BK_LABEL_LO 2
#define NF_BK_LABEL_HI 3
#define NF_MAX_BUCKETS 4096 /* synthesis bound of the affinity label search */

/* ---- Connection table (separate buffer) -----------------------------------------------------
 * Layout: [0, NF_CT_HDR_WORDS) header; tuple buckets from NF_CT_HDR_WORDS; then per-connection
 * state words from STATE_BASE; then the affinity table from AFF_BASE. A connection has two
 * slots: its original tuple and its reply tuple. Hash: nf_hash(key words, NF_CT_SEED). */
#define NF_CT_HDR_BUCKETS 0 /* power of two */
#define NF_CT_HDR_STATE_BASE 1
#define NF_CT_HDR_CONNS 2 /* connection capacity (state records) */
#define NF_CT_HDR_AFF_BASE 3
#define NF_CT_HDR_AFF_BUCKETS 4 /* power of two */
#define NF_CT_HDR_WORDS 16
#define NF_CT_SEED 0x43540000u
#define NF_AFF_SEED 0x41460000u
#define NF_CT_FLAGS 0    /* bit 31 valid, bit 0 reply direction */
#define NF_CT_META 1     /* zone << 16 | proto << 8 | v6 */
#define NF_CT_SRC 2      /* 4 words (IPv4: word 3) */
#define NF_CT_DST 6      /* 4 words */
#define NF_CT_PORTS 10   /* src_port << 16 | dst_port */
#define NF_CT_NEW_SRC 11 /* how a packet matching this tuple leaves: 4 + 4 + 1 words */
#define NF_CT_NEW_DST 15
#define NF_CT_NEW_PORTS 19
#define NF_CT_CONN 20 /* connection index (its state record) */
#define NF_CT_SLOT_WORDS 24
#define NF_CT_KEY_WORDS 10 /* words 1..10 are the key */
/* Affinity slot: ClientIP affinity records, keyed by (group index, client address). */
#define NF_AFF_FLAGS 0 /* bit 31 valid */
#define NF_AFF_GROUP 1
#define NF_AFF_CLIENT 2 /* 4 words */
#define NF_AFF_LABEL_LO 6
#define NF_AFF_LABEL_HI 7
#define NF_AFF_LAST_LO 8 /* last use, ns (kernel writes it on every hit) */
#define NF_AFF_LAST_HI 9
#define NF_AFF_SLOT_WORDS 12
#define NF_AFF_KEY_WORDS 5 /* words 1..5 */
/* Connection state word (updated by the kernel with compare-and-swap): TCP state (bits 0-3, the
 * values of nicflow::sim::TcpState), fin_seen (4-5), seen_reply (6), SCTP closing (7-8); the
 * second word is the last-seen time in seconds (the `now_s` kernel argument). */
#define NF_CTS_WORDS 2
#define NF_CTS_STATE 0
#define NF_CTS_LAST_S 1
#define NF_CT_TCP_NONE 0
#define NF_CT_TCP_SYN_SENT 1
#define NF_CT_TCP_SYN_RECV 2
#define NF_CT_TCP_ESTABLISHED 3
#define NF_CT_TCP_FIN_WAIT 4
#define NF_CT_TCP_CLOSE_WAIT 5
#define NF_CT_TCP_LAST_ACK 6
#define NF_CT_TCP_TIME_WAIT 7
#define NF_CT_TCP_CLOSE 8

/* ---- Counters (separate buffer) -------------------------------------------------------------
 * Entry counter i (i = action slot) at i * 4: packets lo, hi, bytes lo, hi. Table t's counters at
 * NF_CNT_TABLE_BASE(slots) + t * NF_CNT_TABLE_WORDS: hits lo/hi, misses lo/hi, bytes lo/hi,
 * ties lo/hi. Device counters follow at NF_CNT_DEVICE_BASE(slots), one 64-bit pair each (NF_DEV_*).
 * 64-bit counters are two words updated with 32-bit atomics: the low word is added, and the high
 * word incremented when the add wrapped (exact under concurrency). */
#define NF_CNT_ENTRY_WORDS 4
#define NF_CNT_TABLE_WORDS 8
#define NF_CNT_TABLE_BASE(slots) ((slots)*NF_CNT_ENTRY_WORDS)
#define NF_CNT_DEVICE_BASE(slots) (NF_CNT_TABLE_BASE(slots) + NF_MAX_TABLES * NF_CNT_TABLE_WORDS)
#define NF_DEV_RX 0
#define NF_DEV_PARSE_ERRORS 1
#define NF_DEV_FELL_OFF 2
#define NF_DEV_PUNTS 3
#define NF_DEV_SLOW_PATH 4
#define NF_DEV_CT_HITS 5
#define NF_DEV_COUNTERS 8
#define NF_CNT_WORDS(slots) (NF_CNT_DEVICE_BASE(slots) + 2 * NF_DEV_COUNTERS)

/* ---- Packets in and results out ---------------------------------------------------------------
 * Descriptor per packet (4 words): frame offset in the input buffer, frame length, in_port,
 * port class. The rewritten frame is written at the same offset in the output buffer. */
#define NF_PKT_DESC_WORDS 4
#define NF_MAX_FRAME_BYTES 9216
#define NF_MAX_TRACE 16
#define NF_VERDICT_OUTPUT 0
#define NF_VERDICT_DROP 1
#define NF_VERDICT_REJECT 2
#define NF_VERDICT_PUNT 3
#define NF_VERDICT_PARSE_ERROR 4
/* Result flags. */
#define NF_RF_FELL_OFF 0x1u      /* an action list ended without a terminal action or goto */
#define NF_RF_TIE 0x2u           /* two entries of equal priority matched */
#define NF_RF_COMMIT 0x4u        /* CtCommit of a connection not in the table: host commits */
#define NF_RF_SNAT 0x8u          /* an SNAT action ran (masquerade) */
#define NF_RF_DNAT 0x10u         /* a DNAT action ran */
#define NF_RF_CT_HIT 0x20u       /* conntrack found the connection */
#define NF_RF_SNAT_ALLOC 0x40u   /* the SNAT source port must be allocated by the host */
#define NF_RF_AFFINITY_NEW 0x80u /* a ClientIP affinity record must be written by the host */
#define NF_RF_NO_BUCKET 0x100u   /* select group without a bucket of positive weight */
#define NF_RF_BAD_REWRITE 0x200u /* NAT to an address of the other family */
#define NF_RF_CT_CLASH 0x400u    /* CtCommit: the reply tuple belongs to another connection */
#define NF_RF_CT_LOOKUP 0x800u   /* conntrack looked the packet up (ORIG_* hold its tuple) */
/* Result record words. */
#define NF_R_VERDICT 0
#define NF_R_PORT 1
#define NF_R_FLAGS 2
#define NF_R_PARSE_ERROR 3
#define NF_R_CT_STATE 4
#define NF_R_TRACE_COUNT 5
#define NF_R_COMMIT_ZONE 6
#define NF_R_ORIG_META                                                                             \
  7                      /* zone << 16 | proto << 8 | v6 of the tuple at the first CtLookup, or of \
                          * the committed original tuple (with the commit zone) */
#define NF_R_ORIG_SRC 8  /* 4 words */
#define NF_R_ORIG_DST 12 /* 4 words */
#define NF_R_ORIG_PORTS 16
#define NF_R_SNAT_RANGE 17 /* port_lo << 16 | port_hi of the SNAT that ran */
#define NF_R_XLATE_SRC 18  /* tuple at CtCommit: 4 + 4 + 1 words */
#define NF_R_XLATE_DST 22
#define NF_R_XLATE_PORTS 26
#define NF_R_L4_FLAGS 27 /* TCP flags or first SCTP chunk type */
#define NF_R_AFF_GROUP 28
#define NF_R_AFF_BUCKET 29
#define NF_R_META_FLAGS 30
#define NF_R_SNAT_ORIG_PORTS 31 /* src << 16 | dst port before the SNAT ran */
#define NF_R_TRACE 32           /* NF_MAX_TRACE words: table << 24 | hit << 23 | slot (23 bits) */
#define NF_R_SNAT_BEFORE_SRC 48 /* the tuple before the SNAT ran (the host's port allocator) */
#define NF_R_SNAT_BEFORE_DST 52
#define NF_R_OFFSETS 56    /* l3 offset | l4 offset << 16 (l4 offset 0: no L4 header) */
#define NF_R_L3INFO 57     /* l3 end | l4 proto << 16 | v6 << 24 | has_l4 << 25 | fragment << 26 */
#define NF_R_GROUP 58      /* last select group run (index), NF_NO_SLOT if none */
#define NF_R_BUCKET 59     /* the bucket it chose */
#define NF_R_SNAT_ADDR 60  /* 4 words: the SNAT address (IPv4: word 3) */
#define NF_R_AFF_CLIENT 64 /* 4 words: the client address of a new affinity record */
#define NF_R_WORDS 72
#define NF_TRACE_HIT 0x800000u
#define NF_TRACE_SLOT_MASK 0x7fffffu
#define NF_MAX_TCAM_ROWS 4096 /* synthesis bound of the TCAM scan */

/* ---- Hash function -----------------------------------------------------------------------------
 * nf_hash: CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) over the words, each word fed
 * least significant byte first, starting from the seed; the result is the final CRC register
 * without the final inversion. CRC is cheap in logic and the kernel already needs CRC-32C for
 * SCTP. Implemented bytewise in both host (image.cc) and kernel. */
#define NF_CRC32C_POLY 0x82F63B78u

#endif /* NICFLOW_HW_IMAGE_FORMAT_H_ */
