#include "nicflow/flowtables/ir.h"

#include <algorithm>
#include <array>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "nicflow/flowtables/entry_key.h"
#include "nicflow/flowtables/status.h"

namespace nicflow::flowtables {

U128 U128::Ones(int bits) {
  if (bits <= 0) return {};
  if (bits >= 128) return {~uint64_t{0}, ~uint64_t{0}};
  if (bits >= 64) {
    return {bits == 64 ? 0 : (~uint64_t{0} >> (128 - bits)), ~uint64_t{0}};
  }
  return {0, (uint64_t{1} << bits) - 1};
}

U128 U128::FromIp(const IpAddr& a) {
  if (a.is_v4()) return Of(a.v4());
  U128 v;
  for (int i = 0; i < 8; ++i) v.hi = (v.hi << 8) | a.bytes()[i];
  for (int i = 8; i < 16; ++i) v.lo = (v.lo << 8) | a.bytes()[i];
  return v;
}

U128 U128::PrefixMask(int width_bits, int prefix_len_bits) {
  return Ones(width_bits) & ~Ones(width_bits - prefix_len_bits);
}

std::string U128::ToHex() const {
  if (hi == 0) return absl::StrFormat("0x%x", lo);
  return absl::StrFormat("0x%x%016x", hi, lo);
}

namespace {

constexpr std::array<FieldInfo, static_cast<size_t>(Field::kCount)> kFieldInfos = {{
    {Field::kInPort, "in_port", 32, true},
    {Field::kEthType, "eth_type", 16, false},
    {Field::kIpProto, "ip_proto", 8, false},
    {Field::kIpv4Src, "ipv4_src", 32, false},
    {Field::kIpv4Dst, "ipv4_dst", 32, false},
    {Field::kIpv6Src, "ipv6_src", 128, false},
    {Field::kIpv6Dst, "ipv6_dst", 128, false},
    {Field::kL4Src, "l4_src", 16, false},
    {Field::kL4Dst, "l4_dst", 16, false},
    {Field::kIcmpType, "icmp_type", 8, false},
    {Field::kTcpFlags, "tcp_flags", 8, false},
    {Field::kCtState, "ct_state", 8, true},
    {Field::kMetaPortClass, "meta.port_class", 8, true},
    {Field::kMetaFlags, "meta.flags", 32, true},
    {Field::kMetaSrcSet, "meta.src_set", 32, true},
    {Field::kMetaDstSet, "meta.dst_set", 32, true},
    {Field::kMetaPeerBits, "meta.peer_bits", 32, true},
}};

}  // namespace

const FieldInfo& GetFieldInfo(Field f) { return kFieldInfos[static_cast<size_t>(f)]; }

std::optional<Field> FieldFromName(std::string_view name) {
  for (const FieldInfo& info : kFieldInfos) {
    if (info.name == name) return info.field;
  }
  return std::nullopt;
}

std::string_view MatchKindName(MatchKind k) {
  switch (k) {
    case MatchKind::kExact:
      return "exact";
    case MatchKind::kTernary:
      return "ternary";
    case MatchKind::kLpm:
      return "lpm";
    case MatchKind::kRange:
      return "range";
  }
  return "?";
}

std::string_view ActionKindName(ActionKind k) {
  static constexpr std::array<std::string_view, static_cast<size_t>(ActionKind::kCount)> kNames = {
      "drop", "reject", "output",    "goto",      "set_field", "dnat",
      "snat", "group",  "ct_lookup", "ct_commit", "punt"};
  return kNames[static_cast<size_t>(k)];
}

std::string PortRef::ToString() const {
  switch (kind) {
    case Kind::kHost:
      return "host";
    case Kind::kUplink:
      return "uplink";
    case Kind::kPod:
      return "vf:" + pod;
  }
  return "?";
}

std::string Origin::ToString() const {
  std::string out = kind;
  if (!name.empty()) absl::StrAppend(&out, " ", ns.empty() ? name : absl::StrCat(ns, "/", name));
  if (!detail.empty()) absl::StrAppend(&out, " ", detail);
  return out;
}

const TableSchema* Program::FindTable(std::string_view name) const {
  for (const TableSchema& t : tables) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

const SelectGroup* Program::FindGroup(std::string_view name) const {
  auto it = std::lower_bound(groups.begin(), groups.end(), name,
                             [](const SelectGroup& g, std::string_view n) { return g.name < n; });
  if (it != groups.end() && it->name == name) return &*it;
  return nullptr;
}

size_t Program::EntryCount() const {
  size_t n = 0;
  for (const auto& t : entries) n += t.size();
  return n;
}

void CanonicalizeMatch(Entry& e) {
  std::sort(e.match.begin(), e.match.end(),
            [](const FieldMatch& a, const FieldMatch& b) { return a.field < b.field; });
}

// ---------------------------------------------------------------------------------------------
// Text forms

namespace {

std::string FlagsToString(uint64_t v) {
  static constexpr std::array<std::pair<uint32_t, std::string_view>, 7> kNames = {{
      {kFlagMasq, "masq"},
      {kFlagTranslated, "translated"},
      {kFlagLocalSrc, "local_src"},
      {kFlagFromHost, "from_host"},
      {kFlagServiceHit, "svc"},
      {kFlagClusterIp, "cluster_ip"},
      {kFlagHairpin, "hairpin"},
  }};
  std::vector<std::string> parts;
  for (const auto& [bit, name] : kNames) {
    if (v & bit) {
      parts.emplace_back(name);
      v &= ~uint64_t{bit};
    }
  }
  if (v != 0) parts.push_back(absl::StrFormat("0x%x", v));
  return parts.empty() ? "0" : absl::StrJoin(parts, "|");
}

std::string CtStateToString(uint64_t v) {
  static constexpr std::array<std::pair<uint8_t, std::string_view>, 6> kNames = {{
      {kCtTrk, "trk"},
      {kCtNew, "new"},
      {kCtEst, "est"},
      {kCtRel, "rel"},
      {kCtRpl, "rpl"},
      {kCtInv, "inv"},
  }};
  std::vector<std::string> parts;
  for (const auto& [bit, name] : kNames) {
    if (v & bit) parts.emplace_back(name);
  }
  return parts.empty() ? "0" : absl::StrJoin(parts, "|");
}

IpAddr IpFromU128(Field f, U128 v) {
  if (GetFieldInfo(f).width_bits == 32) return IpAddr::V4(static_cast<uint32_t>(v.lo));
  std::array<uint8_t, 16> b{};
  for (int i = 0; i < 8; ++i) b[i] = static_cast<uint8_t>(v.hi >> (56 - 8 * i));
  for (int i = 0; i < 8; ++i) b[8 + i] = static_cast<uint8_t>(v.lo >> (56 - 8 * i));
  return IpAddr::V6(b);
}

bool IsIpField(Field f) {
  return f == Field::kIpv4Src || f == Field::kIpv4Dst || f == Field::kIpv6Src ||
         f == Field::kIpv6Dst;
}

std::string TernaryToString(Field f, const TernaryMatch& t) {
  if (f == Field::kMetaFlags || f == Field::kCtState) {
    // Flag matches read as +set-clear, like OVS ct_state.
    std::string out;
    auto name = [&](uint64_t bit) {
      return f == Field::kMetaFlags ? FlagsToString(bit) : CtStateToString(bit);
    };
    for (int bit = 0; bit < 32; ++bit) {
      uint64_t b = uint64_t{1} << bit;
      if (!(t.mask.lo & b)) continue;
      absl::StrAppend(&out, (t.value.lo & b) ? "+" : "-", name(b));
    }
    return out.empty() ? "*" : out;
  }
  U128 full = U128::Ones(GetFieldInfo(f).width_bits);
  if (t.mask == full) return FieldValueToString(f, t.value);
  return absl::StrCat(FieldValueToString(f, t.value), "/", t.mask.ToHex());
}

}  // namespace

std::string FieldValueToString(Field f, U128 v) {
  if (IsIpField(f)) return IpFromU128(f, v).ToString();
  switch (f) {
    case Field::kMetaFlags:
      return FlagsToString(v.lo);
    case Field::kCtState:
      return CtStateToString(v.lo);
    case Field::kEthType:
    case Field::kMetaSrcSet:
    case Field::kMetaDstSet:
    case Field::kMetaPeerBits:
      return v.ToHex();
    case Field::kMetaPortClass:
      switch (static_cast<PortClass>(v.lo)) {
        case PortClass::kHost:
          return "host";
        case PortClass::kUplink:
          return "uplink";
        case PortClass::kPod:
          return "pod";
        case PortClass::kNone:
          return "none";
      }
      return v.ToHex();
    default:
      return absl::StrCat(v.lo);
  }
}

std::string MatchToString(const FieldMatch& m) {
  std::string_view name = GetFieldInfo(m.field).name;
  return std::visit(
      [&](const auto& mv) -> std::string {
        using T = std::decay_t<decltype(mv)>;
        if constexpr (std::is_same_v<T, ExactMatch>) {
          return absl::StrCat(Sv(name), "=", FieldValueToString(m.field, mv.value));
        } else if constexpr (std::is_same_v<T, TernaryMatch>) {
          return absl::StrCat(Sv(name), "=", TernaryToString(m.field, mv));
        } else if constexpr (std::is_same_v<T, LpmMatch>) {
          return absl::StrCat(Sv(name), "=", FieldValueToString(m.field, mv.value), "/",
                              mv.prefix_len_bits);
        } else {
          if (mv.lo == mv.hi)
            return absl::StrCat(Sv(name), "=", FieldValueToString(m.field, mv.lo));
          return absl::StrCat(Sv(name), "=", FieldValueToString(m.field, mv.lo), "-",
                              FieldValueToString(m.field, mv.hi));
        }
      },
      m.value);
}

std::string MatchesToString(const std::vector<FieldMatch>& ms) {
  if (ms.empty()) return "*";
  return absl::StrJoin(ms, ",", [](std::string* out, const FieldMatch& m) {
    absl::StrAppend(out, MatchToString(m));
  });
}

std::string ActionToString(const Action& a, const Program* p) {
  return std::visit(
      [&](const auto& act) -> std::string {
        using T = std::decay_t<decltype(act)>;
        if constexpr (std::is_same_v<T, DropAction>) {
          return "drop";
        } else if constexpr (std::is_same_v<T, RejectAction>) {
          return "reject";
        } else if constexpr (std::is_same_v<T, OutputAction>) {
          return absl::StrCat("output:", act.port.ToString());
        } else if constexpr (std::is_same_v<T, GotoAction>) {
          if (p != nullptr && act.table < p->tables.size()) {
            return absl::StrCat("goto:", p->tables[act.table].name);
          }
          return absl::StrCat("goto:", act.table);
        } else if constexpr (std::is_same_v<T, SetFieldAction>) {
          const FieldInfo& info = GetFieldInfo(act.field);
          if (act.mask == U128::Ones(info.width_bits)) {
            return absl::StrCat("set:", Sv(info.name), "=",
                                FieldValueToString(act.field, act.value));
          }
          return absl::StrCat("set:", Sv(info.name), "=", FieldValueToString(act.field, act.value),
                              "/", FieldValueToString(act.field, act.mask));
        } else if constexpr (std::is_same_v<T, DnatAction>) {
          if (act.port == 0) return absl::StrCat("dnat:", act.addr.ToString());
          return absl::StrCat("dnat:", FormatEndpoint(act.addr, act.port));
        } else if constexpr (std::is_same_v<T, SnatAction>) {
          return absl::StrCat("snat:", act.addr.ToString(), ":", act.port_lo, "-", act.port_hi);
        } else if constexpr (std::is_same_v<T, GroupAction>) {
          return absl::StrCat("group:", act.group);
        } else if constexpr (std::is_same_v<T, CtLookupAction>) {
          return absl::StrCat("ct(zone=", act.zone, ")");
        } else if constexpr (std::is_same_v<T, CtCommitAction>) {
          return absl::StrCat("ct(commit,zone=", act.zone, ")");
        } else {
          return "punt";
        }
      },
      a);
}

std::string ActionsToString(const std::vector<Action>& as, const Program* p) {
  if (as.empty()) return "(none)";
  return absl::StrJoin(as, ",", [p](std::string* out, const Action& a) {
    absl::StrAppend(out, ActionToString(a, p));
  });
}

// ---------------------------------------------------------------------------------------------
// Identity

namespace {

void AppendU128(std::string& out, U128 v) {
  for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>(v.hi >> (8 * i)));
  for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>(v.lo >> (8 * i)));
}

}  // namespace

