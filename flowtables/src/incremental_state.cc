// ApplyChange and change names: the one way a change edits a ClusterState (incremental.h).
#include <algorithm>

#include "incremental_objects.h"
#include "nicflow/flowtables/incremental.h"
#include "nicflow/flowtables/status.h"

namespace nicflow::flowtables {

namespace {

template <typename T>
absl::Status ApplyTyped(ClusterState& state, ObjectChange::Kind kind, const T& obj) {
  if constexpr (kIsSingleton<T>) {
    std::optional<T>& slot = SingletonOf(state, static_cast<const T*>(nullptr));
    NICFLOW_RETURN_IF_ERROR(CheckChangeFits(kind, obj, slot.has_value()));
    if (kind == ObjectChange::Kind::kDeleted) {
      slot.reset();
    } else {
      slot = obj;
    }
    return absl::OkStatus();
  } else {
    std::vector<T>& objects = ObjectsOf(state, static_cast<const T*>(nullptr));
    const std::string key = ObjectKey(obj);
    auto it = std::find_if(objects.begin(), objects.end(),
                           [&](const T& o) { return ObjectKey(o) == key; });
    std::optional<size_t> index;
    if (it != objects.end()) index = static_cast<size_t>(it - objects.begin());
    NICFLOW_RETURN_IF_ERROR(CheckChangeFits(kind, obj, index.has_value()));
    EditObjects(objects, index, kind, obj);
    return absl::OkStatus();
  }
}

}  // namespace

std::string ObjectChangeName(const ObjectChange& change) {
  const char* verb = change.kind == ObjectChange::Kind::kAdded     ? "added"
                     : change.kind == ObjectChange::Kind::kUpdated ? "updated"
                                                                   : "deleted";
  return std::visit(
      [&](const auto& o) { return absl::StrCat(verb, " ", ObjectKindName(o), " ", ObjectKey(o)); },
      change.object);
}

absl::Status ApplyChange(ClusterState& state, const ObjectChange& change) {
  return std::visit([&](const auto& o) { return ApplyTyped(state, change.kind, o); },
                    change.object);
}

}  // namespace nicflow::flowtables
