// DPDK rte_acl as a reference classifier for the simulator benchmark. DPDK types stay in
// acl_ref.cc; this header speaks the IR.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nicflow/flowtables/ir.h"
#include "nicflow/sim/packet.h"

namespace nicflow::bench {

/// Initialises the EAL without hugepages or PCI devices (idempotent). Errors: Unavailable with
/// the EAL's reason.
absl::Status InitDpdk();

/// An rte_acl context holding one table's entries. Keys are the table's fields; every field must
/// be at most 32 bits wide (the policy rule tables are).
class AclClassifier {
 public:
  /// Errors: InvalidArgument (a key wider than 32 bits, too many fields), Internal (rte_acl).
  static absl::StatusOr<std::unique_ptr<AclClassifier>> Build(
      const std::vector<flowtables::KeyField>& keys, const std::vector<flowtables::Entry>& entries);
  ~AclClassifier();

  /// Converts packets to rte_acl's input layout (network byte order), once, outside timing.
  void Prepare(std::span<const sim::PacketFields> packets);
  /// Classifies the prepared packets in bursts of 64; out[i] = entry index or sim::kNoRule.
  void Classify(std::span<uint32_t> out);
  std::string Describe() const;

 private:
  struct Impl;
  explicit AclClassifier(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace nicflow::bench
