// TableImage: select groups (descriptor, bucket table, weighted Maglev lookup table).
//
// The lookup table must pick the same bucket as the software simulator for the same flow, so the
// algorithm below is the simulator's (nicflow/sim/maglev.h): permutations from a hash of each
// bucket's label, credit-based weights, a prime table size >= 100 x buckets. hw/ does not link
// sim/; the differential tests keep the two in step.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "image_internal.h"
#include "maglev.h"
#include "nicflow/flowtables/status.h"

namespace nicflow::hw {

using flowtables::SelectGroup;

absl::Status TableImage::State::AddGroup(const SelectGroup& g) {
  if (groups.contains(g.name)) return absl::AlreadyExistsError("group " + g.name + ": exists");
  if (g.hash_fields.size() > NF_MAX_HASH_FIELDS) {
    return absl::UnimplementedError(absl::StrCat("group ", g.name, ": ", g.hash_fields.size(),
                                                 " hash fields; the kernel hashes at most ",
                                                 NF_MAX_HASH_FIELDS));
  }
  if (g.buckets.size() > NF_MAX_BUCKETS) {
    return absl::ResourceExhaustedError(absl::StrCat("group ", g.name, ": ", g.buckets.size(),
                                                     " buckets; at most ", NF_MAX_BUCKETS));
  }
  if (group_free.empty()) {
    return absl::ResourceExhaustedError(
        absl::StrCat("group ", g.name, ": all ", geo.group_capacity, " group descriptors in use"));
  }
  std::vector<MaglevBackend> backends;
  std::vector<uint64_t> labels;
  for (size_t i = 0; i < g.buckets.size(); ++i) {
    const std::string label =
        g.buckets[i].label.empty() ? absl::StrCat("#", i) : g.buckets[i].label;
    labels.push_back(HashLabel(label));
    backends.push_back({labels.back(), g.buckets[i].weight});
  }
  const MaglevLookup lookup = BuildMaglev(backends);
  const uint32_t nb = static_cast<uint32_t>(g.buckets.size());
  const uint32_t region_words = nb * NF_BUCKET_WORDS + static_cast<uint32_t>(lookup.size());
  GroupPlace gp;
  gp.group = g;
  NICFLOW_ASSIGN_OR_RETURN(gp.lookup_off, AllocMaglev(region_words, g.name));
  gp.lookup_size = region_words;
  // Bucket action lists; undo the allocations if one fails.
  for (uint32_t b = 0; b < nb; ++b) {
    absl::StatusOr<uint32_t> slot = AllocSlot({SlotOwner::Kind::kBucket, 0, g.name, b});
    absl::Status st = slot.status();
    if (st.ok()) {
      gp.bucket_slots.push_back(*slot);
      st = WriteActions(*slot, g.buckets[b].actions, true,
                        absl::StrCat("group ", g.name, " bucket ", g.buckets[b].label));
    }
    if (!st.ok()) {
      for (auto it = gp.bucket_slots.rbegin(); it != gp.bucket_slots.rend(); ++it) {
        FreeSlot(*it);
        new_slots.pop_back();
      }
      FreeMaglev(gp.lookup_off, region_words);
      return st;
    }
  }
  gp.index = group_free.back();
  group_free.pop_back();
  const uint32_t region = maglev_base + gp.lookup_off;
  for (uint32_t b = 0; b < nb; ++b) {
    const uint32_t at = region + b * NF_BUCKET_WORDS;
    Set(at + NF_BK_SLOT, gp.bucket_slots[b]);
    Set(at + NF_BK_WEIGHT, g.buckets[b].weight);
    Set(at + NF_BK_LABEL_LO, static_cast<uint32_t>(labels[b]));
    Set(at + NF_BK_LABEL_HI, static_cast<uint32_t>(labels[b] >> 32));
  }
  const uint32_t lk = region + nb * NF_BUCKET_WORDS;
  std::copy(lookup.begin(), lookup.end(), w.begin() + lk);
  MarkDirty(lk, lk + static_cast<uint32_t>(lookup.size()));
  const uint32_t d = group_base + gp.index * NF_GROUP_DESC_WORDS;
  uint32_t hf[2] = {0, 0};
  for (size_t i = 0; i < g.hash_fields.size(); ++i) {
    hf[i / 4] |= static_cast<uint32_t>(g.hash_fields[i]) << (8 * (i % 4));
  }
  Set(d + NF_GD_HASH_N, static_cast<uint32_t>(g.hash_fields.size()));
  Set(d + NF_GD_HASH_F, hf[0]);
  Set(d + NF_GD_HASH_F + 1, hf[1]);
  Set(d + NF_GD_BASE, gp.lookup_off);
  Set(d + NF_GD_NBUCKETS, nb);
  Set(d + NF_GD_SIZE, static_cast<uint32_t>(lookup.size()));
  Set(d + NF_GD_AFFINITY_S, g.affinity_timeout_s.value_or(0));
  Set(d + NF_GD_FLAGS, NF_VALID);
  auto [it, inserted] = groups.emplace(g.name, std::move(gp));
  if (group_by_index.size() <= it->second.index) group_by_index.resize(it->second.index + 1);
  group_by_index[it->second.index] = &it->second;
  return absl::OkStatus();
}

absl::Status TableImage::State::DeleteGroup(const SelectGroup& g) {
  auto it = groups.find(g.name);
  if (it == groups.end()) return absl::NotFoundError("group " + g.name + ": not in the image");
  GroupPlace& gp = it->second;
  Zero(group_base + gp.index * NF_GROUP_DESC_WORDS, NF_GROUP_DESC_WORDS);
  Zero(maglev_base + gp.lookup_off, gp.lookup_size);
  for (auto s = gp.bucket_slots.rbegin(); s != gp.bucket_slots.rend(); ++s) FreeSlot(*s);
  FreeMaglev(gp.lookup_off, gp.lookup_size);
  group_free.push_back(gp.index);
  group_by_index[gp.index] = nullptr;
  groups.erase(it);
  return absl::OkStatus();
}

absl::Status TableImage::State::ModifyGroup(const SelectGroup& g) {
  auto it = groups.find(g.name);
  if (it == groups.end()) return absl::NotFoundError("group " + g.name + ": not in the image");
  // Build the new version beside the old one, then retarget the entries' GROUP index: entries
  // refer to the descriptor index, so the new descriptor takes over the old index.
  const GroupPlace old = it->second;
  groups.erase(it);
  SelectGroup renamed = g;
  if (absl::Status st = AddGroup(renamed); !st.ok()) {
    group_by_index[old.index] = &groups.emplace(g.name, old).first->second;
    return st;
  }
  GroupPlace& fresh = groups.at(g.name);
  const uint32_t fd = group_base + fresh.index * NF_GROUP_DESC_WORDS;
  const uint32_t od = group_base + old.index * NF_GROUP_DESC_WORDS;
  for (uint32_t i = 0; i < NF_GROUP_DESC_WORDS; ++i) Set(od + i, w[fd + i]);
  Zero(fd, NF_GROUP_DESC_WORDS);
  group_free.push_back(fresh.index);
  group_by_index[fresh.index] = nullptr;
  fresh.index = old.index;
  group_by_index[old.index] = &fresh;
  Zero(maglev_base + old.lookup_off, old.lookup_size);
  for (auto s = old.bucket_slots.rbegin(); s != old.bucket_slots.rend(); ++s) FreeSlot(*s);
  FreeMaglev(old.lookup_off, old.lookup_size);
  return absl::OkStatus();
}

}  // namespace nicflow::hw
