// pcap files in and out (libpcap; readable by tcpdump and Wireshark), and running a capture
// through a SimNic (`nicflow sim --pcap-in a.pcap --pcap-out b.pcap`).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nicflow/sim/device.h"

namespace nicflow::sim {

struct PcapFrame {
  std::vector<uint8_t> data;
  uint64_t ts_ns = 0;
};

/// Writes an Ethernet (DLT_EN10MB) capture with microsecond timestamps.
class PcapWriter {
 public:
  /// Errors: Unavailable naming the path when the file cannot be created.
  static absl::StatusOr<std::unique_ptr<PcapWriter>> Open(const std::string& path);
  ~PcapWriter();
  PcapWriter(const PcapWriter&) = delete;
  PcapWriter& operator=(const PcapWriter&) = delete;
  void Write(std::span<const uint8_t> frame, uint64_t ts_ns);
  /// Flushes and closes; errors: DataLoss when the data could not be written.
  absl::Status Close();

 private:
  struct Handles;
  explicit PcapWriter(std::unique_ptr<Handles> h, std::string path);
  std::unique_ptr<Handles> h_;
  std::string path_;
};

/// Reads every frame of a capture. Errors: NotFound/InvalidArgument naming the path (missing
/// file, not a pcap, not Ethernet).
absl::StatusOr<std::vector<PcapFrame>> ReadPcap(const std::string& path);
absl::Status WritePcap(const std::string& path, std::span<const PcapFrame> frames);

struct PcapRunStats {
  uint64_t read = 0, forwarded = 0, rejected = 0, dropped = 0, punted = 0, written = 0;
};

/// Runs every frame of `in_path` into `nic` on port `in_port` and writes what leaves (forwarded
/// frames, REJECT replies) to `out_path`, keeping input timestamps.
absl::StatusOr<PcapRunStats> RunPcap(SimNic& nic, const std::string& in_path,
                                     const std::string& out_path, PortId in_port);

}  // namespace nicflow::sim
