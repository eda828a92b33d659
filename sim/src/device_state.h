// Private: SimNic's compiled state, shared by the control plane (device_control.cc), the fast
// path (datapath.cc) and the tracer (trace.cc).
#pragma once

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash.h"
#include "absl/strings/string_view.h"
#include "flow_cache.h"
#include "name_arena.h"
#include "nicflow/sim/classifier.h"
#include "nicflow/sim/device.h"
#include "nicflow/sim/maglev.h"

namespace nicflow::sim {

using flowtables::ActionKind;
using flowtables::TableId;

/// An action with names resolved to indices, laid out flat for the per-packet interpreter.
/// Compiled lists correspond 1:1 to their source lists (traces print the source action).
struct CAction {
  ActionKind kind = ActionKind::kDrop;
  Field field = Field::kMetaFlags;  // SetField
  U128 value;                       // SetField value; Dnat/Snat address
  U128 mask;                        // SetField mask
  PortId port = kInvalidPort;       // Output
  TableId table = 0;                // Goto
  uint32_t group = 0;               // Group
  bool v6 = false;                  // Dnat/Snat address family
  uint16_t l4_port = 0;             // Dnat port (0 keeps); Snat range low
  uint16_t l4_port_hi = 0;          // Snat range high
  uint16_t zone = 0;                // CtLookup/CtCommit
};

// What the per-packet path reads comes first (one cache line), the control plane's copy after.
struct CEntry {
  std::vector<CAction> actions;
  EntryCounters counters;
  flowtables::Entry entry;  // canonical (match sorted by field); indexed by entry_by_key
  size_t key_hash = 0;      // EntryKeyHash(entry)
  bool live = false;
};

/// Hash of flowtables::EntryKey(e) for an entry in canonical form, built in a reused buffer.
size_t EntryKeyHash(const flowtables::Entry& e);
/// EntryKey(a) == EntryKey(b) for canonical entries, without building either key.
bool SameEntryKey(const flowtables::Entry& a, const flowtables::Entry& b);
/// EntryKey(e) == key, building EntryKey(e) in a reused buffer.
bool EntryHasKey(const flowtables::Entry& e, absl::string_view key);

// Installed entries by identity (flowtables::EntryKey) without a stored key: the set holds entry
// slots, hashed as the key's bytes (CEntry::key_hash, computed once per entry) and compared by
// what the key encodes. A string key per entry made the apply allocate, hash and fault in ~100
// bytes per entry a second time (docs/performance.md, "Host and rte_flow").
struct EntryProbe {
  const flowtables::Entry* entry;  // canonical
  size_t hash;                     // EntryKeyHash(*entry)
};
struct EntrySlotHash {
  using is_transparent = void;
  const std::vector<CEntry>* entries;
  size_t operator()(uint32_t slot) const { return (*entries)[slot].key_hash; }
  size_t operator()(const EntryProbe& p) const { return p.hash; }
  size_t operator()(absl::string_view key) const { return absl::Hash<absl::string_view>{}(key); }
};
struct EntrySlotEq {
  using is_transparent = void;
  const std::vector<CEntry>* entries;
  bool operator()(uint32_t a, uint32_t b) const {
    return a == b || (*this)(a, EntryProbe{&(*entries)[b].entry, (*entries)[b].key_hash});
  }
  bool operator()(uint32_t slot, const EntryProbe& p) const {
    const CEntry& e = (*entries)[slot];
    return e.key_hash == p.hash && SameEntryKey(e.entry, *p.entry);
  }
  bool operator()(const EntryProbe& p, uint32_t slot) const { return (*this)(slot, p); }
  bool operator()(uint32_t slot, absl::string_view key) const {
    return EntryHasKey((*entries)[slot].entry, key);
  }
  bool operator()(absl::string_view key, uint32_t slot) const { return (*this)(slot, key); }
};
using EntryIndex = absl::flat_hash_set<uint32_t, EntrySlotHash, EntrySlotEq>;

struct CTable {
  flowtables::TableSchema schema;
  std::unique_ptr<Classifier> cls;
  std::vector<CAction> defaults;
  TableCounters counters;
  size_t entries = 0;
};

// As CEntry: the per-packet fields first. The hash fields are copied inline (up to
// kInlineHashFields) so a pick reads no other allocation than the Maglev slot and the bucket.
inline constexpr size_t kInlineHashFields = 12;
struct CGroup {
  MaglevTable maglev;
  std::vector<std::vector<CAction>> buckets;
  uint8_t n_hash = 0;  // > kInlineHashFields: FlowHash reads group.hash_fields
  bool affinity = false;
  std::array<Field, kInlineHashFields> hash{};
  flowtables::SelectGroup group;
  std::vector<uint64_t> label_hash;
  uint32_t refs = 0;  // entries whose actions name the group
  bool live = false;
};

struct AffinityKey {
  uint32_t group;
  U128 client;
  friend bool operator==(const AffinityKey&, const AffinityKey&) = default;
  template <typename H>
  friend H AbslHashValue(H h, const AffinityKey& k) {
    return H::combine(std::move(h), k.group, k.client.hi, k.client.lo);
  }
};
struct AffinityRecord {
  uint64_t label_hash;  // the bucket, by identity, so group edits cannot redirect a client
  uint64_t last_ns;
};

struct SimNic::State {
  DeviceProfile profile;
  std::unique_ptr<Clock> own_clock;
  const Clock* clock = nullptr;
  std::unique_ptr<Conntrack> ct;

