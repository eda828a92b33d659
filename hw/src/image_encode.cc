// TableImage: encoding of matches, action lists and entry rows in the three units.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "image_internal.h"
#include "nicflow/flowtables/status.h"

namespace nicflow::hw {

using flowtables::Action;
using flowtables::Entry;
using flowtables::Field;
using flowtables::FieldMatch;
using flowtables::KeyField;
using flowtables::U128;

namespace {

uint32_t FieldBitOf(Field f) { return 1u << static_cast<int>(f); }

// Value words of an action operand: always 4 words, most significant first.
void Words4(U128 v, uint32_t* out) { FieldWords(v, 4, out); }

U128 AddrU128(const flowtables::IpAddr& a) { return U128::FromIp(a); }

struct ActionWriter {
  std::vector<uint32_t> words;
  void Op(uint32_t op, std::initializer_list<uint32_t> operands) {
    words.push_back(NF_OP_WORD(op, operands.size() + 1));
    words.insert(words.end(), operands);
  }
};

}  // namespace

absl::StatusOr<KeyWords> EncodeMatch(const FieldMatch& m, const std::string& culprit) {
  const auto& info = flowtables::GetFieldInfo(m.field);
  KeyWords k;
  k.nwords = NF_FIELD_NWORDS(static_cast<int>(m.field));
  const U128 ones = U128::Ones(info.width_bits);
  U128 value, mask;
  if (const auto* e = std::get_if<flowtables::ExactMatch>(&m.value)) {
    value = e->value, mask = ones, k.full = true;
  } else if (const auto* t = std::get_if<flowtables::TernaryMatch>(&m.value)) {
    value = t->value & t->mask, mask = t->mask & ones, k.full = mask == ones;
  } else if (const auto* l = std::get_if<flowtables::LpmMatch>(&m.value)) {
    mask = U128::PrefixMask(info.width_bits, l->prefix_len_bits);
    value = l->value & mask, k.full = l->prefix_len_bits == info.width_bits;
    k.prefix_len = l->prefix_len_bits;
  } else {
    const auto& r = std::get<flowtables::RangeMatch>(m.value);
    if (k.nwords != 1) {
      return absl::UnimplementedError(absl::StrCat(culprit, ": range match on ", Sv(info.name),
                                                   " (wider than 32 bits) is not supported"));
    }
    // Range keys keep the bounds in the value/mask words (image_format.h, TCAM rows); a
    // one-value range is also usable by the exact unit, which reads only the value.
    FieldWords(r.lo, 1, k.value);
    FieldWords(r.hi, 1, k.mask);
    k.full = r.lo == r.hi;
    return k;
  }
  FieldWords(value, k.nwords, k.value);
  FieldWords(mask, k.nwords, k.mask);
  return k;
}

absl::Status TableImage::State::WriteActions(uint32_t slot, const std::vector<Action>& actions,
                                             bool in_bucket, const std::string& culprit) {
  ActionWriter aw;
  for (const Action& a : actions) {
    if (std::holds_alternative<flowtables::DropAction>(a)) {
      aw.Op(NF_OP_DROP, {});
    } else if (std::holds_alternative<flowtables::RejectAction>(a)) {
      aw.Op(NF_OP_REJECT, {});
    } else if (const auto* o = std::get_if<flowtables::OutputAction>(&a)) {
      aw.Op(NF_OP_OUTPUT, {PortIndex(o->port)});
    } else if (const auto* g = std::get_if<flowtables::GotoAction>(&a)) {
      aw.Op(NF_OP_GOTO, {g->table});
    } else if (const auto* sf = std::get_if<flowtables::SetFieldAction>(&a)) {
      uint32_t v[4], m[4];
      Words4(sf->value & sf->mask, v);
      Words4(sf->mask, m);
      aw.Op(NF_OP_SET_FIELD,
            {static_cast<uint32_t>(sf->field), v[0], v[1], v[2], v[3], m[0], m[1], m[2], m[3]});
    } else if (const auto* d = std::get_if<flowtables::DnatAction>(&a)) {
      uint32_t v[4];
      Words4(AddrU128(d->addr), v);
      const uint32_t flags = (d->addr.is_v4() ? 0u : 1u) | (d->port != 0 ? 2u : 0u);
      aw.Op(NF_OP_DNAT, {flags, v[0], v[1], v[2], v[3], d->port});
    } else if (const auto* sn = std::get_if<flowtables::SnatAction>(&a)) {
      uint32_t v[4];
      Words4(AddrU128(sn->addr), v);
      aw.Op(NF_OP_SNAT, {sn->addr.is_v4() ? 0u : 1u, v[0], v[1], v[2], v[3],
                         uint32_t{sn->port_lo} << 16 | sn->port_hi});
    } else if (const auto* gr = std::get_if<flowtables::GroupAction>(&a)) {
      if (in_bucket) {
        return absl::UnimplementedError(
            absl::StrCat(culprit, ": a group inside a group bucket is not supported"));
      }
      auto it = groups.find(gr->group);
      if (it == groups.end()) {
        return absl::FailedPreconditionError(
            absl::StrCat(culprit, ": group ", gr->group, " is not in the image"));
      }
      aw.Op(NF_OP_GROUP, {it->second.index});
    } else if (const auto* cl = std::get_if<flowtables::CtLookupAction>(&a)) {
      aw.Op(NF_OP_CT_LOOKUP, {cl->zone});
    } else if (const auto* cc = std::get_if<flowtables::CtCommitAction>(&a)) {
      aw.Op(NF_OP_CT_COMMIT, {cc->zone});
    } else {
      aw.Op(NF_OP_PUNT, {});
    }
  }
  if (aw.words.size() > NF_ACTION_SLOT_WORDS) {
    return absl::UnimplementedError(absl::StrCat(culprit, ": action list of ", aw.words.size(),
                                                 " words exceeds the ", NF_ACTION_SLOT_WORDS,
                                                 "-word action slot"));
  }
  const uint32_t base = action_base + slot * NF_ACTION_SLOT_WORDS;
  Zero(base, NF_ACTION_SLOT_WORDS);
  std::copy(aw.words.begin(), aw.words.end(), w.begin() + base);
  return absl::OkStatus();
}

namespace {

struct EncodedEntry {
  uint32_t value[NF_MAX_KEY_WORDS] = {};
  uint32_t mask[NF_MAX_KEY_WORDS] = {};
  uint32_t required = 0;
  uint32_t full_fields = 0;  // fields matched with a full mask
  int lpm_len = -1;          // prefix length when the entry is a single LPM match
};

absl::StatusOr<EncodedEntry> EncodeEntry(const TableLayout& t, const Entry& e,
                                         const std::string& culprit) {
  EncodedEntry out;
  for (const FieldMatch& m : e.match) {
    const int k = t.KeyIndex(m.field);
    if (k < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          culprit, ": field ", Sv(flowtables::GetFieldInfo(m.field).name), " is not a key"));
    }
    NICFLOW_ASSIGN_OR_RETURN(KeyWords kw, EncodeMatch(m, culprit));
    for (int j = 0; j < kw.nwords; ++j) {
      out.value[t.key_woff[k] + j] = kw.value[j];
      out.mask[t.key_woff[k] + j] = kw.mask[j];
    }
    out.required |= FieldBitOf(m.field);
    if (kw.full) out.full_fields |= FieldBitOf(m.field);
    if (e.match.size() == 1 && k == t.lpm_key) out.lpm_len = kw.prefix_len;
  }
  return out;
}

