// Loading Kubernetes manifests into the intent model.
//
// Accepts YAML (multi-document) and JSON, single objects and `kind: List` (as printed by
// `kubectl get -o yaml|json`), files and directories (*.yaml, *.yml, *.json, sorted by name).
// Output of `kubectl create --dry-run=client -o yaml` loads (null creationTimestamp, no clusterIP).
//
// Errors name the file, the object and the field path:
//   examples/shop/cluster.yaml: Service shop/cart: spec.ports[0].targetPort: 70000 out of range
// Kinds nicflow does not use are skipped with a note. A malformed object fails the whole load,
// unless LoadOptions::skip_bad_objects, where it alone is skipped and reported in `notes`.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "nicflow/flowtables/model.h"

namespace nicflow::flowtables {

struct LoadOptions {
  bool skip_bad_objects = false;
  size_t max_file_bytes = 64u << 20;   ///< larger files are refused (ResourceExhausted)
  size_t max_objects = 1u << 20;       ///< more objects in total are refused
  size_t max_string_bytes = 1u << 20;  ///< a longer scalar is refused
};

/// Loads every path (file or directory) into `state`, appending. On error `state` is unchanged.
absl::Status LoadPaths(const std::vector<std::string>& paths, const LoadOptions& options,
                       ClusterState& state);

/// Loads manifests from text (YAML or JSON); `source_name` names it in errors.
absl::Status LoadText(std::string_view text, std::string_view source_name,
                      const LoadOptions& options, ClusterState& state);

}  // namespace nicflow::flowtables
