// Private to host/: lowering a pipeline program to DPDK rte_flow rules (DPDK's own structs).
//
// The mapping (docs/rteflow.md explains it for users)
// ---------------------------------------------------
// * Table t is rte_flow group t (group 0, where every packet starts, is Program::tables[0]);
//   Goto is JUMP. Helper groups (select buckets, conntrack) are numbered after the tables.
// * Priorities: rte_flow's lower number wins, the IR's higher number wins; within a group the
//   distinct IR priorities are ranked (highest IR priority -> rte_flow priority 0). A table's
//   default actions are a catch-all rule one rank below its lowest entry.
// * Matches: ETH/IPV4/IPV6/TCP/UDP/SCTP/ICMP/ICMP6 items; exact = spec with a full mask, ternary
//   = spec/mask, LPM = spec with a prefix mask, range = spec..last (full mask). An entry that
//   does not pin the IP family or the L4 protocol but needs them (an L4 port, or a NAT) is
//   expanded into one rule per family/protocol: an IR wildcard covers several rte_flow items.
// * Pipeline metadata: meta.flags is META; ct_state, meta.src_set, meta.dst_set, meta.peer_bits
//   are TAG indexes 0..3 (SET_TAG / SET_META write them with masks). meta.port_class and in_port
//   are constants of the port the rules are created on (rules are per ingress port), so matches
//   on them are decided while lowering.
// * Actions: DROP, JUMP, SET_IPV4_DST/SET_IPV6_DST + SET_TP_DST (DNAT), REPRESENTED_PORT (VF and
//   uplink) / PORT_REPRESENTOR (host), MARK + QUEUE (punt; the mark says where software
//   resumes), COUNT on every entry rule (read with rte_flow_query).
// * Select groups become 2^k ternary buckets on hash-like bits (the low bits of the L4 source
//   port, or of the source address when the protocol has no ports, or with ClientIP affinity),
//   dealt to the buckets in proportion to their weights (largest remainder).
// * CtLookup: rte_flow has no connection tracker with NAT. It jumps to a conntrack helper group
//   where the software path installs one rule per committed connection (est/rpl + its NAT); a
//   packet that misses is what the simulator calls a miss: ct_state trk|inv for a TCP segment
//   that cannot start a connection, trk|new otherwise. CtCommit SAMPLEs a copy (MARK + QUEUE) to
//   the software path, which commits it; the packet itself continues in hardware.
// * Reject (needs a generated reply) and Snat (needs port allocation state) are not expressible;
//   placement turns them into punts before lowering.
#pragma once

#include <rte_flow.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nicflow/flowtables/ir.h"

namespace nicflow::host::rteflow {

/// TAG indexes of the pipeline registers.
inline constexpr uint8_t kTagCtState = 0;
inline constexpr uint8_t kTagSrcSet = 1;
inline constexpr uint8_t kTagDstSet = 2;
inline constexpr uint8_t kTagPeerBits = 3;
inline constexpr uint8_t kTagCount = 4;
/// MARK of the CtCommit sample copy; punts mark `table + 1`.
inline constexpr uint32_t kCommitMark = 0x00c7c0;

/// Storage for the POD structs rule arrays point to; addresses are stable for its lifetime.
class Arena {
 public:
  template <typename T>
  T* New() {
    void* p = Allocate(sizeof(T), alignof(T));
    return new (p) T{};
  }
  template <typename T>
  T* NewArray(size_t n) {
    void* p = Allocate(sizeof(T) * n, alignof(T));
    T* t = static_cast<T*>(p);
    for (size_t i = 0; i < n; ++i) new (t + i) T{};
    return t;
  }
  /// Zeroed storage for an item spec/mask/last of \p size bytes, aligned for any rte_flow
  /// item struct (they hold uint32_t and rte_be64 fields).
  void* NewItemBuffer(size_t size) {
    void* p = Allocate(size, alignof(std::max_align_t));
    std::memset(p, 0, size);
    return p;
  }
  size_t bytes() const { return used_total_; }

