// Private state of TableImage, shared by the encoder's source files.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "nicflow/hw/image.h"
#include "nicflow/hw/image_format.h"

namespace nicflow::hw {

/// A table's layout and the host-side bookkeeping of its units.
struct TableLayout {
  flowtables::TableId id = 0;
  std::string name;
  std::vector<flowtables::KeyField> keys;
  std::vector<uint32_t> key_woff;  ///< word offset of each key in the key vector
  uint32_t key_words = 0;
  uint32_t desc = 0;  ///< word offset of the descriptor
  uint32_t default_slot = NF_NO_SLOT;

  uint32_t tcam_base = 0;
  uint32_t tcam_cap = 0;
  uint32_t tcam_used = 0;           ///< high-water mark
  std::vector<uint32_t> tcam_free;  ///< LIFO of freed rows below tcam_used
  uint32_t tcam_count = 0;

  uint32_t hash_base = 0;
  uint32_t hash_buckets = 0;
  uint32_t hash_fields = 0;  ///< field bitmap of the exact unit's key set (0: no unit)
  uint32_t hash_wordmask = 0;
  uint32_t hash_count = 0;
  uint32_t hash_at_probe[NF_HASH_MAX_PROBE] = {};  ///< valid slots by probe distance

  uint32_t lpm_base = 0;
  uint32_t lpm_buckets = 0;
  int lpm_key = -1;                                 ///< index into keys (-1: no unit)
  std::map<int, std::multiset<int32_t>> lpm_prios;  ///< prefix length -> priorities present
  uint32_t lpm_count = 0;
  uint32_t lpm_at_probe[NF_HASH_MAX_PROBE] = {};

  int KeyIndex(flowtables::Field f) const;
};

struct EntryPlace {
  Unit unit = Unit::kTcam;
  uint32_t row = 0;  ///< word offset of the row or slot
  uint32_t slot = NF_NO_SLOT;
  uint32_t probe = 0;  ///< exact/LPM: buckets past the home bucket
  flowtables::Entry entry;
};

struct GroupPlace {
  uint32_t index = 0;
  uint32_t lookup_off = 0;  ///< from maglev_base
  uint32_t lookup_size = 0;
  std::vector<uint32_t> bucket_slots;
  flowtables::SelectGroup group;
};

struct TableImage::State {
  ImageGeometry geo;
  flowtables::Program program;
  std::vector<uint32_t> w;
  std::vector<WordRange> dirty;
  std::vector<uint32_t> new_slots;

  std::vector<TableLayout> tables;
  absl::flat_hash_map<std::string, EntryPlace> entries;  // by EntryKey
  std::map<std::string, GroupPlace, std::less<>> groups;
  std::vector<const GroupPlace*> group_by_index;  // descriptor index -> group (nullptr: free)

  uint32_t action_base = 0;
  std::vector<uint32_t> action_free;  // LIFO
  std::vector<SlotOwner> owners;

  uint32_t group_base = 0;
  std::vector<uint32_t> group_free;  // LIFO
  uint32_t maglev_base = 0;
  std::map<uint32_t, uint32_t> maglev_free;  // offset -> length, coalesced

  std::vector<flowtables::PortRef> ports;
  absl::flat_hash_map<std::string, uint32_t> port_index;

  // Word writes (each marks its range dirty).
  void Set(uint32_t at, uint32_t v) {
    w[at] = v;
    MarkDirty(at, at + 1);
  }
  void Zero(uint32_t at, uint32_t n);
  /// A valid exact/LPM slot added (+1) or removed (-1) at probe distance `p`: keeps the
  /// descriptor's probe word (NF_TD_HASH_PROBES / NF_TD_LPM_PROBES) at 1 + the deepest in use.
  void CountProbe(uint32_t desc_word, uint32_t* at_probe, uint32_t p, int delta);
  void MarkDirty(uint32_t begin, uint32_t end);

  // Allocation.
  absl::StatusOr<uint32_t> AllocSlot(SlotOwner owner);
  void FreeSlot(uint32_t slot);
  absl::StatusOr<uint32_t> AllocMaglev(uint32_t words, const std::string& group);
  void FreeMaglev(uint32_t off, uint32_t words);
  uint32_t PortIndex(const flowtables::PortRef& p);

  // Encoding (image_encode.cc).
  absl::Status WriteActions(uint32_t slot, const std::vector<flowtables::Action>& actions,
                            bool in_bucket, const std::string& culprit);
  absl::Status AddEntry(const flowtables::Entry& e);
  absl::Status DeleteEntry(const flowtables::Entry& e);
  absl::Status ModifyEntry(const flowtables::Entry& e);
  absl::Status NotInTheImage(const flowtables::Entry& e) const;
  // Groups (image_groups.cc).
  absl::Status AddGroup(const flowtables::SelectGroup& g);
  absl::Status DeleteGroup(const flowtables::SelectGroup& g);
  absl::Status ModifyGroup(const flowtables::SelectGroup& g);

  absl::Status ApplyOp(const flowtables::DeltaOp& op);
};

/// The key-vector value/mask of one field match; Unimplemented for a range wider than a word.
struct KeyWords {
  uint32_t value[4] = {0, 0, 0, 0};
  uint32_t mask[4] = {0, 0, 0, 0};
  int nwords = 1;
  bool full = false;  ///< matches exactly one value (usable by the exact unit)
  int prefix_len = -1;
};
absl::StatusOr<KeyWords> EncodeMatch(const flowtables::FieldMatch& m, const std::string& culprit);

}  // namespace nicflow::hw
