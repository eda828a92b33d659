// SimNic control plane: transactional install/apply, read-back, ports and counters.
//
// Every change runs in two phases. Staging checks each op against an overlay of the installed
// state (so ops may depend on earlier ops of the same delta) and counts it for fault injection;
// nothing is changed. Only when every op passed does Commit apply them, and commit cannot fail:
// that is what makes Apply() all-or-nothing without an undo log.
//
// Apply rate (docs/performance.md, "Host and rte_flow"): the naive version built each entry's key
// twice (staging, commit), formatted its error context on success, looked every group action up by
// name in both phases, grew the state and the classifier one entry at a time and built every
// group's Maglev table with a division per probe. Now staging computes each entry's key and each
// installed group's slot once and commit consumes them; staging maps are keyed by views into the
// delta and the state (neither changes until commit); error text is built only for the failing
// op; commit reserves what the delta adds, hands consecutive adds to a table to the classifier as
// one batch, and keeps a group's Maglev table when a modify leaves its backends alone. Entries are
// indexed by their identity without a key string per entry (EntryIndex), and group names are
// packed in one arena (NameArena), because what is left is mostly memory first touched and cache
// misses, not instructions.
#include <algorithm>
#include <deque>
#include <set>

#include "absl/functional/function_ref.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "classifier_internal.h"
#include "device_state.h"
#include "nicflow/flowtables/entry_key.h"
#include "sv.h"

namespace nicflow::sim {

using flowtables::Action;
using flowtables::DeltaOp;
using flowtables::Entry;
using flowtables::PortClass;
using flowtables::PortRef;
using flowtables::Program;
using flowtables::SelectGroup;
using flowtables::TableSchema;
using State = SimNic::State;

size_t EntryKeyHash(const Entry& e) {
  thread_local std::string key;
  key.clear();
  flowtables::AppendEntryKey(e, key);
  return absl::Hash<absl::string_view>{}(key);
}

bool SameEntryKey(const Entry& a, const Entry& b) {
  if (a.table != b.table || a.priority != b.priority || a.match.size() != b.match.size()) {
    return false;
  }
  for (size_t i = 0; i < a.match.size(); ++i) {
    const flowtables::FieldMatch& x = a.match[i];
    const flowtables::FieldMatch& y = b.match[i];
    if (x.field != y.field || x.value.index() != y.value.index()) return false;
    if (const auto* l = std::get_if<flowtables::LpmMatch>(&x.value)) {
      // EntryKey keeps the low 8 bits of the prefix length.
      const auto& m = std::get<flowtables::LpmMatch>(y.value);
      if (l->value != m.value ||
          static_cast<uint8_t>(l->prefix_len_bits) != static_cast<uint8_t>(m.prefix_len_bits)) {
        return false;
      }
    } else if (x.value != y.value) {
      return false;
    }
  }
  return true;
}

bool EntryHasKey(const Entry& e, absl::string_view key) {
  thread_local std::string own;
  own.clear();
  flowtables::AppendEntryKey(e, own);
  return absl::string_view(own) == key;
}

namespace {

std::string EntryWhere(const TableSchema& t, const Entry& e) {
  return absl::StrCat("table ", t.name, ": entry priority ", e.priority, " match {",
                      flowtables::MatchesToString(e.match), "}");
}

bool IsCanonical(const Entry& e) {
  return std::is_sorted(e.match.begin(), e.match.end(),
                        [](const flowtables::FieldMatch& a, const flowtables::FieldMatch& b) {
                          return a.field < b.field;
                        });
}

// Staging's overlay of entries by identity (see EntryIndex).
struct ProbeHash {
  size_t operator()(const EntryProbe& p) const { return p.hash; }
};
struct ProbeEq {
  bool operator()(const EntryProbe& a, const EntryProbe& b) const {
    return a.hash == b.hash && SameEntryKey(*a.entry, *b.entry);
  }
};

absl::Status Prefixed(const absl::Status& s, std::string_view where) {
  return absl::Status(s.code(), absl::StrCat(Sv(where), ": ", s.message()));
}

PortClass ClassOf(const PortRef& r) {
  switch (r.kind) {
    case PortRef::Kind::kHost:
      return PortClass::kHost;
    case PortRef::Kind::kUplink:
      return PortClass::kUplink;
    case PortRef::Kind::kPod:
      return PortClass::kPod;
  }
  return PortClass::kNone;
}

size_t VfCount(const State& s) {
  return static_cast<size_t>(std::count_if(s.ports.begin(), s.ports.end(), [](const PortInfo& p) {
    return p.port_class == PortClass::kPod;
  }));
}

// A group action staging could not resolve to a slot (the delta adds or changes the group).
constexpr uint32_t kUnresolved = 0xffffffffu;

// Checks ops against an overlay of the installed state; see the file comment. Views held in the
// maps point into the delta, the state and `keys_`, all unchanged while staging lives.
class Staging {
 public:
  Staging(const State& s, const std::vector<DeltaOp>& ops)
      : s_(s), table_count_(s.tables.size()), keys_(ops.size()) {
    const auto entry_ops = std::count_if(ops.begin(), ops.end(), [](const DeltaOp& op) {
      return op.kind != DeltaOp::Kind::kAddGroup && op.kind != DeltaOp::Kind::kModifyGroup &&
             op.kind != DeltaOp::Kind::kDeleteGroup;
    });
    entries_.reserve(static_cast<size_t>(entry_ops));
    groups_.reserve(ops.size() - static_cast<size_t>(entry_ops));
    table_cap_.reserve(s.tables.size());
    for (size_t i = 0; i < s.tables.size(); ++i) {
      table_count_[i] = s.tables[i].entries;
      table_cap_.push_back(s.profile.CapacityOf(s.tables[i].schema));
    }
    for (const CTable& t : s.tables) total_ += t.entries;
    for (const CGroup& g : s.groups) groups_live_ += g.live ? 1 : 0;
  }

