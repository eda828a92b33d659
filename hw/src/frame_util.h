// Host-side frame work of the FPGA slow path: checksums, the SNAT port fix-up and REJECT replies.
// The kernel reports where the headers are (NF_R_OFFSETS / NF_R_L3INFO), so nothing is re-parsed.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace nicflow::hw {

struct FrameInfo {
  uint32_t l3_off = 0, l4_off = 0, l3_end = 0;
  uint8_t proto = 0;
  bool v6 = false, has_l4 = false, fragment = false;
};
/// Decodes the layout words of a kernel result record.
FrameInfo FrameInfoOf(std::span<const uint32_t> result);

/// Rewrites the L4 source port (TCP/UDP/SCTP) with incremental checksum update (SCTP: CRC32c
/// recomputed).
void RewriteSourcePort(std::span<uint8_t> frame, const FrameInfo& fi, uint16_t port);

/// Builds the REJECT answer to `in` (a TCP RST, or ICMP/ICMPv6 port unreachable); empty when the
/// packet must not be answered (a RST, an ICMP error). Same bytes as the simulator's reply.
std::vector<uint8_t> BuildRejectReply(std::span<const uint8_t> in, const FrameInfo& fi,
                                      size_t max_len);

}  // namespace nicflow::hw