std::string EntryText(const Entry& e) {
  return absl::StrCat("priority ", e.priority, " [", MatchesToString(e.match), "] (",
                      e.origin.ToString(), ")");
}

void AppendEntryKey(const Entry& e, std::string& key) {
  key.reserve(key.size() + 8 + e.match.size() * 34);
  key.push_back(static_cast<char>(e.table >> 8));
  key.push_back(static_cast<char>(e.table));
  for (int i = 3; i >= 0; --i) key.push_back(static_cast<char>(e.priority >> (8 * i)));
  for (const FieldMatch& m : e.match) {
    key.push_back(static_cast<char>(m.field));
    key.push_back(static_cast<char>(m.value.index()));
    std::visit(
        [&](const auto& mv) {
          using T = std::decay_t<decltype(mv)>;
          if constexpr (std::is_same_v<T, ExactMatch>) {
            AppendU128(key, mv.value);
          } else if constexpr (std::is_same_v<T, TernaryMatch>) {
            AppendU128(key, mv.value);
            AppendU128(key, mv.mask);
          } else if constexpr (std::is_same_v<T, LpmMatch>) {
            AppendU128(key, mv.value);
            key.push_back(static_cast<char>(mv.prefix_len_bits));
          } else {
            AppendU128(key, mv.lo);
            AppendU128(key, mv.hi);
          }
        },
        m.value);
  }
}

