// The pipeline program: nicflow's intermediate representation (IR).
//
// What it is
// ----------
// The compiler turns a node's view of the cluster into a *program*: an ordered set of
// match-action tables, select groups and the ports they output to. Every backend executes the
// same program: the software simulator (sim/) interprets it and is the reference semantics, the
// rte_flow backend lowers it to DPDK flow rules, the FPGA backend encodes it into a table image.
//
// The model follows P4Runtime in keeping a table's *schema* (its key fields with their match
// kinds, its default action, its size) apart from its *entries*, which refer to the schema. It
// follows OpenFlow/OVS for packet-processing actions (goto, groups, conntrack).
//
// Semantics (what the simulator implements and every backend must preserve)
// --------------------------------------------------------------------------
// * A packet enters with `in_port` and `meta.port_class` set by the device, every other metadata
//   field zero, and starts at the program's first table (`Program::tables[0]`).
// * In a table, the entry with the highest `priority` among those whose every FieldMatch matches
//   wins. Equal priorities must not overlap (the compiler guarantees it; the simulator breaks a
//   tie by insertion order and counts it). A key field an entry does not mention is a wildcard.
//   A field the packet does not carry (e.g. ipv6_dst on an IPv4 packet, l4_dst on ICMP) matches
//   only a wildcard.
// * The winning entry's actions run in order. `SetField` writes `(old & ~mask) | (value & mask)`.
//   `Group` runs the chosen bucket's actions in its place. Processing ends at the first terminal
//   action (Drop, Reject, Output, Punt) or moves on with Goto, which may only name a later table
//   (programs are loop-free by construction; Validate() checks it). A list that ends without a
//   terminal action or Goto drops the packet (and the simulator counts it as "fell off").
// * A miss runs the table's `default_actions`.
// * CtLookup looks the packet up in conntrack: it sets `ct_state` and, for a connection that has
//   a NAT binding, rewrites the packet as the binding says (original direction: the committed
//   DNAT/SNAT; reply direction: their reverse). CtCommit records the connection with the NAT this
//   pass applied so far, so replies are reverse-translated and later packets skip the policy
//   stages.
//
// Identity and diffs
// ------------------
// An entry is identified by (table, priority, match); a group by its name. Diff() compares two
// programs by those identities, so the compiler must emit stable names, stable metadata tag
// values and canonical matches for unchanged intent: one endpoint more changes one group and a
// handful of entries, never a rebuild.
//
// Thread-safety: plain values; a Program is immutable once built and can be shared across threads.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "nicflow/flowtables/ip.h"

namespace nicflow::flowtables {

/// A field value of up to 128 bits (network-order semantics: hi holds the most significant half).
struct U128 {
  uint64_t hi = 0;
  uint64_t lo = 0;

  static constexpr U128 Of(uint64_t v) { return {0, v}; }
  /// The low `bits` bits set.
  static U128 Ones(int bits);
  static U128 FromIp(const IpAddr& a);
  /// Mask of the top `prefix_len_bits` bits of a field `width_bits` wide.
  static U128 PrefixMask(int width_bits, int prefix_len_bits);

