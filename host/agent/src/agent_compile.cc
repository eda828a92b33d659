// The agent's compile step: incremental when the manifests changed by a few objects, full
// otherwise (design notes in agent.h).
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "nicflow/agent/agent.h"
#include "nicflow/flowtables/loader.h"
#include "nicflow/flowtables/status.h"

namespace nicflow::agent {

namespace {

namespace fs = std::filesystem;
namespace ft = flowtables;
using Kind = ft::ObjectChange::Kind;

std::string Key(const ft::Namespace& o) { return o.name; }
template <typename T>
std::string Key(const T& o) {
  return absl::StrCat(o.ns, "/", o.name);
}

// Appends to `out` the changes of one kind between the old and new versions of a file: deletes
// first (an object may move to another changed file), then adds, then updates.
template <typename T>
void ChangesOfKind(const std::vector<T>& before, const std::vector<T>& after,
                   std::vector<ft::ObjectChange>& deletes, std::vector<ft::ObjectChange>& rest) {
  std::set<std::string> old_keys, new_keys;
  for (const T& o : before) old_keys.insert(Key(o));
  for (const T& o : after) new_keys.insert(Key(o));
  for (const T& o : before) {
    if (!new_keys.contains(Key(o))) deletes.push_back({Kind::kDeleted, o});
  }
  for (const T& o : after) {
    rest.push_back({old_keys.contains(Key(o)) ? Kind::kUpdated : Kind::kAdded, o});
  }
}

// Kinds the incremental compiler answers with a full recompile anyway (node facts).
absl::Status OnlyPerObjectKinds(const ft::ClusterState& s, const std::string& file) {
  if (s.nodes.empty() && s.service_cidrs.empty() && !s.proxy_config && !s.masq_config &&
      !s.node_facts) {
    return absl::OkStatus();
  }
  return absl::UnimplementedError(
      absl::StrCat(file,
                   ": holds node-wide settings (Node, ServiceCIDR, proxy or masquerade "
                   "config)"));
}

}  // namespace

std::optional<Agent::ManifestTexts> Agent::ReadManifestTexts() const {
  if (config_.inputs.manifests_dir.empty()) return std::nullopt;
  ManifestTexts texts;
  std::error_code ec;
  // The loader's rules (LoadPaths on a directory): *.yaml, *.yml, *.json, regular files.
  for (const auto& entry : fs::directory_iterator(config_.inputs.manifests_dir, ec)) {
    const std::string ext = entry.path().extension().string();
    if ((ext != ".yaml" && ext != ".yml" && ext != ".json") || !entry.is_regular_file(ec)) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    if (!in) return std::nullopt;
    texts[entry.path().string()] = text.str();
  }
  if (ec) return std::nullopt;
  return texts;
}

absl::StatusOr<std::vector<ft::ObjectChange>> Agent::ChangesSince(
    const ManifestTexts& texts) const {
  std::set<std::string> paths;
  for (const auto& [path, text] : manifest_texts_) paths.insert(path);
  for (const auto& [path, text] : texts) paths.insert(path);
  std::vector<ft::ObjectChange> deletes, rest;
  for (const std::string& path : paths) {
    auto was = manifest_texts_.find(path);
    auto is = texts.find(path);
    if (was != manifest_texts_.end() && is != texts.end() && was->second == is->second) continue;
    ft::ClusterState before, after;
    if (was != manifest_texts_.end()) {
      NICFLOW_RETURN_IF_ERROR(ft::LoadText(was->second, path, {}, before));
    }
    if (is != texts.end()) NICFLOW_RETURN_IF_ERROR(ft::LoadText(is->second, path, {}, after));
    NICFLOW_RETURN_IF_ERROR(OnlyPerObjectKinds(before, path));
    NICFLOW_RETURN_IF_ERROR(OnlyPerObjectKinds(after, path));
    // Namespaces and pods before the objects that select them, policies last.
    ChangesOfKind(before.namespaces, after.namespaces, deletes, rest);
    ChangesOfKind(before.pods, after.pods, deletes, rest);
    ChangesOfKind(before.services, after.services, deletes, rest);
    ChangesOfKind(before.endpoint_slices, after.endpoint_slices, deletes, rest);
    ChangesOfKind(before.network_policies, after.network_policies, deletes, rest);
  }
  std::reverse(deletes.begin(), deletes.end());  // policies and slices before what they name
  for (ft::ObjectChange& c : rest) deletes.push_back(std::move(c));
  return deletes;
}

absl::StatusOr<Agent::Desired> Agent::ComputeDesired(const ft::ClusterState& s,
                                                     const std::optional<ManifestTexts>& texts,
                                                     std::string_view reason) {
  std::string why_full = "first compile, or the last sync failed";
  if (incremental_ == nullptr) {
    // why_full says it
  } else if (!texts) {
    why_full = "the manifests directory could not be read file by file";
  } else if (extra_source_) {
    why_full = "objects from the Kubernetes API are compiled in full";
  } else if (reason == "resync") {
    why_full = "resync";
  } else if (absl::StatusOr<std::vector<ft::ObjectChange>> changes = ChangesSince(*texts);
             !changes.ok()) {
    why_full = std::string(changes.status().message());
  } else {
    Desired out;
    absl::Status applied = absl::OkStatus();
    for (const ft::ObjectChange& change : *changes) {
      absl::StatusOr<ft::Delta> delta = incremental_->Apply(change);
      if (!delta.ok()) {
        applied = absl::Status(delta.status().code(), absl::StrCat(ft::ObjectChangeName(change),
                                                                   ": ", delta.status().message()));
        break;
      }
      if (changes->size() == 1) out.delta = *std::move(delta);
    }
    if (applied.ok()) {
      if (changes->empty()) out.delta = ft::Delta{};
      out.compiled = {incremental_->program(), incremental_->node(), incremental_->notes()};
      manifest_texts_ = *texts;
      ++incremental_compiles_;
      return out;
    }
    why_full = std::string(applied.message());
  }

  incremental_.reset();
  manifest_texts_.clear();
  ++full_compiles_;
  last_full_compile_reason_ = why_full;
  spdlog::debug("full compile: {}", why_full);
  ft::CompileOptions options;
  options.node_name = config_.node;
  NICFLOW_ASSIGN_OR_RETURN(incremental_, ft::IncrementalCompiler::Create(s, options));
  if (texts) manifest_texts_ = *texts;
  return Desired{{incremental_->program(), incremental_->node(), incremental_->notes()},
                 std::nullopt};
}

}  // namespace nicflow::agent