std::string EntryKey(const Entry& e) {
  std::string key;
  AppendEntryKey(e, key);
  return key;
}

// ---------------------------------------------------------------------------------------------
// Validation

namespace {

std::string EntryName(const Program& p, const Entry& e) {
  std::string table = e.table < p.tables.size() ? p.tables[e.table].name : absl::StrCat(e.table);
  return absl::StrCat("table ", table, " entry ", EntryText(e));
}

absl::Status ValidateMatch(const TableSchema& t, const FieldMatch& m) {
  auto key = std::find_if(t.keys.begin(), t.keys.end(),
                          [&](const KeyField& k) { return k.field == m.field; });
  std::string_view fname = GetFieldInfo(m.field).name;
  if (key == t.keys.end()) {
    return absl::InvalidArgumentError(absl::StrCat("field ", Sv(fname), " is not a key"));
  }
  if (static_cast<size_t>(key->kind) != m.value.index()) {
    return absl::InvalidArgumentError(
        absl::StrCat("field ", Sv(fname), " must be matched as ", Sv(MatchKindName(key->kind))));
  }
  int width = GetFieldInfo(m.field).width_bits;
  U128 over = ~U128::Ones(width);
  bool ok = std::visit(
      [&](const auto& mv) {
        using T = std::decay_t<decltype(mv)>;
        if constexpr (std::is_same_v<T, ExactMatch>) {
          return (mv.value & over) == U128{};
        } else if constexpr (std::is_same_v<T, TernaryMatch>) {
          return (mv.mask & over) == U128{} && (mv.value & ~mv.mask) == U128{};
        } else if constexpr (std::is_same_v<T, LpmMatch>) {
          return mv.prefix_len_bits >= 0 && mv.prefix_len_bits <= width &&
                 (mv.value & ~U128::PrefixMask(width, mv.prefix_len_bits)) == U128{};
        } else {
          return (mv.hi & over) == U128{} && mv.lo <= mv.hi;
        }
      },
      m.value);
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrCat("field ", Sv(fname), ": value out of its ", width, "-bit width or malformed"));
  }
  return absl::OkStatus();
}