  /// Checks op number `i` of the delta; for entry ops, records its identity (see Key).
  absl::Status Check(const DeltaOp& op, size_t i);
  absl::Status Finish() const;
  /// The identity of entry op `i` (its entry in canonical form and that form's hash), computed by
  /// Check; valid while staging lives.
  const EntryProbe& Key(size_t i) const { return keys_[i]; }
  /// The group slot of each group action of the added and modified entries, in op order (what
  /// CompileActions consumes), or kUnresolved for a group the delta itself changes.
  const std::vector<uint32_t>& group_slots() const { return group_slots_; }
  /// Entries and groups the delta adds, net of deletes (for reserving state).
  size_t added_entries() const { return added_entries_; }
  size_t added_groups() const { return added_groups_; }
  /// Net entries the delta adds to table `t` (0 if it removes more than it adds).
  size_t added_to_table(size_t t) const {
    return table_count_[t] > s_.tables[t].entries ? table_count_[t] - s_.tables[t].entries : 0;
  }

 private:
  // The installed entry with this identity (nullptr if none), ignoring the overlay.
  const Entry* InstalledEntry(const EntryProbe& key) const {
    if (auto it = s_.entry_by_key.find(key); it != s_.entry_by_key.end()) {
      return &s_.entries[*it].entry;
    }
    return nullptr;
  }
  // `slot`: the installed group's slot, or kUnresolved if the delta changes the group.
  const SelectGroup* CurrentGroup(absl::string_view name, uint32_t* slot = nullptr) const {
    if (slot) *slot = kUnresolved;
    if (!groups_.empty()) {  // most deltas touch no group: do not hash the name twice
      if (auto it = groups_.find(name); it != groups_.end()) return it->second;
    }
    if (auto it = s_.group_by_name.find(name); it != s_.group_by_name.end()) {
      if (slot) *slot = it->second;
      return &s_.groups[it->second].group;
    }
    return nullptr;
  }
  absl::Status CheckActionRefs(const std::vector<Action>& actions, TableId from, bool in_group,
                               absl::FunctionRef<std::string()> where);
  absl::Status CheckEntry(const Entry& e, bool adding);
  absl::Status CheckGroup(const SelectGroup& g);
  void CountGroupRefs(const std::vector<Action>& actions, int32_t sign) {
    for (const Action& a : actions) {
      if (const auto* g = std::get_if<flowtables::GroupAction>(&a)) {
        ref_changes_.emplace_back(g->group, sign);
      }
    }
  }