bool LpmAdmits(const TableLayout& t, int len, int32_t prio) {
  for (const auto& [l, prios] : t.lpm_prios) {
    if (prios.empty()) continue;
    if (l<len&& * prios.rbegin()> prio) return false;
    if (l > len && *prios.begin() < prio) return false;
  }
  return true;
}

}  // namespace

absl::Status TableImage::State::AddEntry(const Entry& e) {
  const std::string key = flowtables::EntryKey(e);
  if (e.table >= tables.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("table ", e.table, " entry ", flowtables::EntryText(e), ": no such table"));
  }
  TableLayout& t = tables[e.table];
  const std::string culprit = absl::StrCat("table ", t.name, " entry ", flowtables::EntryText(e));
  if (entries.contains(key)) return absl::AlreadyExistsError(culprit + ": already in the image");
  NICFLOW_ASSIGN_OR_RETURN(EncodedEntry enc, EncodeEntry(t, e, culprit));
  NICFLOW_ASSIGN_OR_RETURN(uint32_t slot, AllocSlot({SlotOwner::Kind::kEntry, t.id, key, 0}));
  if (absl::Status st = WriteActions(slot, e.actions, false, culprit); !st.ok()) {
    FreeSlot(slot);
    new_slots.pop_back();
    return st;
  }
  EntryPlace place{Unit::kTcam, 0, slot, 0, e};
  bool placed = false;
  const uint32_t prio = static_cast<uint32_t>(e.priority);
  if (t.hash_buckets != 0 && enc.required == t.hash_fields && enc.full_fields == t.hash_fields) {
    uint32_t hkey[NF_MAX_KEY_WORDS];
    uint32_t n = 0;
    for (uint32_t wi = 0; wi < NF_MAX_KEY_WORDS; ++wi) {
      if (t.hash_wordmask & (1u << wi)) hkey[n++] = enc.value[wi];
    }
    const uint32_t b = ImageHash({hkey, n}, t.id) & (t.hash_buckets - 1);
    for (uint32_t p = 0; p < NF_HASH_MAX_PROBE && !placed; ++p) {
      const uint32_t bucket = (b + p) & (t.hash_buckets - 1);
      for (uint32_t i = 0; i < NF_HASH_BUCKET_SLOTS && !placed; ++i) {
        const uint32_t at = t.hash_base + (bucket * NF_HASH_BUCKET_SLOTS + i) * NF_HASH_SLOT_WORDS;
        if (w[at + NF_HASH_FLAGS] & NF_VALID) continue;
        for (uint32_t wi = 0; wi < NF_MAX_KEY_WORDS; ++wi)
          Set(at + NF_HASH_KEY + wi, enc.value[wi]);
        Set(at + NF_HASH_PRIORITY, prio);
        Set(at + NF_HASH_ACTION, slot);
        Set(at + NF_HASH_FLAGS, NF_VALID);  // valid last, as the device must write it
        place.unit = Unit::kExact, place.row = at, place.probe = p, placed = true;
        ++t.hash_count;
        CountProbe(t.desc + NF_TD_HASH_PROBES, t.hash_at_probe, p, +1);
      }
    }
  }
  if (!placed && t.lpm_buckets != 0 && enc.lpm_len >= 0 && LpmAdmits(t, enc.lpm_len, e.priority)) {
    const KeyField& kf = t.keys[t.lpm_key];
    const int nw = NF_FIELD_NWORDS(static_cast<int>(kf.field));
    uint32_t hkey[5] = {static_cast<uint32_t>(enc.lpm_len), 0, 0, 0, 0};
    for (int j = 0; j < nw; ++j) hkey[1 + j] = enc.value[t.key_woff[t.lpm_key] + j];
    const uint32_t b =
        ImageHash({hkey, static_cast<size_t>(1 + nw)}, 0x4c500000u | t.id) & (t.lpm_buckets - 1);
    for (uint32_t p = 0; p < NF_HASH_MAX_PROBE && !placed; ++p) {
      const uint32_t bucket = (b + p) & (t.lpm_buckets - 1);
      for (uint32_t i = 0; i < NF_HASH_BUCKET_SLOTS && !placed; ++i) {
        const uint32_t at = t.lpm_base + (bucket * NF_HASH_BUCKET_SLOTS + i) * NF_LPM_SLOT_WORDS;
        if (w[at + NF_LPM_FLAGS] & NF_VALID) continue;
        for (int j = 0; j < 4; ++j) Set(at + NF_LPM_VALUE + j, j < nw ? hkey[1 + j] : 0);
        Set(at + NF_LPM_PRIORITY, prio);
        Set(at + NF_LPM_ACTION, slot);
        Set(at + NF_LPM_FLAGS, NF_VALID | static_cast<uint32_t>(enc.lpm_len));
        place.unit = Unit::kLpm, place.row = at, place.probe = p, placed = true;
        CountProbe(t.desc + NF_TD_LPM_PROBES, t.lpm_at_probe, p, +1);
        t.lpm_prios[enc.lpm_len].insert(e.priority);
        const uint32_t lens = t.desc + NF_TD_LPM_LENS + enc.lpm_len / 32;
        Set(lens, w[lens] | 1u << (enc.lpm_len % 32));
        ++t.lpm_count;
      }
    }
  }
  if (!placed) {
    uint32_t row;
    if (!t.tcam_free.empty()) {
      row = t.tcam_free.back();
      t.tcam_free.pop_back();
    } else if (t.tcam_used < t.tcam_cap) {
      row = t.tcam_used++;
      Set(t.desc + NF_TD_TCAM_USED, t.tcam_used);
    } else {
      FreeSlot(slot);
      new_slots.pop_back();
      return absl::ResourceExhaustedError(
          absl::StrCat(culprit, ": table ", t.name, " is full (", t.tcam_cap, " ternary rows, ",
                       t.hash_count, " exact and ", t.lpm_count, " LPM entries in use)"));
    }
    const uint32_t at = t.tcam_base + row * NF_TCAM_ROW_WORDS;
    Set(at + NF_TCAM_PRIORITY, prio);
    Set(at + NF_TCAM_ACTION, slot);
    Set(at + NF_TCAM_REQUIRED, enc.required);
    for (uint32_t wi = 0; wi < NF_MAX_KEY_WORDS; ++wi) {
      Set(at + NF_TCAM_VALUE + wi, enc.value[wi]);
      Set(at + NF_TCAM_MASK + wi, enc.mask[wi]);
    }
    Set(at + NF_TCAM_FLAGS, NF_VALID);
    place.unit = Unit::kTcam, place.row = at;
    ++t.tcam_count;
  }
  entries.emplace(key, std::move(place));
  return absl::OkStatus();
}