  bool has_program = false;
  std::vector<CTable> tables;
  std::vector<CEntry> entries;  // slot = classifier rule id
  std::vector<uint32_t> free_entries;
  EntryIndex entry_by_key{0, EntrySlotHash{&entries}, EntrySlotEq{&entries}};
  std::vector<CGroup> groups;
  std::vector<uint32_t> free_groups;
  NameArena group_names;  // the keys of group_by_name
  absl::flat_hash_map<absl::string_view, uint32_t> group_by_name;

  std::vector<PortInfo> ports;
  absl::flat_hash_map<std::string, PortId> port_by_name;
  std::vector<PortCounters> port_counters;

  DeviceCounters counters;
  absl::flat_hash_map<AffinityKey, AffinityRecord> affinity;

  uint64_t ops = 0;
  std::optional<uint64_t> fault_at;  // absolute op number that fails
  absl::Status fault_status;

  FlowCache flow_cache{0};
  // Tables large enough that their lookups miss the cache: ProcessBatch prefetches their state
  // for the frames the flow cache does not answer.
  std::vector<TableId> big_tables;
  bool key_tcp_flags = false;  // some table matches TCP flags: they belong in the flow key

  mutable std::optional<flowtables::Program> program_cache;
  std::vector<uint8_t> scratch;  // REJECT replies are built here
};

// ---- Shared per-packet helpers (datapath.cc), used by the tracer too ----

/// Writes the masked SetField value; header fields the packet lacks are left alone.
void ApplySetField(PacketFields& f, const CAction& a) noexcept;
/// Rewrites the destination (and port) in `f`; false on a family mismatch.
bool ApplyDnat(PacketFields& f, const ParsedPacket& p, const CAction& a) noexcept;
/// The conntrack tuple of the packet as `f` describes it now.
CtTuple TupleOf(const PacketFields& f, const ParsedPacket& p, uint16_t zone) noexcept;
/// Rewrites the source in `f` and picks a source port so the translated tuple is unused.
/// False on a family mismatch (`*exhausted` false) or when no port is free (`*exhausted` true).
bool ApplySnat(const Conntrack& ct, PacketFields& f, const ParsedPacket& p, const CAction& a,
               bool* exhausted) noexcept;
/// Rewrites `f` as a conntrack hit says (translated tuple, or reverse NAT for replies).
void ApplyCtNat(const CtEntry& e, CtDir dir, PacketFields& f, const ParsedPacket& p) noexcept;
/// The hash of a group's hash fields for a packet.
uint64_t FlowHash(const CGroup& g, const PacketFields& f) noexcept;
/// The L4 "flags" conntrack tracks: TCP flags, or the first SCTP chunk type.
uint8_t L4Flags(const ParsedPacket& p) noexcept;
/// Builds a TCP RST or ICMP(v6) port unreachable answering `in` into `out`; returns its length
/// (0 if it does not fit or the packet must not be answered).
size_t BuildRejectReply(std::span<const uint8_t> in, const ParsedPacket& p,
                        std::span<uint8_t> out) noexcept;

}  // namespace nicflow::sim