absl::Status ValidateActions(const Program& p, TableId from, const std::vector<Action>& actions) {
  for (const Action& a : actions) {
    if (const auto* g = std::get_if<GotoAction>(&a)) {
      if (g->table <= from || g->table >= p.tables.size()) {
        return absl::InvalidArgumentError(
            absl::StrCat("goto ", g->table, " does not name a later table"));
      }
    } else if (const auto* grp = std::get_if<GroupAction>(&a)) {
      const SelectGroup* group = p.FindGroup(grp->group);
      if (group == nullptr) {
        return absl::InvalidArgumentError(absl::StrCat("group ", grp->group, " does not exist"));
      }
      for (const Bucket& b : group->buckets) {
        for (const Action& ba : b.actions) {
          if (std::holds_alternative<GroupAction>(ba)) {
            return absl::InvalidArgumentError(
                absl::StrCat("group ", grp->group, ": buckets may not nest groups"));
          }
        }
        if (auto st = ValidateActions(p, from, b.actions); !st.ok()) {
          return absl::InvalidArgumentError(
              absl::StrCat("group ", grp->group, " bucket ", b.label, ": ", st.message()));
        }
      }
    } else if (const auto* s = std::get_if<SetFieldAction>(&a)) {
      U128 over = ~U128::Ones(GetFieldInfo(s->field).width_bits);
      if ((s->mask & over) != U128{} || (s->value & over) != U128{}) {
        return absl::InvalidArgumentError(absl::StrCat("set of ", Sv(GetFieldInfo(s->field).name),
                                                       ": value or mask wider than the field"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status Validate(const Program& p) {
  if (p.entries.size() != p.tables.size()) {
    return absl::InvalidArgumentError("program: entries and tables differ in count");
  }
  for (size_t i = 0; i < p.tables.size(); ++i) {
    const TableSchema& t = p.tables[i];
    if (t.id != i) {
      return absl::InvalidArgumentError(absl::StrCat("table ", t.name, ": id ", t.id, " at ", i));
    }
    if (auto st = ValidateActions(p, t.id, t.default_actions); !st.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("table ", t.name, " default action: ", st.message()));
    }
  }
  for (size_t g = 1; g < p.groups.size(); ++g) {
    if (!(p.groups[g - 1].name < p.groups[g].name)) {
      return absl::InvalidArgumentError(
          absl::StrCat("group ", p.groups[g].name, ": duplicate or unsorted name"));
    }
  }
  for (size_t i = 0; i < p.tables.size(); ++i) {
    absl::flat_hash_set<std::string> keys;
    for (const Entry& e : p.entries[i]) {
      if (e.table != i) {
        return absl::InvalidArgumentError(EntryName(p, e) + ": stored under the wrong table");
      }
      for (size_t m = 0; m < e.match.size(); ++m) {
        if (m > 0 && !(e.match[m - 1].field < e.match[m].field)) {
          return absl::InvalidArgumentError(EntryName(p, e) +
                                            ": match not canonical (fields unsorted or repeated)");
        }
        if (auto st = ValidateMatch(p.tables[i], e.match[m]); !st.ok()) {
          return absl::InvalidArgumentError(absl::StrCat(EntryName(p, e), ": ", st.message()));
        }
      }
      if (auto st = ValidateActions(p, e.table, e.actions); !st.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(EntryName(p, e), ": ", st.message()));
      }
      if (!keys.insert(EntryKey(e)).second) {
        return absl::InvalidArgumentError(EntryName(p, e) + ": duplicate entry");
      }
    }
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// Diff and apply

std::string_view DeltaOpKindName(DeltaOp::Kind k) {
  switch (k) {
    case DeltaOp::Kind::kAddGroup:
      return "add-group";
    case DeltaOp::Kind::kModifyGroup:
      return "modify-group";
    case DeltaOp::Kind::kAddEntry:
      return "add-entry";
    case DeltaOp::Kind::kModifyEntry:
      return "modify-entry";
    case DeltaOp::Kind::kDeleteEntry:
      return "delete-entry";
    case DeltaOp::Kind::kDeleteGroup:
      return "delete-group";
  }
  return "?";
}

namespace {

bool SameSchemas(const Program& a, const Program& b) {
  if (a.tables.size() != b.tables.size()) return false;
  for (size_t i = 0; i < a.tables.size(); ++i) {
    const TableSchema& x = a.tables[i];
    const TableSchema& y = b.tables[i];
    if (x.id != y.id || x.name != y.name || x.keys != y.keys) return false;
  }
  return true;
}

bool SameGroup(const SelectGroup& a, const SelectGroup& b) {
  return a.hash_fields == b.hash_fields && a.affinity_timeout_s == b.affinity_timeout_s &&
         a.buckets == b.buckets && a.origin == b.origin;
}

// Entry changes of one table, split into adds/modifies and deletes.
void DiffTable(const std::vector<Entry>& from, const std::vector<Entry>& to,
               std::vector<DeltaOp>& upserts, std::vector<DeltaOp>& deletes) {
  absl::flat_hash_map<std::string, const Entry*> old_by_key;
  old_by_key.reserve(from.size());
  for (const Entry& e : from) old_by_key.emplace(EntryKey(e), &e);
  for (const Entry& e : to) {
    auto it = old_by_key.find(EntryKey(e));
    if (it == old_by_key.end()) {
      upserts.push_back({DeltaOp::Kind::kAddEntry, e, {}});
      continue;
    }
    if (it->second->actions != e.actions || it->second->origin != e.origin) {
      upserts.push_back({DeltaOp::Kind::kModifyEntry, e, {}});
    }
    old_by_key.erase(it);
  }
  // Deletes in the old program's order so the delta is deterministic.
  for (const Entry& e : from) {
    if (old_by_key.contains(EntryKey(e))) deletes.push_back({DeltaOp::Kind::kDeleteEntry, e, {}});
  }
}

}  // namespace

absl::StatusOr<Delta> Diff(const Program& from, const Program& to) {
  if (!SameSchemas(from, to)) {
    return absl::FailedPreconditionError("diff: programs have different table schemas");
  }
  Delta d;
  // Groups first: added and modified groups exist before anything references them.
  std::vector<DeltaOp> group_deletes;
  size_t i = 0, j = 0;
  while (i < from.groups.size() || j < to.groups.size()) {
    if (j == to.groups.size() ||
        (i < from.groups.size() && from.groups[i].name < to.groups[j].name)) {
      group_deletes.push_back({DeltaOp::Kind::kDeleteGroup, {}, from.groups[i++]});
    } else if (i == from.groups.size() || to.groups[j].name < from.groups[i].name) {
      d.ops.push_back({DeltaOp::Kind::kAddGroup, {}, to.groups[j++]});
    } else {
      if (!SameGroup(from.groups[i], to.groups[j])) {
        d.ops.push_back({DeltaOp::Kind::kModifyGroup, {}, to.groups[j]});
      }
      ++i;
      ++j;
    }
  }
  std::vector<std::vector<DeltaOp>> upserts(from.tables.size());
  std::vector<std::vector<DeltaOp>> deletes(from.tables.size());
  for (size_t t = 0; t < from.tables.size(); ++t) {
    DiffTable(from.entries[t], to.entries[t], upserts[t], deletes[t]);
  }
  // Targets before the entries that lead to them: later tables first.
  for (size_t t = from.tables.size(); t-- > 0;) {
    for (DeltaOp& op : upserts[t]) d.ops.push_back(std::move(op));
  }
  // References go before what they referenced: earlier tables' deletes first.
  for (size_t t = 0; t < from.tables.size(); ++t) {
    for (DeltaOp& op : deletes[t]) d.ops.push_back(std::move(op));
  }
  for (DeltaOp& op : group_deletes) d.ops.push_back(std::move(op));
  return d;
}

namespace {

absl::Status ApplyOne(Program& p, const DeltaOp& op) {
  auto group_it = [&](const std::string& name) {
    return std::lower_bound(p.groups.begin(), p.groups.end(), name,
                            [](const SelectGroup& g, const std::string& n) { return g.name < n; });
  };
  switch (op.kind) {
    case DeltaOp::Kind::kAddGroup:
    case DeltaOp::Kind::kModifyGroup:
    case DeltaOp::Kind::kDeleteGroup: {
      auto it = group_it(op.group.name);
      bool exists = it != p.groups.end() && it->name == op.group.name;
      if (exists == (op.kind == DeltaOp::Kind::kAddGroup)) {
        return absl::FailedPreconditionError(absl::StrCat(Sv(DeltaOpKindName(op.kind)), " ",
                                                          op.group.name, ": group ",
                                                          exists ? "exists" : "missing"));
      }
      if (op.kind == DeltaOp::Kind::kAddGroup) {
        p.groups.insert(it, op.group);
      } else if (op.kind == DeltaOp::Kind::kModifyGroup) {
        *it = op.group;
      } else {
        p.groups.erase(it);
      }
      return absl::OkStatus();
    }
    default:
      break;
  }
  if (op.entry.table >= p.entries.size()) {
    return absl::FailedPreconditionError(
        absl::StrCat("entry op on unknown table ", op.entry.table));
  }
  std::vector<Entry>& table = p.entries[op.entry.table];
  const std::string key = EntryKey(op.entry);
  // Tables are kept in canonical order (priority descending, then identity), so the entry's
  // place is found by binary search; a table in another order falls back to a scan.
  auto before = [&](const Entry& e) {
    return e.priority > op.entry.priority || (e.priority == op.entry.priority && EntryKey(e) < key);
  };
  const auto pos = std::partition_point(table.begin(), table.end(), before);
  auto it = pos;
  if (it == table.end() || EntryKey(*it) != key) {
    it = std::find_if(table.begin(), table.end(),
                      [&](const Entry& e) { return EntryKey(e) == key; });
  }
  bool exists = it != table.end();
  if (exists == (op.kind == DeltaOp::Kind::kAddEntry)) {
    return absl::FailedPreconditionError(absl::StrCat(Sv(DeltaOpKindName(op.kind)), " ",
                                                      EntryName(p, op.entry), ": entry ",
                                                      exists ? "exists" : "missing"));
  }
  if (op.kind == DeltaOp::Kind::kAddEntry) {
    table.insert(pos, op.entry);  // keeps the canonical order
  } else if (op.kind == DeltaOp::Kind::kModifyEntry) {
    *it = op.entry;
  } else {
    table.erase(it);
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ApplyDelta(Program& p, const Delta& d) {
  Program scratch = p;
  for (const DeltaOp& op : d.ops) {
    if (auto st = ApplyOne(scratch, op); !st.ok()) return st;
  }
  p = std::move(scratch);
  return absl::OkStatus();
}

absl::Status ApplyDeltaInPlace(Program& p, const Delta& d) {
  for (const DeltaOp& op : d.ops) NICFLOW_RETURN_IF_ERROR(ApplyOne(p, op));
  return absl::OkStatus();
}

}  // namespace nicflow::flowtables
