// The table image encoder: a flowtables::Program as the words the match-action kernel reads.
//
// Design
// ------
// The naive encoder lays every table out as a TCAM (one row per entry, priority-scanned). That
// expresses every match kind but spends a full row (and, in silicon, a TCAM cell per key bit) on
// entries that a hash or a prefix walk finds as well. So each table gets up to three units
// (image_format.h has the layouts):
//   * an exact-match hash unit for entries that match one fixed set of fields with full masks
//     (chosen at creation as the most common such set in the initial program),
//   * an LPM unit for entries that mention only one LPM key (chosen likewise), admitted only
//     while priorities grow with prefix length so the longest match is the best one,
//   * a TCAM for everything else, with range comparators for RANGE keys.
// A lookup takes the highest-priority hit among the units. An entry that does not fit its
// preferred unit (bucket chain full, priority order broken) falls back to the TCAM.
//
// Incremental updates: Apply() writes only the rows a delta touches and records them as dirty
// word ranges; the device driver copies those ranges to the shadow image and flips. A failed
// Apply() runs the inverse of the ops already done in reverse order; allocators are LIFO so the
// rollback restores the very same rows, and the image is word-for-word what it was.
//
// Thread-safety: none (the driver serialises updates).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "nicflow/flowtables/ir.h"

namespace nicflow::hw {

/// Fixed sizes of an image; they decide the capacities the device reports.
struct ImageGeometry {
  uint32_t tcam_rows_per_table = 1024;
  uint32_t hash_buckets_per_table = 256;  ///< power of two; x NF_HASH_BUCKET_SLOTS entries
  uint32_t lpm_buckets_per_table = 256;   ///< power of two; x NF_HASH_BUCKET_SLOTS entries
  uint32_t action_slots = 16384;          ///< entries + buckets + table defaults
  uint32_t group_capacity = 2048;
  uint32_t maglev_words = 1u << 21;  ///< all groups' lookup tables together
  uint32_t ct_buckets = 1u << 14;    ///< power of two; x NF_HASH_BUCKET_SLOTS tuples
  uint32_t ct_connections = 1u << 15;

  /// Words of one image copy.
  uint32_t ImageWords(size_t table_count) const;
};

/// What an image of a given geometry holds (reported as the device's capabilities).
struct ImageCapacity {
  uint32_t ternary_rows_per_table = 0;
  uint32_t exact_entries_per_table = 0;
  uint32_t lpm_entries_per_table = 0;
  uint32_t action_slots = 0;
  uint32_t groups = 0;
  uint32_t maglev_words = 0;
  uint32_t connections = 0;
};
ImageCapacity CapacityOf(const ImageGeometry& g);

/// A range of image words [begin, end) that changed.
struct WordRange {
  uint32_t begin = 0;
  uint32_t end = 0;
};

/// Where an entry lives.
enum class Unit : uint8_t { kTcam, kExact, kLpm };
std::string_view UnitName(Unit u);

/// CRC-32C over words, least significant byte first, no final inversion (image_format.h).
uint32_t ImageHash(std::span<const uint32_t> words, uint32_t seed) noexcept;

/// One U128 field value as key words, most significant first (`nwords` = 1 or 4).
void FieldWords(flowtables::U128 v, int nwords, uint32_t* out) noexcept;

class TableImage {
 public:
  /// Encodes `program` into a new image. Errors: InvalidArgument (more tables or keys than the
  /// format holds), Unimplemented (a match or action the kernel cannot express, naming the table
  /// and entry), ResourceExhausted (the program does not fit the geometry, naming what is full).
  static absl::StatusOr<std::unique_ptr<TableImage>> Create(const ImageGeometry& geometry,
                                                            const flowtables::Program& program);
  ~TableImage();

  /// Applies a delta (from flowtables::Diff against the installed program). All or nothing:
  /// on error the image is unchanged. Dirty ranges accumulate until TakeDirty().
  absl::Status Apply(const flowtables::Delta& delta);

  /// The whole image (what a device copy must hold).
  std::span<const uint32_t> words() const;
  /// Ranges written since the last call, merged and sorted.
  std::vector<WordRange> TakeDirty();
  /// Action slots newly given to entries since the last call (their counters must be zeroed).
  std::vector<uint32_t> TakeNewCounterSlots();

  const ImageGeometry& geometry() const;
  const flowtables::Program& program() const;  ///< the program the image holds

  /// Port table: index <-> PortRef (indices are stable for the image's life).
  const std::vector<flowtables::PortRef>& ports() const;

  /// Reverse map of an action slot for traces and counters.
  struct SlotOwner {
    enum class Kind : uint8_t { kFree, kDefault, kEntry, kBucket };
    Kind kind = Kind::kFree;
    flowtables::TableId table = 0;
    std::string entry_key;  ///< EntryKey() of the entry, or the group name for a bucket
    uint32_t bucket = 0;
  };
  const SlotOwner& OwnerOf(uint32_t slot) const;
  /// The action slot of an entry (by EntryKey) and its unit; nullopt when absent.
  std::optional<std::pair<uint32_t, Unit>> SlotOf(const flowtables::Entry& e) const;
  /// The name of the group at descriptor `index` and the label of its bucket `bucket` (as the
  /// kernel reports them), valid while the image is unchanged; nullopt when absent.
  std::optional<std::pair<std::string_view, std::string_view>> GroupBucketOf(uint32_t index,
                                                                             uint32_t bucket) const;
  /// The label hash of a group's bucket (affinity records); 0 when absent.
  uint64_t BucketLabelHash(uint32_t index, uint32_t bucket) const;
  /// Entries per unit (for capacity reports and tests).
  struct UnitUse {
    uint32_t tcam = 0, exact = 0, lpm = 0;
  };
  UnitUse UseOf(flowtables::TableId t) const;

  struct State;  // private; defined in image_internal.h

 private:
  explicit TableImage(std::unique_ptr<State> s);
  std::unique_ptr<State> s_;
};

}  // namespace nicflow::hw
