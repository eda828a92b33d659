#include "nicflow/device_plugin/preferred_allocation.h"

#include <algorithm>
#include <map>
#include <set>

namespace nicflow::device_plugin {
namespace {

using Group = std::vector<const TrackedDevice*>;

const TrackedDevice* FindDevice(std::span<const TrackedDevice> pool, const std::string& id) {
  const auto it = std::lower_bound(pool.begin(), pool.end(), id,
                                   [](const TrackedDevice& device, const std::string& key) {
                                     return device.vf.pci_address < key;
                                   });
  return it != pool.end() && it->vf.pci_address == id ? &*it : nullptr;
}

// Free VFs of one PF, lowest VF index first.
struct PfBucket {
  std::string pf_address;
  Group free;
  int used = 0;  // VFs of this PF already in the answer
};

std::vector<PfBucket> BucketsByPf(const Group& group, const std::map<std::string, int>& used) {
  std::map<std::string, PfBucket> by_pf;
  for (const TrackedDevice* device : group) {
    PfBucket& bucket = by_pf[device->vf.pf_address];
    bucket.pf_address = device->vf.pf_address;
    bucket.free.push_back(device);
  }
  std::vector<PfBucket> buckets;
  for (auto& [address, bucket] : by_pf) {
    std::sort(bucket.free.begin(), bucket.free.end(), [](const auto* a, const auto* b) {
      return a->vf.vf_index != b->vf.vf_index ? a->vf.vf_index < b->vf.vf_index
                                              : a->vf.pci_address < b->vf.pci_address;
    });
    if (const auto it = used.find(address); it != used.end()) bucket.used = it->second;
    buckets.push_back(std::move(bucket));
  }
  return buckets;
}

// One VF per PF in turn; PFs the answer does not use yet first, then those with most free VFs.
void PickSpread(std::vector<PfBucket> buckets, int& need, Group& out) {
  std::stable_sort(buckets.begin(), buckets.end(), [](const PfBucket& a, const PfBucket& b) {
    if (a.used != b.used) return a.used < b.used;
    return a.free.size() > b.free.size();
  });
  for (size_t round = 0; need > 0; ++round) {
    bool took = false;
    for (const PfBucket& bucket : buckets) {
      if (need == 0) break;
      if (round >= bucket.free.size()) continue;
      out.push_back(bucket.free[round]);
      --need;
      took = true;
    }
    if (!took) break;
  }
}

// As few PFs as possible: PFs already used, else the smallest PF that fits, else the largest.
void PickPack(std::vector<PfBucket> buckets, int& need, Group& out) {
  while (need > 0 && !buckets.empty()) {
    auto best = buckets.begin();
    for (auto it = buckets.begin(); it != buckets.end(); ++it) {
      const auto size = [](const PfBucket& b) { return static_cast<int>(b.free.size()); };
      const bool it_fits = size(*it) >= need;
      const bool best_fits = size(*best) >= need;
      if (it->used != best->used) {
        if (it->used > best->used) best = it;
      } else if (it_fits != best_fits) {
        if (it_fits) best = it;
      } else if (it_fits ? size(*it) < size(*best) : size(*it) > size(*best)) {
        best = it;
      }
    }
    for (const TrackedDevice* device : best->free) {
      if (need == 0) break;
      out.push_back(device);
      --need;
    }
    buckets.erase(best);
  }
}

// NUMA groups in the order they should be drawn from.
std::vector<Group> OrderNumaGroups(const std::map<int, Group>& by_numa, int preferred, int need) {
  std::vector<std::pair<int, Group>> groups(by_numa.begin(), by_numa.end());
  const auto fits = [&](const auto& g) { return static_cast<int>(g.second.size()) >= need; };
  auto first = groups.end();
  for (auto it = groups.begin(); it != groups.end(); ++it) {
    if (!fits(*it)) continue;
    if (it->first == preferred) {
      first = it;
      break;
    }
    if (first == groups.end() || it->second.size() < first->second.size()) first = it;
  }
  std::vector<Group> ordered;
  if (first != groups.end()) {
    ordered.push_back(first->second);
    groups.erase(first);
  }
  std::stable_sort(groups.begin(), groups.end(),
                   [](const auto& a, const auto& b) { return a.second.size() > b.second.size(); });
  for (auto& group : groups) ordered.push_back(std::move(group.second));
  return ordered;
}

}  // namespace

std::vector<std::string> ChoosePreferredAllocation(AllocationPolicy policy,
                                                   std::span<const TrackedDevice> pool,
                                                   const PreferredAllocationRequest& request) {
  std::vector<std::string> answer;
  std::set<std::string> taken;
  std::map<std::string, int> used_pfs;
  int preferred_numa = -1;
  for (const std::string& id : request.must_include) {
    if (!taken.insert(id).second) continue;
    answer.push_back(id);
    if (const TrackedDevice* device = FindDevice(pool, id)) {
      ++used_pfs[device->vf.pf_address];
      if (preferred_numa < 0) preferred_numa = device->vf.numa_node;
    }
  }
  int need = request.size - static_cast<int>(answer.size());
  std::map<int, Group> by_numa;
  std::vector<std::string> fallback;  // unknown or unhealthy: last resort
  for (const std::string& id : request.available) {
    if (taken.contains(id)) continue;
    const TrackedDevice* device = FindDevice(pool, id);
    if (device != nullptr && device->health == Health::kHealthy) {
      by_numa[device->vf.numa_node].push_back(device);
    } else {
      fallback.push_back(id);
    }
  }
  for (const Group& group : OrderNumaGroups(by_numa, preferred_numa, need)) {
    if (need <= 0) break;
    Group picked;
    auto buckets = BucketsByPf(group, used_pfs);
    policy == AllocationPolicy::kSpread ? PickSpread(std::move(buckets), need, picked)
                                        : PickPack(std::move(buckets), need, picked);
    for (const TrackedDevice* device : picked) {
      answer.push_back(device->vf.pci_address);
      ++used_pfs[device->vf.pf_address];
    }
  }
  for (size_t i = 0; need > 0 && i < fallback.size(); ++i, --need) answer.push_back(fallback[i]);
  return answer;
}

}  // namespace nicflow::device_plugin
