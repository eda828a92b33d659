// The loader's internals: a load session (scratch state, duplicate index, limits) and the
// per-kind decoders it dispatches to. scenario.cc uses the session for inline objects.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "loader_decode.h"
#include "loader_tree.h"
#include "nicflow/flowtables/loader.h"
#include "nicflow/flowtables/model.h"

namespace nicflow::flowtables::loader {

/// metadata, as every decoder needs it.
struct ObjectMeta {
  std::string ns;  ///< "default" for namespaced kinds without one; "" for cluster-scoped
  std::string name;
  Labels labels;
};

// Per-kind decoders. Each reads `root` (the whole object), reports problems on root's Decoder
// and, when the decoder is still ok at the end, appends the object to `out`.
void DecodeNamespace(const Field& root, const ObjectMeta& meta, const SourceRef& src,
                     ClusterState& out);
void DecodePod(const Field& root, const ObjectMeta& meta, const SourceRef& src, ClusterState& out);
void DecodeNode(const Field& root, const ObjectMeta& meta, const SourceRef& src, ClusterState& out);
void DecodeServiceCidr(const Field& root, const ObjectMeta& meta, const SourceRef& src,
                       ClusterState& out);
void DecodeService(const Field& root, const ObjectMeta& meta, const SourceRef& src,
                   ClusterState& out);
void DecodeEndpointSlice(const Field& root, const ObjectMeta& meta, const SourceRef& src,
                         ClusterState& out);
void DecodeNetworkPolicy(const Field& root, const ObjectMeta& meta, const SourceRef& src,
                         ClusterState& out);
void DecodeKubeProxyConfiguration(const Field& root, const ObjectMeta& meta, const SourceRef& src,
                                  ClusterState& out);
void DecodeMasqueradeConfig(const Field& root, const ObjectMeta& meta, const SourceRef& src,
                            ClusterState& out);

struct KindInfo;  // loader.cc's table of the kinds nicflow reads

/// One LoadPaths/LoadText call: objects go to a scratch state, which is merged into the
/// caller's state only when everything loaded (atomicity).
class LoadSession {
 public:
  LoadSession(const LoadOptions& options, const ClusterState& existing);

  /// Parses and loads one file's text. `source` names the file in messages.
  absl::Status AddText(std::string_view text, std::string_view source);
  /// Loads parsed documents (objects or Lists) of one file.
  absl::Status AddDocuments(const std::vector<Value>& docs, std::string_view source);
  /// Appends the scratch state to `state`.
  void CommitTo(ClusterState& state);
  ClusterState& scratch() { return scratch_; }

 private:
  struct TypeHint {
    std::string api_version;
    std::string kind;
  };
  absl::Status AddValue(const Value& v, std::string_view source, const TypeHint& hint, int depth);
  absl::Status AddObject(const Value& v, const SourceRef& src, const TypeHint& hint);
  absl::Status DecodeObject(const Field& root, const KindInfo& info, const SourceRef& src,
                            std::string label);
  /// A bad object: an error, or in skip mode a note.
  absl::Status Bad(std::string message);
  void RecordExisting(const ClusterState& existing);

  const LoadOptions& options_;
  ClusterState scratch_;
  std::map<std::string, SourceRef> seen_;  ///< "Kind/ns/name" -> where it was first defined
  size_t objects_ = 0;
  std::map<std::string, int, std::less<>> next_document_;  ///< per source
};

/// "file (object 3, line 12)" for messages about another definition.
std::string DescribeSource(const SourceRef& src);

}  // namespace nicflow::flowtables::loader