  const State& s_;
  absl::flat_hash_map<EntryProbe, const Entry*, ProbeHash, ProbeEq> entries_;
  absl::flat_hash_map<absl::string_view, const SelectGroup*> groups_;
  std::vector<size_t> table_count_;
  std::vector<uint32_t> table_cap_;  // DeviceProfile::CapacityOf each table; 0: unbounded
  std::vector<EntryProbe> keys_;     // per op: the entry's identity, unset for group ops
  std::deque<Entry> canonical_;      // canonical copies of entries ops listed unsorted
  std::vector<uint32_t> group_slots_;
  size_t total_ = 0;
  size_t groups_live_ = 0;
  size_t added_entries_ = 0;
  size_t added_groups_ = 0;
  // Each entry op's change to a group's reference count; summed by Finish only when the delta
  // deletes groups (most deltas do not, and a list is cheaper to fill than a map).
  std::vector<std::pair<absl::string_view, int32_t>> ref_changes_;
  std::set<absl::string_view> deleted_groups_;
  std::set<std::string> new_pods_;
};

absl::Status Staging::CheckActionRefs(const std::vector<Action>& actions, TableId from,
                                      bool in_group, absl::FunctionRef<std::string()> where) {
  for (const Action& a : actions) {
    if (const auto* g = std::get_if<flowtables::GotoAction>(&a)) {
      if ((!in_group && g->table <= from) || g->table >= s_.tables.size()) {
        return absl::InvalidArgumentError(
            absl::StrCat(where(), ": goto table ", g->table, " is not a later table"));
      }
    } else if (const auto* gr = std::get_if<flowtables::GroupAction>(&a)) {
      uint32_t slot;
      if (CurrentGroup(gr->group, &slot) == nullptr) {
        return absl::FailedPreconditionError(
            absl::StrCat(where(), ": group ", gr->group, " is not installed"));
      }
      if (!in_group) group_slots_.push_back(slot);
    } else if (const auto* o = std::get_if<flowtables::OutputAction>(&a)) {
      if (o->port.kind == PortRef::Kind::kPod) {
        std::string name = o->port.ToString();
        if (!s_.port_by_name.contains(name)) new_pods_.insert(std::move(name));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status Staging::CheckEntry(const Entry& e, bool adding) {
  if (e.table >= s_.tables.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("entry priority ", e.priority, ": table id ", e.table, " does not exist"));
  }
  const CTable& t = s_.tables[e.table];
  auto where = [&] { return EntryWhere(t.schema, e); };
  if (absl::Status st = CheckMatch(t.schema.keys, e.match, nullptr); !st.ok()) {
    return Prefixed(st, where());
  }
  if (absl::Status st = CheckEntrySupported(s_.profile, t.schema, e); !st.ok()) return st;
  if (absl::Status st = CheckActionRefs(e.actions, e.table, false, where); !st.ok()) return st;
  if (adding) {
    const uint32_t cap = table_cap_[e.table];
    if (cap && table_count_[e.table] + 1 > cap) {
      return absl::ResourceExhaustedError(absl::StrCat(
          where(), ": table full (", cap, " entries in device profile ", s_.profile.name, ")"));
    }
    const uint32_t total_cap = s_.profile.total_entry_capacity;
    if (total_cap && total_ + 1 > total_cap) {
      return absl::ResourceExhaustedError(absl::StrCat(where(), ": device full (", total_cap,
                                                       " entries in device profile ",
                                                       s_.profile.name, ")"));
    }
  }
  return absl::OkStatus();
}

absl::Status Staging::CheckGroup(const SelectGroup& g) {
  if (absl::Status st = CheckGroupSupported(s_.profile, g); !st.ok()) return st;
  for (const flowtables::Bucket& b : g.buckets) {
    auto where = [&] { return absl::StrCat("group ", g.name, " bucket ", b.label); };
    if (absl::Status st = CheckActionRefs(b.actions, 0, true, where); !st.ok()) return st;
  }
  return absl::OkStatus();
}

absl::Status Staging::Check(const DeltaOp& op, size_t i) {
  using K = DeltaOp::Kind;
  switch (op.kind) {
    case K::kAddEntry:
    case K::kModifyEntry:
    case K::kDeleteEntry: {
      const Entry* canonical = &op.entry;
      if (!IsCanonical(op.entry)) {
        canonical = &canonical_.emplace_back(op.entry);
        flowtables::CanonicalizeMatch(canonical_.back());
      }
      keys_[i] = {canonical, EntryKeyHash(*canonical)};
      const EntryProbe& key = keys_[i];
      // One probe of the overlay finds the entry or makes its slot (a failed op ends staging, so
      // a slot left behind does not matter).
      auto [slot, fresh] = entries_.try_emplace(key, nullptr);
      const Entry* cur = fresh ? InstalledEntry(key) : slot->second;
      if ((op.kind == K::kAddEntry) == (cur != nullptr)) {
        return absl::FailedPreconditionError(
            absl::StrCat(Sv(flowtables::DeltaOpKindName(op.kind)), " table ", op.entry.table, " ",
                         flowtables::EntryText(op.entry),
                         cur ? ": entry already installed" : ": entry not installed"));
      }
      if (op.kind != K::kDeleteEntry) {
        if (absl::Status st = CheckEntry(op.entry, op.kind == K::kAddEntry); !st.ok()) return st;
        CountGroupRefs(op.entry.actions, +1);
      }
      if (cur) CountGroupRefs(cur->actions, -1);
      if (op.kind == K::kAddEntry) ++table_count_[op.entry.table], ++total_, ++added_entries_;
      if (op.kind == K::kDeleteEntry) {
        --table_count_[cur->table], --total_;
        added_entries_ -= added_entries_ > 0;
      }
      slot->second = op.kind == K::kDeleteEntry ? nullptr : &op.entry;
      return absl::OkStatus();
    }
    case K::kAddGroup:
    case K::kModifyGroup:
    case K::kDeleteGroup: {
      const SelectGroup* cur = CurrentGroup(op.group.name);
      if ((op.kind == K::kAddGroup) == (cur != nullptr)) {
        return absl::FailedPreconditionError(
            absl::StrCat(Sv(flowtables::DeltaOpKindName(op.kind)), " group ", op.group.name,
                         cur ? ": group already installed" : ": group not installed"));
      }
      if (op.kind != K::kDeleteGroup) {
        if (absl::Status st = CheckGroup(op.group); !st.ok()) return st;
      }
      if (op.kind == K::kAddGroup) {
        if (s_.profile.max_groups && groups_live_ + 1 > s_.profile.max_groups) {
          return absl::ResourceExhaustedError(absl::StrCat("group ", op.group.name,
                                                           ": device profile ", s_.profile.name,
                                                           " holds ", s_.profile.max_groups));
        }
        ++groups_live_, ++added_groups_;
        deleted_groups_.erase(op.group.name);
      }
      if (op.kind == K::kDeleteGroup) {
        --groups_live_, deleted_groups_.insert(op.group.name);
        added_groups_ -= added_groups_ > 0;
      }
      groups_[op.group.name] = op.kind == K::kDeleteGroup ? nullptr : &op.group;
      return absl::OkStatus();
    }
  }
  return absl::InvalidArgumentError("unknown delta op");
}

absl::Status Staging::Finish() const {
  absl::flat_hash_map<absl::string_view, int64_t> ref_delta;
  for (const absl::string_view name : deleted_groups_) ref_delta.emplace(name, 0);
  if (!ref_delta.empty()) {
    for (const auto& [name, sign] : ref_changes_) {
      if (auto it = ref_delta.find(name); it != ref_delta.end()) it->second += sign;
    }
  }
  for (const absl::string_view name : deleted_groups_) {
    int64_t refs = ref_delta[name];
    if (auto it = s_.group_by_name.find(name); it != s_.group_by_name.end()) {
      refs += s_.groups[it->second].refs;
    }
    if (refs > 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("delete group ", name, ": still referenced by ", refs, " entries"));
    }
  }
  if (s_.profile.max_vfs && VfCount(s_) + new_pods_.size() > s_.profile.max_vfs) {
    return absl::ResourceExhaustedError(absl::StrCat("output to ", *new_pods_.begin(),
                                                     ": device profile ", s_.profile.name, " has ",
                                                     s_.profile.max_vfs, " VFs"));
  }
  return absl::OkStatus();
}

}  // namespace

// ---- Commit (cannot fail once staged) ----

namespace {

PortId EnsurePort(State& s, const PortRef& ref) {
  const std::string name = ref.ToString();
  if (auto it = s.port_by_name.find(name); it != s.port_by_name.end()) return it->second;
  const PortId id = static_cast<PortId>(s.ports.size());
  s.ports.push_back(PortInfo{id, ref, ClassOf(ref), {}, name});
  s.port_counters.emplace_back();
  s.port_by_name.emplace(name, id);
  return id;
}

// Copies the live group names into a fresh arena (see NameArena), so deleted names do not pile up.
void CompactGroupNames(State& s) {
  NameArena names;
  absl::flat_hash_map<absl::string_view, uint32_t> by_name;
  by_name.reserve(s.group_by_name.size());
  for (const auto& [name, slot] : s.group_by_name) by_name.emplace(names.Add(name), slot);
  s.group_by_name = std::move(by_name);
  s.group_names = std::move(names);
}

// Group slots staging resolved (Staging::group_slots), consumed in op order by CompileActions;
// a null cursor looks every group up by name.
struct GroupSlotCursor {
  const uint32_t* next = nullptr;
};

std::vector<CAction> CompileActions(State& s, const std::vector<Action>& actions,
                                    GroupSlotCursor* resolved = nullptr) {
  std::vector<CAction> out;
  out.reserve(actions.size());
  for (const Action& a : actions) {
    CAction c;
    c.kind = flowtables::KindOf(a);
    if (const auto* o = std::get_if<flowtables::OutputAction>(&a)) {
      c.port = EnsurePort(s, o->port);
    } else if (const auto* g = std::get_if<flowtables::GotoAction>(&a)) {
      c.table = g->table;
    } else if (const auto* sf = std::get_if<flowtables::SetFieldAction>(&a)) {
      c.field = sf->field, c.value = sf->value & sf->mask, c.mask = sf->mask;
    } else if (const auto* d = std::get_if<flowtables::DnatAction>(&a)) {
      c.value = U128::FromIp(d->addr), c.v6 = !d->addr.is_v4(), c.l4_port = d->port;
    } else if (const auto* sn = std::get_if<flowtables::SnatAction>(&a)) {
      c.value = U128::FromIp(sn->addr), c.v6 = !sn->addr.is_v4();
      c.l4_port = sn->port_lo, c.l4_port_hi = sn->port_hi;
    } else if (const auto* gr = std::get_if<flowtables::GroupAction>(&a)) {
      const uint32_t slot = resolved ? *resolved->next++ : kUnresolved;
      c.group = slot != kUnresolved ? slot : s.group_by_name.at(gr->group);
    } else if (const auto* cl = std::get_if<flowtables::CtLookupAction>(&a)) {
      c.zone = cl->zone;
    } else if (const auto* cc = std::get_if<flowtables::CtCommitAction>(&a)) {
      c.zone = cc->zone;
    }
    out.push_back(c);
  }
  return out;
}

void AdjustRefs(State& s, const std::vector<Action>& actions, int sign) {
  for (const Action& a : actions) {
    if (const auto* g = std::get_if<flowtables::GroupAction>(&a)) {
      s.groups[s.group_by_name.at(g->group)].refs += sign;
    }
  }
}

// As AdjustRefs(+1) for actions just compiled: the compiled list names the same groups, by slot.
void AddRefs(State& s, const std::vector<CAction>& compiled) {
  for (const CAction& c : compiled) {
    if (c.kind == flowtables::ActionKind::kGroup) ++s.groups[c.group].refs;
  }
}

void CompileGroup(State& s, CGroup& cg, const SelectGroup& g) {
  thread_local std::vector<MaglevBackend> backends;
  backends.clear();
  for (size_t i = 0; i < g.buckets.size(); ++i) {
    const flowtables::Bucket& b = g.buckets[i];
    const uint64_t h = b.label.empty() ? HashLabel(absl::StrCat("#", i)) : HashLabel(b.label);
    backends.push_back({h, b.weight});
  }
  // The table depends only on the backends' label hashes and weights: a modify that keeps them
  // (actions or hash fields changed) keeps the table.
  bool same_backends = cg.live && cg.label_hash.size() == backends.size();
  for (size_t i = 0; same_backends && i < backends.size(); ++i) {
    same_backends = cg.label_hash[i] == backends[i].key_hash &&
                    cg.group.buckets[i].weight == backends[i].weight;
  }
  if (!same_backends) cg.maglev.Rebuild(backends);
  cg.group = g;
  cg.buckets.resize(g.buckets.size());
  cg.label_hash.resize(g.buckets.size());
  for (size_t i = 0; i < g.buckets.size(); ++i) {
    cg.buckets[i] = CompileActions(s, g.buckets[i].actions);
    cg.label_hash[i] = backends[i].key_hash;
  }
  cg.affinity = g.affinity_timeout_s.has_value();
  cg.n_hash = static_cast<uint8_t>(std::min<size_t>(g.hash_fields.size(), 255));
  for (size_t i = 0; i < g.hash_fields.size() && i < kInlineHashFields; ++i) {
    cg.hash[i] = g.hash_fields[i];
  }
  cg.live = true;
}

// Entries added to one table and not yet in its classifier: consecutive adds go in as one
// InsertBatch, which sizes the classifier's indices once. Flushed before any other op, so the
// classifier sees inserts and removals in op order.
struct PendingInserts {
  TableId table = 0;
  std::vector<uint32_t> slots;

  void Flush(State& s) {
    if (slots.empty()) return;
    std::vector<Classifier::RuleSpec> rules;
    rules.reserve(slots.size());
    for (uint32_t slot : slots) {
      const Entry& e = s.entries[slot].entry;
      rules.push_back({slot, e.priority, e.match});
    }
    (void)s.tables[table].cls->InsertBatch(rules);  // staged: cannot fail
    slots.clear();
  }
};

// `key`: the entry's identity for entry ops (computed once, by staging); null for group ops and
// for adds of a whole program (computed here). `resolved`: the group slots staging resolved, or
// null. `pending`: where an add's classifier insert waits (the caller flushes it; see
// PendingInserts).
void CommitOp(State& s, const DeltaOp& op, const EntryProbe* key, GroupSlotCursor* resolved,
              PendingInserts& pending) {
  using K = DeltaOp::Kind;
  switch (op.kind) {
    case K::kAddGroup: {
      uint32_t slot;
      if (!s.free_groups.empty()) {
        slot = s.free_groups.back();
        s.free_groups.pop_back();
      } else {
        slot = static_cast<uint32_t>(s.groups.size());
        s.groups.emplace_back();
      }
      if (auto it = s.group_by_name.find(op.group.name); it != s.group_by_name.end()) {
        it->second = slot;
      } else {
        s.group_by_name.emplace(s.group_names.Add(op.group.name), slot);
      }
      s.groups[slot].refs = 0;
      CompileGroup(s, s.groups[slot], op.group);
      return;
    }
    case K::kModifyGroup:
      CompileGroup(s, s.groups[s.group_by_name.at(op.group.name)], op.group);
      return;
    case K::kDeleteGroup: {
      const auto it = s.group_by_name.find(op.group.name);
      const uint32_t slot = it->second;
      s.groups[slot] = CGroup{};
      s.group_names.Release(it->first);
      s.group_by_name.erase(it);
      s.free_groups.push_back(slot);
      if (s.group_names.WorthCompacting()) CompactGroupNames(s);
      return;
    }
    case K::kAddEntry: {
      uint32_t slot;
      if (!s.free_entries.empty()) {
        slot = s.free_entries.back();
        s.free_entries.pop_back();
      } else {
        slot = static_cast<uint32_t>(s.entries.size());
        s.entries.emplace_back();
      }
      CEntry& ce = s.entries[slot];
      ce.actions = CompileActions(s, op.entry.actions, resolved);
      ce.counters = {};
      ce.entry = op.entry;
      ce.live = true;
      flowtables::CanonicalizeMatch(ce.entry);
      ce.key_hash = key ? key->hash : EntryKeyHash(ce.entry);
      s.entry_by_key.insert(slot);
      if (pending.table != op.entry.table) pending.Flush(s);
      pending.table = op.entry.table;
      pending.slots.push_back(slot);
      ++s.tables[op.entry.table].entries;
      AddRefs(s, ce.actions);
      return;
    }
    case K::kModifyEntry: {
      CEntry& ce = s.entries[*s.entry_by_key.find(*key)];
      AdjustRefs(s, ce.entry.actions, -1);
      ce.entry.actions = op.entry.actions;
      ce.entry.origin = op.entry.origin;
      ce.actions = CompileActions(s, op.entry.actions, resolved);
      AddRefs(s, ce.actions);
      return;
    }
    case K::kDeleteEntry: {
      const auto it = s.entry_by_key.find(*key);
      const uint32_t slot = *it;
      s.entry_by_key.erase(it);  // while the entry it hashes is still there
      CEntry& ce = s.entries[slot];
      CTable& t = s.tables[ce.entry.table];
      (void)t.cls->Remove(slot);
      --t.entries;
      AdjustRefs(s, ce.entry.actions, -1);
      ce = CEntry{};
      s.free_entries.push_back(slot);
      return;
    }
  }
}

// Room for what a staged delta adds, so commit does not regrow the state entry by entry.
void Reserve(State& s, size_t added_entries, size_t added_groups) {
  const size_t entries = s.entry_by_key.size() + added_entries;
  if (added_entries > s.free_entries.size()) {
    s.entries.reserve(s.entries.size() + added_entries - s.free_entries.size());
  }
  s.entry_by_key.reserve(entries);
  const size_t groups = s.group_by_name.size() + added_groups;
  if (added_groups > s.free_groups.size()) {
    s.groups.reserve(s.groups.size() + added_groups - s.free_groups.size());
  }
  s.group_by_name.reserve(groups);
}

// A table of this many entries outgrows the first-level caches (see State::big_tables).
constexpr size_t kBigTableEntries = 512;

void FindBigTables(State& s) {
  s.big_tables.clear();
  for (TableId t = 0; t < s.tables.size(); ++t) {
    if (s.tables[t].entries >= kBigTableEntries) s.big_tables.push_back(t);
  }
}

// Counts `n` ops; returns the injected fault if it falls among them.
absl::Status CountOps(State& s, uint64_t n) {
  if (s.fault_at && *s.fault_at > s.ops && *s.fault_at <= s.ops + n) {
    s.ops = *s.fault_at;
    s.fault_at.reset();
    return s.fault_status;
  }
  s.ops += n;
  return absl::OkStatus();
}

}  // namespace

absl::Status SimNic::Apply(const flowtables::Delta& d) {
  State& s = *s_;
  if (!s.has_program) return absl::FailedPreconditionError("apply: no program installed");
  Staging staging(s, d.ops);
  for (size_t i = 0; i < d.ops.size(); ++i) {
    if (absl::Status st = CountOps(s, 1); !st.ok()) {
      return Prefixed(
          st, absl::StrCat("op ", i, " (", Sv(flowtables::DeltaOpKindName(d.ops[i].kind)), ")"));
    }
    if (absl::Status st = staging.Check(d.ops[i], i); !st.ok()) {
      return Prefixed(st, absl::StrCat("op ", i));
    }
  }
  if (absl::Status st = staging.Finish(); !st.ok()) return st;
  Reserve(s, staging.added_entries(), staging.added_groups());
  for (size_t t = 0; t < s.tables.size(); ++t) s.tables[t].cls->Reserve(staging.added_to_table(t));
  GroupSlotCursor resolved{staging.group_slots().data()};
  PendingInserts pending;
  for (size_t i = 0; i < d.ops.size(); ++i) {
    if (d.ops[i].kind != DeltaOp::Kind::kAddEntry) pending.Flush(s);
    CommitOp(s, d.ops[i], &staging.Key(i), &resolved, pending);
  }
  pending.Flush(s);
  FindBigTables(s);
  s.program_cache.reset();
  s.flow_cache.Invalidate();
  return absl::OkStatus();
}

absl::Status SimNic::ApplyOp(const DeltaOp& op) {
  flowtables::Delta d;
  d.ops.push_back(op);
  return Apply(d);
}

absl::Status SimNic::Install(const Program& p) {
  State& s = *s_;
  if (absl::Status st = flowtables::Validate(p); !st.ok()) return st;
  for (const TableSchema& t : p.tables) {
    for (const Entry& e : p.entries.size() > t.id ? p.entries[t.id] : std::vector<Entry>{}) {
      if (absl::Status st = CheckMatch(t.keys, e.match, nullptr); !st.ok()) {
        return Prefixed(st, EntryWhere(t, e));
      }
    }
  }
  if (absl::Status st = CheckProgramFits(s.profile, p); !st.ok()) return st;
  if (s.profile.max_vfs) {
    std::set<std::string> vfs;
    for (const PortInfo& port : s.ports) {
      if (port.port_class == PortClass::kPod) vfs.insert(port.name);
    }
    for (const flowtables::PortDecl& d : p.ports) {
      if (d.ref.kind == PortRef::Kind::kPod) vfs.insert(d.ref.ToString());
    }
    if (vfs.size() > s.profile.max_vfs) {
      return absl::ResourceExhaustedError(absl::StrCat(vfs.size(), " VFs: device profile ",
                                                       s.profile.name, " has ", s.profile.max_vfs));
    }
  }
  if (absl::Status st = CountOps(s, p.groups.size() + p.EntryCount()); !st.ok()) {
    return Prefixed(st, "install");
  }
  // Commit: rebuild tables, then add groups and entries through the delta commit path.
  s.tables.clear();
  s.entries.clear();
  s.free_entries.clear();
  s.entry_by_key.clear();
  s.groups.clear();
  s.free_groups.clear();
  s.group_by_name.clear();
  s.group_names.Clear();
  s.affinity.clear();
  for (const TableSchema& t : p.tables) {
    CTable ct;
    ct.schema = t;
    ct.cls = MakeTupleSpaceClassifier(t.keys);
    s.tables.push_back(std::move(ct));
  }
  s.has_program = true;
  (void)DeclarePorts(p.ports);
  Reserve(s, p.EntryCount(), p.groups.size());
  PendingInserts pending;
  for (const SelectGroup& g : p.groups) {
    CommitOp(s, DeltaOp{DeltaOp::Kind::kAddGroup, {}, g}, nullptr, nullptr, pending);
  }
  for (size_t t = 0; t < s.tables.size(); ++t) {
    s.tables[t].defaults = CompileActions(s, p.tables[t].default_actions);
    if (t >= p.entries.size()) continue;
    s.tables[t].cls->Reserve(p.entries[t].size());
    for (const Entry& e : p.entries[t]) {
      CommitOp(s, DeltaOp{DeltaOp::Kind::kAddEntry, e, {}}, nullptr, nullptr, pending);
    }
    pending.Flush(s);
  }
  FindBigTables(s);
  s.key_tcp_flags = false;
  for (const TableSchema& t : p.tables) {
    for (const flowtables::KeyField& k : t.keys) s.key_tcp_flags |= k.field == Field::kTcpFlags;
  }
  s.program_cache.reset();
  s.flow_cache.Invalidate();
  return absl::OkStatus();
}

const Program& SimNic::installed() const {
  const State& s = *s_;
  if (s.program_cache) return *s.program_cache;
  Program p;
  for (const CTable& t : s.tables) p.tables.push_back(t.schema);
  p.entries.resize(s.tables.size());
  for (const CEntry& e : s.entries) {
    if (e.live) p.entries[e.entry.table].push_back(e.entry);
  }
  for (auto& es : p.entries) {
    std::sort(es.begin(), es.end(), [](const Entry& a, const Entry& b) {
      if (a.priority != b.priority) return a.priority > b.priority;
      return flowtables::EntryKey(a) < flowtables::EntryKey(b);
    });
  }
  for (const CGroup& g : s.groups) {
    if (g.live) p.groups.push_back(g.group);
  }
  std::sort(p.groups.begin(), p.groups.end(),
            [](const SelectGroup& a, const SelectGroup& b) { return a.name < b.name; });
  for (const PortInfo& port : s.ports) {
    if (port.port_class == PortClass::kPod || !port.ips.empty()) {
      p.ports.push_back({port.ref, port.ips});
    }
  }
  s.program_cache = std::move(p);
  return *s.program_cache;
}

absl::Status SimNic::DeclarePorts(const std::vector<flowtables::PortDecl>& ports) {
  State& s = *s_;
  size_t new_vfs = 0;
  for (const flowtables::PortDecl& d : ports) {
    new_vfs += d.ref.kind == PortRef::Kind::kPod && !s.port_by_name.contains(d.ref.ToString());
  }
  if (s.profile.max_vfs && VfCount(s) + new_vfs > s.profile.max_vfs) {
    return absl::ResourceExhaustedError(absl::StrCat(new_vfs, " new VFs: device profile ",
                                                     s.profile.name, " has ", s.profile.max_vfs));
  }
  for (const flowtables::PortDecl& d : ports) s.ports[EnsurePort(s, d.ref)].ips = d.ips;
  s.program_cache.reset();
  s.flow_cache.Invalidate();
  return absl::OkStatus();
}

}  // namespace nicflow::sim
