// TableImage: layout, allocators, dirty tracking and transactional Apply().
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "image_internal.h"
#include "nicflow/flowtables/status.h"

namespace nicflow::hw {

using flowtables::Delta;
using flowtables::DeltaOp;
using flowtables::Program;

namespace {

uint32_t TableWords(const ImageGeometry& g) {
  return g.tcam_rows_per_table * NF_TCAM_ROW_WORDS +
         g.hash_buckets_per_table * NF_HASH_BUCKET_SLOTS * NF_HASH_SLOT_WORDS +
         g.lpm_buckets_per_table * NF_HASH_BUCKET_SLOTS * NF_LPM_SLOT_WORDS;
}

// The byte table of the reflected CRC-32C (the kernel's nf_crc_table): one lookup per byte
// instead of eight shift steps. The host hashes two tuples per new connection (free-slot search).
struct CrcTable {
  uint32_t t[256];
  constexpr CrcTable() : t{} {
    for (uint32_t b = 0; b < 256; ++b) {
      uint32_t crc = b;
      for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (NF_CRC32C_POLY & (0u - (crc & 1u)));
      t[b] = crc;
    }
  }
};
constexpr CrcTable kCrc;

}  // namespace

uint32_t ImageGeometry::ImageWords(size_t table_count) const {
  return NF_HDR_WORDS + action_slots * NF_ACTION_SLOT_WORDS + group_capacity * NF_GROUP_DESC_WORDS +
         maglev_words + static_cast<uint32_t>(table_count) * TableWords(*this);
}

ImageCapacity CapacityOf(const ImageGeometry& g) {
  ImageCapacity c;
  c.ternary_rows_per_table = g.tcam_rows_per_table;
  c.exact_entries_per_table = g.hash_buckets_per_table * NF_HASH_BUCKET_SLOTS;
  c.lpm_entries_per_table = g.lpm_buckets_per_table * NF_HASH_BUCKET_SLOTS;
  c.action_slots = g.action_slots;
  c.groups = g.group_capacity;
  c.maglev_words = g.maglev_words;
  c.connections = g.ct_connections;
  return c;
}

std::string_view UnitName(Unit u) {
  switch (u) {
    case Unit::kTcam:
      return "ternary";
    case Unit::kExact:
      return "exact";
    case Unit::kLpm:
      return "lpm";
  }
  return "?";
}

uint32_t ImageHash(std::span<const uint32_t> words, uint32_t seed) noexcept {
  uint32_t crc = seed;
  for (uint32_t w : words) {
    for (int i = 0; i < 4; ++i) crc = kCrc.t[(crc ^ (w >> (8 * i))) & 0xffu] ^ (crc >> 8);
  }
  return crc;
}

void FieldWords(flowtables::U128 v, int nwords, uint32_t* out) noexcept {
  if (nwords == 1) {
    out[0] = static_cast<uint32_t>(v.lo);
    return;
  }
  out[0] = static_cast<uint32_t>(v.hi >> 32);
  out[1] = static_cast<uint32_t>(v.hi);
  out[2] = static_cast<uint32_t>(v.lo >> 32);
  out[3] = static_cast<uint32_t>(v.lo);
}

int TableLayout::KeyIndex(flowtables::Field f) const {
  for (size_t i = 0; i < keys.size(); ++i) {
    if (keys[i].field == f) return static_cast<int>(i);
  }
  return -1;
}

void TableImage::State::Zero(uint32_t at, uint32_t n) {
  std::fill(w.begin() + at, w.begin() + at + n, 0u);
  MarkDirty(at, at + n);
}

void TableImage::State::CountProbe(uint32_t desc_word, uint32_t* at_probe, uint32_t p, int delta) {
  at_probe[p] = static_cast<uint32_t>(static_cast<int>(at_probe[p]) + delta);
  uint32_t depth = NF_HASH_MAX_PROBE;
  while (depth > 0 && at_probe[depth - 1] == 0) --depth;
  if (w[desc_word] != depth) Set(desc_word, depth);
}

void TableImage::State::MarkDirty(uint32_t begin, uint32_t end) {
  if (!dirty.empty() && dirty.back().end >= begin && dirty.back().begin <= end) {
    dirty.back().begin = std::min(dirty.back().begin, begin);
    dirty.back().end = std::max(dirty.back().end, end);
    return;
  }
  dirty.push_back({begin, end});
}

absl::StatusOr<uint32_t> TableImage::State::AllocSlot(SlotOwner owner) {
  if (action_free.empty()) {
    return absl::ResourceExhaustedError(absl::StrCat("fpga image: all ", geo.action_slots,
                                                     " action slots in use (adding ",
                                                     owner.entry_key, ")"));
  }
  const uint32_t slot = action_free.back();
  action_free.pop_back();
  owners[slot] = std::move(owner);
  new_slots.push_back(slot);
  return slot;
}

void TableImage::State::FreeSlot(uint32_t slot) {
  owners[slot] = SlotOwner{};
  Zero(action_base + slot * NF_ACTION_SLOT_WORDS, NF_ACTION_SLOT_WORDS);
  action_free.push_back(slot);
}

absl::StatusOr<uint32_t> TableImage::State::AllocMaglev(uint32_t words, const std::string& group) {
  for (auto it = maglev_free.begin(); it != maglev_free.end(); ++it) {
    if (it->second < words) continue;
    const uint32_t off = it->first;
    const uint32_t rest = it->second - words;
    maglev_free.erase(it);
    if (rest > 0) maglev_free.emplace(off + words, rest);
    return off;
  }
  return absl::ResourceExhaustedError(absl::StrCat("fpga image: group ", group, ": no room for a ",
                                                   words, "-slot lookup table (maglev area of ",
                                                   geo.maglev_words, " words is full)"));
}

void TableImage::State::FreeMaglev(uint32_t off, uint32_t words) {
  if (words == 0) return;
  auto [it, inserted] = maglev_free.emplace(off, words);
  if (auto next = std::next(it);
      next != maglev_free.end() && it->first + it->second == next->first) {
    it->second += next->second;
    maglev_free.erase(next);
  }
  if (it != maglev_free.begin()) {
    auto prev = std::prev(it);
    if (prev->first + prev->second == it->first) {
      prev->second += it->second;
      maglev_free.erase(it);
    }
  }
}

uint32_t TableImage::State::PortIndex(const flowtables::PortRef& p) {
  const std::string name = p.ToString();
  auto [it, inserted] = port_index.emplace(name, static_cast<uint32_t>(ports.size()));
  if (inserted) ports.push_back(p);
  return it->second;
}

absl::Status TableImage::State::ApplyOp(const DeltaOp& op) {
  switch (op.kind) {
    case DeltaOp::Kind::kAddGroup:
      return AddGroup(op.group);
    case DeltaOp::Kind::kModifyGroup:
      return ModifyGroup(op.group);
    case DeltaOp::Kind::kDeleteGroup:
      return DeleteGroup(op.group);
    case DeltaOp::Kind::kAddEntry:
      return AddEntry(op.entry);
    case DeltaOp::Kind::kModifyEntry:
      return ModifyEntry(op.entry);
    case DeltaOp::Kind::kDeleteEntry:
      return DeleteEntry(op.entry);
  }
  return absl::InternalError("unknown delta op");
}

TableImage::TableImage(std::unique_ptr<State> s) : s_(std::move(s)) {}
TableImage::~TableImage() = default;

}  // namespace nicflow::hw