  friend constexpr U128 operator&(U128 a, U128 b) { return {a.hi & b.hi, a.lo & b.lo}; }
  friend constexpr U128 operator|(U128 a, U128 b) { return {a.hi | b.hi, a.lo | b.lo}; }
  friend constexpr U128 operator~(U128 a) { return {~a.hi, ~a.lo}; }
  friend constexpr bool operator==(U128 a, U128 b) = default;
  friend constexpr auto operator<=>(U128 a, U128 b) = default;
  std::string ToHex() const;
};

/// Packet header and metadata fields a table can match and an action can set.
enum class Field : uint8_t {
  kInPort,         ///< device port the packet arrived on (32 bits)
  kEthType,        ///< 0x0800 IPv4, 0x86dd IPv6 (16 bits)
  kIpProto,        ///< IPv4 protocol / IPv6 next header after extension headers (8 bits)
  kIpv4Src,        ///< (32 bits)
  kIpv4Dst,        ///< (32 bits)
  kIpv6Src,        ///< (128 bits)
  kIpv6Dst,        ///< (128 bits)
  kL4Src,          ///< TCP/UDP/SCTP source port (16 bits)
  kL4Dst,          ///< TCP/UDP/SCTP destination port (16 bits)
  kIcmpType,       ///< ICMP or ICMPv6 type (8 bits)
  kTcpFlags,       ///< TCP flags byte (8 bits)
  kCtState,        ///< conntrack state bits, see CtState (8 bits)
  kMetaPortClass,  ///< PortClass of in_port, set by the device (8 bits)
  kMetaFlags,      ///< pipeline flags, see MetaFlag (32 bits)
  kMetaSrcSet,     ///< egress policy set of the sending local pod (32 bits)
  kMetaDstSet,     ///< ingress policy set of the receiving local pod (32 bits)
  kMetaPeerBits,   ///< which policy rules' peers matched (32 bits)
  kCount,
};

/// Static description of a field.
struct FieldInfo {
  Field field;
  std::string_view name;  ///< e.g. "ipv4_dst", "meta.flags"; stable, used in JSON and the CLI
  int width_bits;
  bool is_metadata;
};
const FieldInfo& GetFieldInfo(Field f);
std::optional<Field> FieldFromName(std::string_view name);

/// Bits of Field::kCtState (as OVS ct_state).
enum CtState : uint8_t {
  kCtNew = 1 << 0,  ///< first packet of a connection not yet committed
  kCtEst = 1 << 1,  ///< part of a committed connection
  kCtRel = 1 << 2,  ///< related to a committed connection (ICMP errors)
  kCtRpl = 1 << 3,  ///< in the reply direction
  kCtInv = 1 << 4,  ///< invalid (e.g. TCP segment that cannot start a connection)
  kCtTrk = 1 << 5,  ///< conntrack looked at the packet
};

/// Values of Field::kMetaPortClass.
enum class PortClass : uint8_t { kNone = 0, kHost = 1, kUplink = 2, kPod = 3 };

/// Bits of Field::kMetaFlags.
enum MetaFlag : uint32_t {
  kFlagMasq = 1u << 0,        ///< masquerade (SNAT to a node IP) before leaving
  kFlagTranslated = 1u << 1,  ///< DNATed to a Service endpoint
  kFlagLocalSrc = 1u << 2,    ///< source is local traffic (kube-proxy detect-local)
  kFlagFromHost = 1u << 3,    ///< sent by the node itself
  kFlagServiceHit = 1u << 4,  ///< matched a Service frontend
  kFlagClusterIp = 1u << 5,   ///< matched a ClusterIP frontend (masq_mark decides masquerade)
  /// A pod reaching itself through a Service (set by masq_mark's hairpin entries); policy lets
  /// it through, since "a pod cannot block access to itself" (NetworkPolicy API).
  kFlagHairpin = 1u << 6,
};

using TableId = uint16_t;

enum class MatchKind : uint8_t { kExact, kTernary, kLpm, kRange };
std::string_view MatchKindName(MatchKind k);

struct ExactMatch {
  U128 value;
  friend bool operator==(const ExactMatch&, const ExactMatch&) = default;
};
struct TernaryMatch {
  U128 value;  ///< bits outside `mask` are zero
  U128 mask;
  friend bool operator==(const TernaryMatch&, const TernaryMatch&) = default;
};
struct LpmMatch {
  U128 value;  ///< bits past the prefix are zero
  int prefix_len_bits = 0;
  friend bool operator==(const LpmMatch&, const LpmMatch&) = default;
};
struct RangeMatch {
  U128 lo;  ///< inclusive
  U128 hi;  ///< inclusive
  friend bool operator==(const RangeMatch&, const RangeMatch&) = default;
};
using MatchValue = std::variant<ExactMatch, TernaryMatch, LpmMatch, RangeMatch>;

/// One key field's match in an entry. Its kind must be the one the table schema declares.
struct FieldMatch {
  Field field = Field::kInPort;
  MatchValue value;
  friend bool operator==(const FieldMatch&, const FieldMatch&) = default;
};

/// Where an Output sends a packet. Ports are symbolic so that a pod's VF keeps its name across
/// compiles; the device maps names to its port numbers.
struct PortRef {
  enum class Kind : uint8_t { kHost, kUplink, kPod };
  Kind kind = Kind::kUplink;
  std::string pod;               ///< "namespace/name" for kPod
  std::string ToString() const;  ///< "host", "uplink", "vf:ns/name"
  friend bool operator==(const PortRef&, const PortRef&) = default;
};

struct DropAction {
  friend bool operator==(const DropAction&, const DropAction&) = default;
};
/// Drops and answers the sender: TCP RST for TCP, ICMP(v6) port unreachable otherwise.
struct RejectAction {
  friend bool operator==(const RejectAction&, const RejectAction&) = default;
};
struct OutputAction {
  PortRef port;
  friend bool operator==(const OutputAction&, const OutputAction&) = default;
};
struct GotoAction {
  TableId table = 0;
  friend bool operator==(const GotoAction&, const GotoAction&) = default;
};
struct SetFieldAction {
  Field field = Field::kMetaFlags;
  U128 value;
  U128 mask;  ///< bits of the field written
  friend bool operator==(const SetFieldAction&, const SetFieldAction&) = default;
};
/// Rewrites the destination address and, when `port` is non-zero, the L4 destination port.
struct DnatAction {
  IpAddr addr;
  uint16_t port = 0;
  friend bool operator==(const DnatAction&, const DnatAction&) = default;
};
/// Rewrites the source to `addr`, allocating a source port in [port_lo, port_hi] so the
/// translated 5-tuple is unique (kept when it already is, as Linux does).
struct SnatAction {
  IpAddr addr;
  uint16_t port_lo = 1024;
  uint16_t port_hi = 65535;
  friend bool operator==(const SnatAction&, const SnatAction&) = default;
};
/// Runs one bucket of the named select group.
struct GroupAction {
  std::string group;
  friend bool operator==(const GroupAction&, const GroupAction&) = default;
};
struct CtLookupAction {
  uint16_t zone = 0;
  friend bool operator==(const CtLookupAction&, const CtLookupAction&) = default;
};
struct CtCommitAction {
  uint16_t zone = 0;
  friend bool operator==(const CtCommitAction&, const CtCommitAction&) = default;
};
/// Hands the packet to the software datapath (the device cannot finish it).
struct PuntAction {
  friend bool operator==(const PuntAction&, const PuntAction&) = default;
};

using Action =
    std::variant<DropAction, RejectAction, OutputAction, GotoAction, SetFieldAction, DnatAction,
                 SnatAction, GroupAction, CtLookupAction, CtCommitAction, PuntAction>;
enum class ActionKind : uint8_t {
  kDrop,
  kReject,
  kOutput,
  kGoto,
  kSetField,
  kDnat,
  kSnat,
  kGroup,
  kCtLookup,
  kCtCommit,
  kPunt,
  kCount,
};
inline ActionKind KindOf(const Action& a) { return static_cast<ActionKind>(a.index()); }
std::string_view ActionKindName(ActionKind k);

/// The Kubernetes object (and the part of it) an entry or group came from.
struct Origin {
  std::string kind;  ///< "Service", "NetworkPolicy", "Pod", "Node", "ServiceCIDR", "nicflow"
  std::string ns;    ///< empty for cluster-scoped objects
  std::string name;
  std::string detail;            ///< e.g. "port http", "ingress[0]", "egress[1] to[2]"
  std::string ToString() const;  ///< "Service shop/web port http"
  friend bool operator==(const Origin&, const Origin&) = default;
};

struct KeyField {
  Field field = Field::kInPort;
  MatchKind kind = MatchKind::kExact;
  friend bool operator==(const KeyField&, const KeyField&) = default;
};

/// A table's schema: what it matches and what it does on a miss.
struct TableSchema {
  TableId id = 0;
  std::string name;
  std::vector<KeyField> keys;
  std::vector<Action> default_actions;
  std::string doc;  ///< one line: what the stage is for
};

struct Entry {
  TableId table = 0;
  int32_t priority = 0;           ///< higher wins
  std::vector<FieldMatch> match;  ///< canonical: sorted by Field, at most one per field
  std::vector<Action> actions;
  Origin origin;
};

struct Bucket {
  uint32_t weight = 1;
  std::vector<Action> actions;
  std::string label;  ///< e.g. "10.244.1.10:8080"
  friend bool operator==(const Bucket&, const Bucket&) = default;
};

/// A select group: one bucket per packet, chosen by weighted consistent hashing of `hash_fields`.
struct SelectGroup {
  std::string name;  ///< stable identity, e.g. "svc/shop/web/http/v4/cluster"
  std::vector<Field> hash_fields;
  /// ClientIP session affinity: a client keeps its bucket for this long after its last packet.
  std::optional<uint32_t> affinity_timeout_s;
  std::vector<Bucket> buckets;
  Origin origin;
};

/// A port the program outputs to (and the local pod behind a VF).
struct PortDecl {
  PortRef ref;
  std::vector<IpAddr> ips;  ///< pod IPs for a VF, node IPs for host
  /// The VF a pod's port sits on, as the kubelet's PodResources API reports it (the VF's PCI
  /// address, "0000:3b:00.2"); empty when unknown. Backends with real ports (rte_flow) map it to
  /// their port; the simulator keeps the symbolic port and only carries it.
  std::string vf_pci = {};
  friend bool operator==(const PortDecl&, const PortDecl&) = default;
};

struct Program {
  std::vector<TableSchema> tables;          ///< pipeline order; tables[i].id == i
  std::vector<std::vector<Entry>> entries;  ///< entries[table id]
  std::vector<SelectGroup> groups;          ///< sorted by name
  std::vector<PortDecl> ports;

