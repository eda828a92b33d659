// The host half of FPGA conntrack: the authoritative connection list, the commit rules (those of
// nicflow::sim::Conntrack::Commit), placement of tuples into the device's bucketed table, SNAT
// port allocation, ClientIP affinity records, and expiry from the state words the kernel keeps.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "nicflow/hw/image_format.h"
#include "nicflow/hw/kernel_runtime.h"

namespace nicflow::hw {

/// meta (zone << 16 | proto << 8 | v6), src[4], dst[4], ports (src << 16 | dst).
using CtKey = std::array<uint32_t, NF_CT_KEY_WORDS>;
CtKey ReverseKey(const CtKey& k);

enum class CommitResult : uint8_t { kCommitted, kExists, kClash, kInvalid, kFull };

class HostConntrack {
 public:
  HostConntrack(KernelRuntime& rt, uint32_t buckets, uint32_t connections);
  /// Words of the device buffer for this geometry.
  static uint32_t Words(uint32_t buckets, uint32_t connections);
  /// Writes the header and clears the table on the device.
  absl::Status Reset();

  bool InUse(const CtKey& t) const { return index_.contains(t); }
  /// Records a connection (first packet `orig`, leaving as `xlate`) and installs both tuples.
  absl::StatusOr<CommitResult> Commit(const CtKey& orig, const CtKey& xlate, uint8_t l4_flags,
                                      uint64_t now_ns);
  /// Records (or refreshes) a ClientIP affinity: group index, client address, bucket label.
  absl::Status RecordAffinity(uint32_t group, const uint32_t client[4], uint64_t label,
                              uint64_t now_ns);
  /// Removes connections idle past their timeout; returns how many.
  absl::StatusOr<size_t> Expire(uint64_t now_ns);
  size_t size() const { return live_; }
  /// The (original, reply) tuples of the last successful Commit since ClearLastCommit().
  const std::optional<std::pair<CtKey, CtKey>>& last_commit() const { return last_commit_; }
  void ClearLastCommit() { last_commit_.reset(); }

 private:
  struct Conn {
    CtKey orig{}, reply{};
    uint32_t orig_at = 0, reply_at = 0;  // device word offsets of the two slots
    bool in_use = false;
  };
  uint32_t FindFreeSlot(const CtKey& k) const;
  absl::Status WriteSlot(uint32_t at, const CtKey& key, const CtKey& leaves, uint32_t dir,
                         uint32_t conn);
  absl::Status ClearSlot(uint32_t at);

  KernelRuntime& rt_;
  uint32_t buckets_, conns_cap_, aff_buckets_, state_base_, aff_base_;
  absl::flat_hash_map<CtKey, uint32_t> index_;  // tuple -> conn << 1 | dir
  std::vector<Conn> conns_;
  std::vector<uint32_t> free_;
  std::vector<uint8_t> used_;  // per tuple slot
  absl::flat_hash_map<std::array<uint32_t, NF_AFF_KEY_WORDS>, uint32_t> affinity_;  // -> offset
  std::vector<uint8_t> aff_used_;
  size_t live_ = 0;
  std::optional<std::pair<CtKey, CtKey>> last_commit_;
};

}  // namespace nicflow::hw