 private:
  void* Allocate(size_t size, size_t align);
  std::vector<std::unique_ptr<std::byte[]>> blocks_;
  size_t used_ = 0;
  size_t block_size_ = 0;
  size_t used_total_ = 0;
};

enum class RuleRole : uint8_t { kEntry, kDefault, kSelectBucket, kConntrack };

struct Rule {
  rte_flow_attr attr{};
  std::vector<rte_flow_item> pattern;    ///< END-terminated
  std::vector<rte_flow_action> actions;  ///< END-terminated
  RuleRole role = RuleRole::kEntry;
  flowtables::TableId table = 0;  ///< the IR table (of the call site, for helper groups)
  int32_t ir_priority = 0;
  std::string entry_key;  ///< flowtables::EntryKey of the entry; "" for helpers and defaults
  std::string origin;     ///< the entry's Origin::ToString()
  std::string note;       ///< e.g. "bucket 3/16 of svc/... -> 10.0.0.1:80"
};

/// Where an Output goes: an ethdev port, as REPRESENTED_PORT (the VF or wire it represents) or
/// PORT_REPRESENTOR (the ethdev itself: the host application).
struct OutputTarget {
  uint16_t ethdev_port_id = 0;
  bool representor = false;
};

struct LowerOptions {
  flowtables::PortClass port_class = flowtables::PortClass::kUplink;  ///< of the ingress port
  uint32_t in_port = 1;                                               ///< its in_port value
  bool transfer = false;  ///< rules in the transfer (E-Switch) domain instead of ingress
  uint16_t punt_queue = 0;
  /// PortRef::ToString() -> target; DefaultOutputs() when empty.
  std::map<std::string, OutputTarget, std::less<>> outputs;
  /// Bucket bits of a lowered select group: k = min(max, ceil(log2(buckets)) + extra).
  int select_extra_bits = 2;
  int select_max_bits = 8;
};

/// host -> PORT_REPRESENTOR 0, uplink -> REPRESENTED_PORT 0, the program's VFs ->
/// REPRESENTED_PORT 1, 2, ... in declaration order.
std::map<std::string, OutputTarget, std::less<>> DefaultOutputs(const flowtables::Program& p);

/// Points pod ports at their VFs' representors: every pod output ("vf:...") leaves `outputs`, and
/// each port of `ports` declared with a VF (PortDecl::vf_pci) that `vf_ethdev_ports` maps comes
/// back as REPRESENTED_PORT of that ethdev port. A pod without a mapped VF then has no output:
/// Lower fails naming it rather than guessing a port.
void BindVfOutputs(const std::vector<flowtables::PortDecl>& ports,
                   const std::map<std::string, uint16_t>& vf_ethdev_ports,
                   std::map<std::string, OutputTarget, std::less<>>& outputs);

struct RuleSet {
  std::unique_ptr<Arena> arena = std::make_unique<Arena>();
  std::vector<Rule> rules;  ///< in creation order: helper groups before the rules that jump there
  uint32_t table_groups = 0;
  uint32_t groups = 0;  ///< total groups used
  /// Helper groups that are select groups: group id -> IR group name (traces fork there).
  std::map<uint32_t, std::string> select_groups;
  /// Select groups' bucket field (kL4Src, kIpv4Src or kIpv6Src); absent with a single bucket.
  std::map<uint32_t, flowtables::Field> select_hash_fields;
  std::map<uint32_t, std::string> group_names;  ///< every group: "service", "select svc/..."
  std::vector<std::string> notes;  ///< entries that can never match and were left out, etc.
};

/// Lowers `p` (as placed for an rte_flow device). Errors: Unimplemented naming the table, entry
/// and action for what rte_flow cannot express (Reject, Snat, a partial header SetField).
absl::StatusOr<RuleSet> Lower(const flowtables::Program& p, const LowerOptions& options);

/// `flow create <port> group G priority P ingress|transfer pattern ... / end actions ... / end`.
std::string RuleToTestpmd(const Rule& r, uint16_t port_id);
/// Lines a testpmd session needs before the rules (the CtCommit sample action list).
std::vector<std::string> TestpmdPreamble(const LowerOptions& options);

/// Short readable forms for traces: "eth / ipv4 dst spec 10.0.0.1 ... / end".
std::string PatternToString(const Rule& r);
std::string ActionsToString(const Rule& r);

// ---- Field locations shared by the lowering and the executor ----

/// Where an IR field lives in an rte_flow item's spec.
struct FieldLoc {
  rte_flow_item_type type = RTE_FLOW_ITEM_TYPE_END;
  uint16_t offset = 0;
  uint8_t size = 0;
  bool host_order = false;  ///< META/TAG data are host-endian uint32_t
  uint8_t tag_index = 0;    ///< for TAG
  flowtables::Field field = flowtables::Field::kInPort;
};
/// Every field an item type can carry, for the executor (empty for unknown types).
const std::vector<FieldLoc>& FieldsOfItem(rte_flow_item_type t);
/// Size of an item type's spec struct (0 if unknown).
size_t ItemSize(rte_flow_item_type t);
const char* ItemName(rte_flow_item_type t);

}  // namespace nicflow::host::rteflow