  const TableSchema* FindTable(std::string_view name) const;
  const SelectGroup* FindGroup(std::string_view name) const;
  size_t EntryCount() const;
};

/// Sorts `e.match` by field so equal matches compare equal.
void CanonicalizeMatch(Entry& e);

/// Checks structure: table ids in order, matches of the declared kinds on declared key fields,
/// values within field widths, gotos forward only, groups referenced exist, no duplicate entry
/// identity or group name. Errors: InvalidArgument naming table, entry and field.
absl::Status Validate(const Program& p);

/// One step of a delta. Entry ops carry the new entry (add/modify) or the old one (delete).
struct DeltaOp {
  enum class Kind : uint8_t {
    kAddGroup,
    kModifyGroup,
    kAddEntry,
    kModifyEntry,
    kDeleteEntry,
    kDeleteGroup,
  };
  Kind kind = Kind::kAddEntry;
  Entry entry;
  SelectGroup group;
};
std::string_view DeltaOpKindName(DeltaOp::Kind k);

/// Changes that turn one program into another, in make-before-break order: groups added and
/// modified first, then entries added and modified from the last table to the first (targets
/// before the entries that lead to them), then entries deleted from the first table to the last,
/// then groups deleted. Applying the ops in order never exposes a reference to something absent.
struct Delta {
  std::vector<DeltaOp> ops;
  bool empty() const { return ops.empty(); }
};

/// Computes the minimal delta from `from` to `to`. Both must have the same table schemas
/// (FailedPrecondition otherwise: a schema change needs a full reinstall).
absl::StatusOr<Delta> Diff(const Program& from, const Program& to);

/// Applies `d` to `p` (the reference for what a device must end up holding). Errors:
/// FailedPrecondition when an op does not fit `p` (adding an existing entry, deleting a missing
/// one); `p` is unchanged on error.
absl::Status ApplyDelta(Program& p, const Delta& d);
/// The same without the safety copy, for callers that already know `d` fits `p` (a delta the
/// device just accepted): O(ops × log entries) on tables in canonical order (priority
/// descending, then EntryKey). On error `p` holds the ops before the failing one.
absl::Status ApplyDeltaInPlace(Program& p, const Delta& d);

/// Text forms used by dumps, traces and JSON.
std::string MatchToString(const FieldMatch& m);
std::string MatchesToString(const std::vector<FieldMatch>& ms);
std::string ActionToString(const Action& a, const Program* p = nullptr);
std::string ActionsToString(const std::vector<Action>& as, const Program* p = nullptr);
/// A field value as text: IPs dotted or RFC 5952, ports and small fields decimal, flags by name.
std::string FieldValueToString(Field f, U128 v);

/// A compact identity of an entry: table, priority and canonical match. Equal keys mean the same
/// entry for Diff and for device read-back. Binary: never put it in text users read.
std::string EntryKey(const Entry& e);
/// The same identity as text for messages: "priority 100 [ip_dst=10.96.0.10/32 ...] (Service
/// shop/web port http)". Callers name the table.
std::string EntryText(const Entry& e);

}  // namespace nicflow::flowtables
