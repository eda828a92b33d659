// GetPreferredAllocation: which VFs to give a container when the kubelet lets the plugin choose.
//
// Order of concerns:
//   1. Everything in `must_include` is kept (the kubelet requires it).
//   2. NUMA alignment: take VFs from a single NUMA node when one can satisfy the request,
//      preferring the node of the must-include devices, then the node with the fewest free VFs
//      that still fits (best fit keeps big nodes whole); otherwise fill from the nodes with the
//      most free VFs first.
//   3. Within a NUMA node, the resource's allocationPolicy: "spread" takes one VF per PF in turn
//      (PFs with most free VFs first); "pack" uses as few PFs as possible (the smallest PF that
//      fits, else the largest first).
//   4. Ties break on PF address then VF index, so answers are deterministic.
// Unknown or unhealthy IDs in `available` are only used when nothing better remains.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "nicflow/device_plugin/config.h"
#include "nicflow/device_plugin/device.h"

namespace nicflow::device_plugin {

struct PreferredAllocationRequest {
  std::vector<std::string> available;
  std::vector<std::string> must_include;
  int size = 0;
};

/// Chooses `request.size` IDs (fewer if `available` has fewer). `pool` is sorted by PCI address.
std::vector<std::string> ChoosePreferredAllocation(AllocationPolicy policy,
                                                   std::span<const TrackedDevice> pool,
                                                   const PreferredAllocationRequest& request);

}  // namespace nicflow::device_plugin
