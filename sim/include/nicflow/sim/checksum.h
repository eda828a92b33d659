// Internet checksums (RFC 1071), incremental updates (RFC 1624) and SCTP's CRC32c (RFC 9260).
//
// NAT rewrites addresses and ports in place; the IPv4 header, TCP and UDP checksums (whose
// pseudo-headers cover the addresses) are updated incrementally from the old and new 16-bit
// words, so the cost does not depend on the payload size. SCTP's CRC32c is not linear in that
// way and is recomputed over the whole packet. RecomputeChecksums() is the full reference the
// tests compare the incremental updates against.
#pragma once

#include <cstdint>
#include <span>

#include "nicflow/sim/packet.h"

namespace nicflow::sim {

/// One's-complement sum of `data` (odd length padded with a zero byte) added to `sum`, unfolded.
uint32_t ChecksumPartial(std::span<const uint8_t> data, uint32_t sum = 0) noexcept;
/// Folds a partial sum and complements it: the value a checksum field holds.
uint16_t ChecksumFinish(uint32_t sum) noexcept;

/// RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m') for one 16-bit word changing from `old_word` to
/// `new_word`.
uint16_t ChecksumAdjust16(uint16_t checksum, uint16_t old_word, uint16_t new_word) noexcept;
/// The same for a run of 16-bit words (addresses: 2 or 8 words), given as big-endian bytes.
uint16_t ChecksumAdjust(uint16_t checksum, std::span<const uint8_t> old_bytes,
                        std::span<const uint8_t> new_bytes) noexcept;

/// CRC32c (Castagnoli) as SCTP uses it; `crc` chains calls.
uint32_t Crc32c(std::span<const uint8_t> data, uint32_t crc = 0xffffffffu) noexcept;

/// Recomputes every checksum of a parsed frame from scratch (IPv4 header, TCP, UDP, ICMP,
/// ICMPv6, SCTP). A UDP-over-IPv4 zero checksum is left zero. Non-first fragments are skipped.
void RecomputeChecksums(std::span<uint8_t> frame, const ParsedPacket& p) noexcept;

/// True when every checksum of the frame is what RecomputeChecksums() would write.
bool ChecksumsValid(std::span<const uint8_t> frame, const ParsedPacket& p) noexcept;

/// Rewrites the frame's IP source/destination and TCP/UDP/SCTP source/destination port to the
/// values in `target`, updating checksums incrementally (ICMP echo identifiers are kept).
/// Returns true if anything changed. `p` must describe `frame` as it is now.
bool RewriteAddressesAndPorts(std::span<uint8_t> frame, const ParsedPacket& p,
                              const PacketFields& target) noexcept;

/// The values a NAT rewrite may change, captured before the datapath edits the field vector in
/// place (so it need not keep a second copy of every field).
struct L34Values {
  U128 src, dst, src_port, dst_port;
};
L34Values CaptureL34(const ParsedPacket& p) noexcept;
/// As above, with the frame's current values given by `from` instead of `p.fields`.
bool RewriteAddressesAndPorts(std::span<uint8_t> frame, const ParsedPacket& p,
                              const L34Values& from, const PacketFields& target) noexcept;

}  // namespace nicflow::sim
