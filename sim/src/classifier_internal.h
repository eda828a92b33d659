// Private helpers shared by the classifier implementations.
#pragma once

#include <span>
#include <vector>

#include "absl/status/status.h"
#include "nicflow/flowtables/ir.h"

namespace nicflow::sim {

flowtables::MatchKind KindOfMatch(const flowtables::FieldMatch& m);

/// Checks that `match` uses declared key fields with their declared kinds, each at most once,
/// and that ranges are not empty. Appends each match's key index to `key_index` when given.
absl::Status CheckMatch(const std::vector<flowtables::KeyField>& keys,
                        std::span<const flowtables::FieldMatch> match, std::vector<int>* key_index);

}  // namespace nicflow::sim