absl::Status TableImage::State::NotInTheImage(const Entry& e) const {
  const std::string table = e.table < tables.size() ? tables[e.table].name : absl::StrCat(e.table);
  return absl::NotFoundError(
      absl::StrCat("table ", table, " entry ", flowtables::EntryText(e), ": not in the image"));
}

absl::Status TableImage::State::DeleteEntry(const Entry& e) {
  const std::string key = flowtables::EntryKey(e);
  auto it = entries.find(key);
  if (it == entries.end()) return NotInTheImage(e);
  EntryPlace& p = it->second;
  TableLayout& t = tables[p.entry.table];
  switch (p.unit) {
    case Unit::kExact:
      Zero(p.row, NF_HASH_SLOT_WORDS);
      --t.hash_count;
      CountProbe(t.desc + NF_TD_HASH_PROBES, t.hash_at_probe, p.probe, -1);
      break;
    case Unit::kLpm: {
      const int len = static_cast<int>(w[p.row + NF_LPM_FLAGS] & 0xffu);
      Zero(p.row, NF_LPM_SLOT_WORDS);
      CountProbe(t.desc + NF_TD_LPM_PROBES, t.lpm_at_probe, p.probe, -1);
      auto& prios = t.lpm_prios[len];
      prios.erase(prios.find(p.entry.priority));
      if (prios.empty()) {
        t.lpm_prios.erase(len);
        const uint32_t lens = t.desc + NF_TD_LPM_LENS + len / 32;
        Set(lens, w[lens] & ~(1u << (len % 32)));
      }
      --t.lpm_count;
      break;
    }
    case Unit::kTcam:
      Zero(p.row, NF_TCAM_ROW_WORDS);
      if (const uint32_t row = (p.row - t.tcam_base) / NF_TCAM_ROW_WORDS; row + 1 == t.tcam_used) {
        // The top row: shrink the searched range (a rollback then restores the descriptor too).
        Set(t.desc + NF_TD_TCAM_USED, --t.tcam_used);
      } else {
        t.tcam_free.push_back(row);
      }
      --t.tcam_count;
      break;
  }
  FreeSlot(p.slot);
  entries.erase(it);
  return absl::OkStatus();
}

absl::Status TableImage::State::ModifyEntry(const Entry& e) {
  const std::string key = flowtables::EntryKey(e);
  auto it = entries.find(key);
  if (it == entries.end()) return NotInTheImage(e);
  // Same identity, new actions: rewrite the action slot in place so the counter survives.
  NICFLOW_RETURN_IF_ERROR(WriteActions(
      it->second.slot, e.actions, false,
      absl::StrCat("table ", tables[e.table].name, " entry ", flowtables::EntryText(e))));
  it->second.entry = e;
  return absl::OkStatus();
}

}  // namespace nicflow::hw
