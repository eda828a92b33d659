// TableImage::Create (layout and unit choice) and Apply (transactions with inverse-op rollback).
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "image_internal.h"
#include "nicflow/flowtables/status.h"

namespace nicflow::hw {

using flowtables::Delta;
using flowtables::DeltaOp;
using flowtables::Entry;
using flowtables::Field;
using flowtables::MatchKind;
using flowtables::Program;

namespace {

uint32_t FieldBitOf(Field f) { return 1u << static_cast<int>(f); }

// The exact unit's key set: the most common set of fields that entries match with full masks;
// without such entries, the table's exact-kind keys.
uint32_t ChooseHashFields(const TableLayout& t, const std::vector<Entry>& entries) {
  std::map<uint32_t, int> count;
  for (const Entry& e : entries) {
    uint32_t set = 0;
    bool all_full = !e.match.empty();
    for (const auto& m : e.match) {
      auto kw = EncodeMatch(m, "");
      if (!kw.ok() || !kw->full) all_full = false;
      set |= FieldBitOf(m.field);
    }
    if (all_full) ++count[set];
  }
  uint32_t best = 0;
  int best_n = 0;
  for (const auto& [set, n] : count) {
    if (n > best_n) best = set, best_n = n;
  }
  if (best != 0) return best;
  for (const auto& k : t.keys) {
    if (k.kind == MatchKind::kExact) best |= FieldBitOf(k.field);
  }
  return best;
}

// The LPM unit's key: the LPM key most entries match alone.
int ChooseLpmKey(const TableLayout& t, const std::vector<Entry>& entries) {
  std::map<int, int> count;
  int first = -1;
  for (size_t i = 0; i < t.keys.size(); ++i) {
    if (t.keys[i].kind != MatchKind::kLpm) continue;
    if (first < 0) first = static_cast<int>(i);
    count[static_cast<int>(i)] = 0;
  }
  for (const Entry& e : entries) {
    if (e.match.size() != 1) continue;
    const int k = t.KeyIndex(e.match[0].field);
    if (k >= 0 && t.keys[k].kind == MatchKind::kLpm) ++count[k];
  }
  int best = first;
  int best_n = 0;
  for (const auto& [k, n] : count) {
    if (n > best_n) best = k, best_n = n;
  }
  return best;
}

absl::Status LayoutTables(TableImage::State& s, const Program& p, uint32_t& at) {
  const ImageGeometry& g = s.geo;
  for (const auto& schema : p.tables) {
    TableLayout t;
    t.id = schema.id;
    t.name = schema.name;
    t.keys = schema.keys;
    if (t.keys.size() > NF_MAX_KEYS) {
      return absl::InvalidArgumentError(absl::StrCat("fpga image: table ", schema.name, " has ",
                                                     t.keys.size(), " keys; the format holds ",
                                                     NF_MAX_KEYS));
    }
    for (const auto& k : t.keys) {
      t.key_woff.push_back(t.key_words);
      t.key_words += NF_FIELD_NWORDS(static_cast<int>(k.field));
    }
    if (t.key_words > NF_MAX_KEY_WORDS) {
      return absl::InvalidArgumentError(absl::StrCat("fpga image: table ", schema.name, ": key of ",
                                                     t.key_words, " words exceeds ",
                                                     NF_MAX_KEY_WORDS));
    }
    t.desc = NF_HDR_TABLES + schema.id * NF_TABLE_DESC_WORDS;
    t.tcam_base = at;
    t.tcam_cap = g.tcam_rows_per_table;
    at += t.tcam_cap * NF_TCAM_ROW_WORDS;
    t.hash_base = at;
    at += g.hash_buckets_per_table * NF_HASH_BUCKET_SLOTS * NF_HASH_SLOT_WORDS;
    t.lpm_base = at;
    at += g.lpm_buckets_per_table * NF_HASH_BUCKET_SLOTS * NF_LPM_SLOT_WORDS;
    const auto& entries =
        p.entries.size() > schema.id ? p.entries[schema.id] : std::vector<Entry>{};
    t.hash_fields = ChooseHashFields(t, entries);
    if (t.hash_fields != 0) {
      t.hash_buckets = g.hash_buckets_per_table;
      for (size_t i = 0; i < t.keys.size(); ++i) {
        if (!(t.hash_fields & FieldBitOf(t.keys[i].field))) continue;
        const int n = NF_FIELD_NWORDS(static_cast<int>(t.keys[i].field));
        for (int j = 0; j < n; ++j) t.hash_wordmask |= 1u << (t.key_woff[i] + j);
      }
    }
    t.lpm_key = ChooseLpmKey(t, entries);
    if (t.lpm_key >= 0) t.lpm_buckets = g.lpm_buckets_per_table;
    s.tables.push_back(std::move(t));
  }
  return absl::OkStatus();
}

void WriteDescriptor(TableImage::State& s, const TableLayout& t) {
  const uint32_t d = t.desc;
  s.Set(d + NF_TD_KEY_COUNT, static_cast<uint32_t>(t.keys.size()));
  s.Set(d + NF_TD_KEY_WORDS, t.key_words);
  for (size_t i = 0; i < t.keys.size(); ++i) {
    const uint32_t f = static_cast<uint32_t>(t.keys[i].field);
    const uint32_t kind = static_cast<uint32_t>(t.keys[i].kind);
    s.Set(d + NF_TD_KEYS + i, f | kind << 8 | t.key_woff[i] << 16 |
                                  static_cast<uint32_t>(NF_FIELD_NWORDS(static_cast<int>(f)))
                                      << 24);
  }
  s.Set(d + NF_TD_DEFAULT_ACTION, t.default_slot);
  s.Set(d + NF_TD_TCAM_BASE, t.tcam_base);
  s.Set(d + NF_TD_TCAM_CAP, t.tcam_cap);
  s.Set(d + NF_TD_TCAM_USED, t.tcam_used);
  s.Set(d + NF_TD_HASH_BASE, t.hash_base);
  s.Set(d + NF_TD_HASH_BUCKETS, t.hash_buckets);
  s.Set(d + NF_TD_HASH_WORDMASK, t.hash_wordmask);
  s.Set(d + NF_TD_HASH_REQUIRED, t.hash_fields);
  s.Set(d + NF_TD_LPM_BASE, t.lpm_base);
  s.Set(d + NF_TD_LPM_BUCKETS, t.lpm_buckets);
  s.Set(d + NF_TD_LPM_KEY, t.lpm_key < 0 ? 0 : static_cast<uint32_t>(t.lpm_key));
  s.Set(d + NF_TD_COUNTER, t.id);
}

absl::Status CheckGeometry(const ImageGeometry& g) {
  auto pow2 = [](uint32_t v) { return v != 0 && (v & (v - 1)) == 0; };
  if (!pow2(g.hash_buckets_per_table) || !pow2(g.lpm_buckets_per_table) || !pow2(g.ct_buckets)) {
    return absl::InvalidArgumentError("fpga image: bucket counts must be powers of two");
  }
  if (g.action_slots > NF_TRACE_SLOT_MASK) {
    return absl::InvalidArgumentError("fpga image: at most 2^23-1 action slots");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<TableImage>> TableImage::Create(const ImageGeometry& geometry,
                                                               const Program& program) {
  NICFLOW_RETURN_IF_ERROR(CheckGeometry(geometry));
  if (program.tables.size() > NF_MAX_TABLES) {
    return absl::InvalidArgumentError(absl::StrCat("fpga image: ", program.tables.size(),
                                                   " tables; the format holds ", NF_MAX_TABLES));
  }
  auto s = std::make_unique<State>();
  s->geo = geometry;
  s->w.assign(geometry.ImageWords(program.tables.size()), 0);
  s->action_base = NF_HDR_WORDS;
  s->group_base = s->action_base + geometry.action_slots * NF_ACTION_SLOT_WORDS;
  s->maglev_base = s->group_base + geometry.group_capacity * NF_GROUP_DESC_WORDS;
  uint32_t at = s->maglev_base + geometry.maglev_words;
  s->owners.resize(geometry.action_slots);
  for (uint32_t i = geometry.action_slots; i > 0; --i) s->action_free.push_back(i - 1);
  for (uint32_t i = geometry.group_capacity; i > 0; --i) s->group_free.push_back(i - 1);
  if (geometry.maglev_words > 0) s->maglev_free.emplace(0, geometry.maglev_words);
  NICFLOW_RETURN_IF_ERROR(LayoutTables(*s, program, at));
  for (const auto& port : program.ports) s->PortIndex(port.ref);

  s->Set(NF_HDR_MAGIC, NF_IMAGE_MAGIC);
  s->Set(NF_HDR_VERSION, NF_IMAGE_VERSION);
  s->Set(NF_HDR_TOTAL_WORDS, static_cast<uint32_t>(s->w.size()));
  s->Set(NF_HDR_TABLE_COUNT, static_cast<uint32_t>(program.tables.size()));
  s->Set(NF_HDR_ACTION_BASE, s->action_base);
  s->Set(NF_HDR_ACTION_SLOTS, geometry.action_slots);
  s->Set(NF_HDR_GROUP_BASE, s->group_base);
  s->Set(NF_HDR_GROUP_CAP, geometry.group_capacity);
  s->Set(NF_HDR_MAGLEV_BASE, s->maglev_base);
  s->Set(NF_HDR_MAGLEV_WORDS, geometry.maglev_words);
  for (auto& t : s->tables) {
    NICFLOW_ASSIGN_OR_RETURN(t.default_slot,
                             s->AllocSlot({SlotOwner::Kind::kDefault, t.id, t.name, 0}));
    NICFLOW_RETURN_IF_ERROR(s->WriteActions(t.default_slot, program.tables[t.id].default_actions,
                                            false, absl::StrCat("table ", t.name, " default")));
    WriteDescriptor(*s, t);
  }
  s->program.tables = program.tables;
  s->program.entries.resize(program.tables.size());
  s->program.ports = program.ports;
  // Everything else goes in as a delta from the empty program, so Create and Apply share code.
  Program empty = s->program;
  NICFLOW_ASSIGN_OR_RETURN(Delta d, flowtables::Diff(empty, program));
  auto image = std::unique_ptr<TableImage>(new TableImage(std::move(s)));
  NICFLOW_RETURN_IF_ERROR(image->Apply(d));
  image->s_->program.ports = program.ports;
  return image;
}

absl::Status TableImage::Apply(const Delta& delta) {
  State& s = *s_;
  const size_t new_slots_before = s.new_slots.size();
  std::vector<DeltaOp> undo;
  undo.reserve(delta.ops.size());
  for (const DeltaOp& op : delta.ops) {
    DeltaOp inverse;
    using K = DeltaOp::Kind;
    switch (op.kind) {
      case K::kAddGroup:
        inverse = {K::kDeleteGroup, {}, op.group};
        break;
      case K::kDeleteGroup:
        inverse = {K::kAddGroup, {}, op.group};
        break;
      case K::kModifyGroup: {
        auto it = s.groups.find(op.group.name);
        if (it != s.groups.end()) inverse = {K::kModifyGroup, {}, it->second.group};
        break;
      }
      case K::kAddEntry:
        inverse = {K::kDeleteEntry, op.entry, {}};
        break;
      case K::kDeleteEntry:
        inverse = {K::kAddEntry, op.entry, {}};
        break;
      case K::kModifyEntry: {
        auto it = s.entries.find(flowtables::EntryKey(op.entry));
        if (it != s.entries.end()) inverse = {K::kModifyEntry, it->second.entry, {}};
        break;
      }
    }
    if (absl::Status st = s.ApplyOp(op); !st.ok()) {
      for (auto it = undo.rbegin(); it != undo.rend(); ++it) s.ApplyOp(*it).IgnoreError();
      s.new_slots.resize(new_slots_before);
      return st;
    }
    undo.push_back(std::move(inverse));
  }
  NICFLOW_RETURN_IF_ERROR(flowtables::ApplyDelta(s.program, delta));
  s.Set(NF_HDR_GENERATION, s.w[NF_HDR_GENERATION] + 1);
  return absl::OkStatus();
}

std::span<const uint32_t> TableImage::words() const { return s_->w; }

std::vector<WordRange> TableImage::TakeDirty() {
  std::vector<WordRange> d = std::move(s_->dirty);
  s_->dirty.clear();
  std::sort(d.begin(), d.end(), [](auto a, auto b) { return a.begin < b.begin; });
  std::vector<WordRange> merged;
  for (const WordRange& r : d) {
    if (!merged.empty() && r.begin <= merged.back().end) {
      merged.back().end = std::max(merged.back().end, r.end);
    } else {
      merged.push_back(r);
    }
  }
  return merged;
}

std::vector<uint32_t> TableImage::TakeNewCounterSlots() {
  std::vector<uint32_t> v = std::move(s_->new_slots);
  s_->new_slots.clear();
  return v;
}

const ImageGeometry& TableImage::geometry() const { return s_->geo; }
const Program& TableImage::program() const { return s_->program; }
const std::vector<flowtables::PortRef>& TableImage::ports() const { return s_->ports; }

const TableImage::SlotOwner& TableImage::OwnerOf(uint32_t slot) const {
  static const SlotOwner kFree;
  return slot < s_->owners.size() ? s_->owners[slot] : kFree;
}

std::optional<std::pair<uint32_t, Unit>> TableImage::SlotOf(const Entry& e) const {
  auto it = s_->entries.find(flowtables::EntryKey(e));
  if (it == s_->entries.end()) return std::nullopt;
  return std::make_pair(it->second.slot, it->second.unit);
}

std::optional<std::pair<std::string_view, std::string_view>> TableImage::GroupBucketOf(
    uint32_t index, uint32_t bucket) const {
  const auto& by = s_->group_by_index;
  if (index >= by.size() || by[index] == nullptr) return std::nullopt;
  const GroupPlace& gp = *by[index];
  if (bucket >= gp.group.buckets.size()) return std::nullopt;
  // Views of the image's own strings (make_pair would copy them into temporaries).
  return std::pair<std::string_view, std::string_view>(gp.group.name,
                                                       gp.group.buckets[bucket].label);
}

uint64_t TableImage::BucketLabelHash(uint32_t index, uint32_t bucket) const {
  const auto& by = s_->group_by_index;
  if (index >= by.size() || by[index] == nullptr) return 0;
  const GroupPlace& gp = *by[index];
  if (bucket >= gp.group.buckets.size()) return 0;
  const uint32_t at = s_->maglev_base + gp.lookup_off + bucket * NF_BUCKET_WORDS;
  return uint64_t{s_->w[at + NF_BK_LABEL_HI]} << 32 | s_->w[at + NF_BK_LABEL_LO];
}

TableImage::UnitUse TableImage::UseOf(flowtables::TableId t) const {
  if (t >= s_->tables.size()) return {};
  const TableLayout& l = s_->tables[t];
  return {l.tcam_count, l.hash_count, l.lpm_count};
}

}  // namespace nicflow::hw
