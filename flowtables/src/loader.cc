// Loading manifests: files and directories -> documents -> objects -> the intent model.
//
// A load runs in a LoadSession. Every object is decoded into a scratch ClusterState; only when
// the whole input loaded is the scratch state appended to the caller's, so a bad object never
// leaves a partial state behind. Duplicates are detected against the caller's state too.
// Dispatch is by (API group, kind): a kind from another group (a Knative "Service") is not ours
// and is skipped with a note, while a known kind with an unsupported version is an error, since
// silently dropping, say, an old NetworkPolicy would open traffic the user meant to close.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "loader_internal.h"
#include "nicflow/flowtables/loader.h"
#include "nicflow/flowtables/status.h"

namespace nicflow::flowtables {
namespace loader {
enum class Scope : uint8_t { kNamespaced, kCluster, kConfig };

using DecodeFn = void (*)(const Field&, const ObjectMeta&, const SourceRef&, ClusterState&);

struct KindInfo {
  std::string_view group;
  std::string_view kind;
  std::vector<std::string_view> versions;  ///< empty: known but never supported
  Scope scope;
  DecodeFn decode;
  std::string_view hint;  ///< for unsupported versions
};

namespace {

const std::vector<KindInfo>& Kinds() {
  static const std::vector<KindInfo> kinds = {
      {"", "Namespace", {"v1"}, Scope::kCluster, DecodeNamespace, ""},
      {"", "Pod", {"v1"}, Scope::kNamespaced, DecodePod, ""},
      {"", "Service", {"v1"}, Scope::kNamespaced, DecodeService, ""},
      {"", "Node", {"v1"}, Scope::kCluster, DecodeNode, ""},
      {"discovery.k8s.io",
       "EndpointSlice",
       {"v1"},
       Scope::kNamespaced,
       DecodeEndpointSlice,
       "discovery.k8s.io/v1"},
      {"networking.k8s.io",
       "NetworkPolicy",
       {"v1"},
       Scope::kNamespaced,
       DecodeNetworkPolicy,
       "networking.k8s.io/v1"},
      {"extensions", "NetworkPolicy", {}, Scope::kNamespaced, nullptr, "networking.k8s.io/v1"},
      {"networking.k8s.io",
       "ServiceCIDR",
       {"v1", "v1beta1"},
       Scope::kCluster,
       DecodeServiceCidr,
       "networking.k8s.io/v1"},
      {"kubeproxy.config.k8s.io",
       "KubeProxyConfiguration",
       {"v1alpha1"},
       Scope::kConfig,
       DecodeKubeProxyConfiguration,
       "kubeproxy.config.k8s.io/v1alpha1"},
      {"nicflow.io",
       "MasqueradeConfig",
       {"v1alpha1"},
       Scope::kConfig,
       DecodeMasqueradeConfig,
       "nicflow.io/v1alpha1"},
  };
  return kinds;
}

const KindInfo* FindKind(std::string_view group, std::string_view kind) {
  for (const KindInfo& k : Kinds()) {
    if (k.group == group && k.kind == kind) return &k;
  }
  return nullptr;
}

std::string ObjectLabel(std::string_view kind, const ObjectMeta& meta, const SourceRef& src) {
  if (meta.name.empty()) return absl::StrFormat("%s (object %d)", Sv(kind), src.document + 1);
  if (meta.ns.empty()) return absl::StrCat(Sv(kind), " ", meta.name);
  return absl::StrCat(Sv(kind), " ", meta.ns, "/", meta.name);
}

// Reads apiVersion, kind and metadata well enough to name the object in messages; the real
// checks of metadata come after, on the same decoder.
void ReadIdentity(const Field& root, std::string& api_version, std::string& kind,
                  ObjectMeta& meta) {
  Decoder scratch;
  Field r(scratch, root.value(), "");
  api_version = r["apiVersion"].Str();
  kind = r["kind"].Str();
  meta.name = r["metadata"]["name"].Str();
  meta.ns = r["metadata"]["namespace"].Str();
}

ObjectMeta DecodeMeta(const Field& root, const KindInfo& info) {
  ObjectMeta meta;
  Field m = root["metadata"];
  if (info.scope == Scope::kConfig && !m.present()) return meta;
  if (!m.Require() || !m.Is(Value::Type::kMap)) return meta;
  auto name_check = info.kind == "Namespace" ? CheckDns1123Label
                    : info.kind == "Service" ? CheckDns1035Label
                                             : CheckDns1123Subdomain;
  meta.name = DecodeName(m["name"], name_check, info.scope != Scope::kConfig);
  if (info.scope == Scope::kNamespaced) {
    meta.ns = DecodeName(m["namespace"], CheckDns1123Label, false);
    if (meta.ns.empty()) meta.ns = "default";
  }
  meta.labels = DecodeLabels(m["labels"]);
  return meta;
}

std::string DuplicateKey(std::string_view kind, std::string_view ns, std::string_view name) {
  return absl::StrCat(Sv(kind), "/", Sv(ns), "/", Sv(name));
}

}  // namespace

std::string DescribeSource(const SourceRef& src) {
  if (src.line > 0) return absl::StrFormat("%s:%d", src.file, src.line);
  return absl::StrFormat("%s (object %d)", src.file, src.document + 1);
}

LoadSession::LoadSession(const LoadOptions& options, const ClusterState& existing)
    : options_(options) {
  RecordExisting(existing);
}

void LoadSession::RecordExisting(const ClusterState& s) {
  for (const auto& o : s.namespaces) seen_[DuplicateKey("Namespace", "", o.name)] = o.source;
  for (const auto& o : s.pods) seen_[DuplicateKey("Pod", o.ns, o.name)] = o.source;
  for (const auto& o : s.services) seen_[DuplicateKey("Service", o.ns, o.name)] = o.source;
  for (const auto& o : s.endpoint_slices) {
    seen_[DuplicateKey("EndpointSlice", o.ns, o.name)] = o.source;
  }
  for (const auto& o : s.network_policies) {
    seen_[DuplicateKey("NetworkPolicy", o.ns, o.name)] = o.source;
  }
  for (const auto& o : s.nodes) seen_[DuplicateKey("Node", "", o.name)] = o.source;
  for (const auto& o : s.service_cidrs) seen_[DuplicateKey("ServiceCIDR", "", o.name)] = o.source;
  if (s.proxy_config)
    seen_[DuplicateKey("KubeProxyConfiguration", "", "")] = s.proxy_config->source;
  if (s.masq_config) seen_[DuplicateKey("MasqueradeConfig", "", "")] = s.masq_config->source;
}

absl::Status LoadSession::AddText(std::string_view text, std::string_view source) {
  if (text.size() > options_.max_file_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrFormat("%s: %d bytes exceeds the limit of %d (LoadOptions::max_file_bytes)",
                        Sv(source), text.size(), options_.max_file_bytes));
  }
  ParseLimits limits;
  limits.max_string_bytes = options_.max_string_bytes;
  limits.max_nodes = 2 * text.size() + 1024;  // without aliases a value needs at least a byte
  NICFLOW_ASSIGN_OR_RETURN(std::vector<Value> docs, ParseDocuments(text, source, limits));
  return AddDocuments(docs, source);
}

absl::Status LoadSession::AddDocuments(const std::vector<Value>& docs, std::string_view source) {
  for (const Value& doc : docs) {
    NICFLOW_RETURN_IF_ERROR(AddValue(doc, source, TypeHint{}, 0));
  }
  return absl::OkStatus();
}

absl::Status LoadSession::AddValue(const Value& v, std::string_view source, const TypeHint& hint,
                                   int depth) {
  const Value* kind = v.Find("kind");
  const Value* items = v.Find("items");
  bool is_list = kind && kind->type == Value::Type::kString && kind->text.ends_with("List") &&
                 (kind->text == "List" || (items && items->type == Value::Type::kSeq));
  if (!is_list) {
    // Objects (not Lists) are numbered and counted, so List items number like documents.
    auto doc_it = next_document_.find(source);
    if (doc_it == next_document_.end()) doc_it = next_document_.emplace(source, 0).first;
    SourceRef src{std::string(source), doc_it->second++, v.line};
    if (++objects_ > options_.max_objects) {
      return absl::ResourceExhaustedError(absl::StrFormat(
          "%s: more than %d objects (LoadOptions::max_objects)", Sv(source), options_.max_objects));
    }
    return AddObject(v, src, hint);
  }
  if (depth > 4) return Bad(absl::StrFormat("%s: Lists nested too deeply", Sv(source)));
  if (items && items->type != Value::Type::kSeq && !items->is_null()) {
    return Bad(absl::StrFormat("%s: %s: items: expected a list, got %s", Sv(source), kind->text,
                               Sv(TypeName(items->type))));
  }
  // Raw API lists (ServiceList) omit apiVersion/kind on their items; kubectl's List does not.
  TypeHint item_hint;
  if (kind->text != "List") {
    const Value* api = v.Find("apiVersion");
    item_hint.api_version = api && api->type == Value::Type::kString ? api->text : "";
    item_hint.kind = kind->text.substr(0, kind->text.size() - 4);
  }
  if (items) {
    for (const Value& item : items->seq) {
      NICFLOW_RETURN_IF_ERROR(AddValue(item, source, item_hint, depth + 1));
    }
  }
  return absl::OkStatus();
}

absl::Status LoadSession::Bad(std::string message) {
  if (!options_.skip_bad_objects) return absl::InvalidArgumentError(message);
  scratch_.notes.push_back(absl::StrCat("skipped: ", message));
  return absl::OkStatus();
}

absl::Status LoadSession::AddObject(const Value& v, const SourceRef& src, const TypeHint& hint) {
  Decoder decoder;
  Field root(decoder, &v, "");
  if (v.type != Value::Type::kMap) {
    return Bad(absl::StrFormat("%s: object %d: expected a Kubernetes object (a map), got %s",
                               src.file, src.document + 1, Sv(TypeName(v.type))));
  }
  std::string api_version;
  std::string kind;
  ObjectMeta id;
  ReadIdentity(root, api_version, kind, id);
  if (!root["apiVersion"].present()) api_version = hint.api_version;
  if (!root["kind"].present()) kind = hint.kind;
  size_t slash = api_version.find('/');
  std::string group = slash == std::string::npos ? "" : api_version.substr(0, slash);
  std::string version = slash == std::string::npos ? api_version : api_version.substr(slash + 1);
  const KindInfo* info = FindKind(group, kind);
  if (info && info->scope == Scope::kNamespaced && id.ns.empty()) id.ns = "default";
  if (info && info->scope != Scope::kNamespaced) id.ns.clear();
  std::string label = ObjectLabel(kind.empty() ? "object" : kind, id, src);
  if (api_version.empty() || kind.empty()) {
    if (root["apiVersion"].present() || !hint.api_version.empty()) root["kind"].Require();
    if (root["kind"].present() || !hint.kind.empty()) root["apiVersion"].Require();
    if (decoder.ok()) root["apiVersion"].Require();
    return Bad(absl::StrCat(src.file, ": ", label, ": ", decoder.error()));
  }
  if (info == nullptr) {
    std::string why =
        kind == "Endpoints" && group.empty()
            ? "kube-proxy reads EndpointSlices, not Endpoints"
            : absl::StrCat("kind ", api_version, " ", kind, " is not used by nicflow");
    scratch_.notes.push_back(absl::StrCat(src.file, ": ", label, ": skipped (", why, ")"));
    return absl::OkStatus();
  }
  if (std::find(info->versions.begin(), info->versions.end(), version) == info->versions.end()) {
    return Bad(absl::StrFormat("%s: %s: apiVersion: %s is not supported for %s (use %s)", src.file,
                               label, api_version, kind, Sv(info->hint)));
  }
  return DecodeObject(root, *info, src, std::move(label));
}

absl::Status LoadSession::DecodeObject(const Field& root, const KindInfo& info,
                                       const SourceRef& src, std::string label) {
  Decoder& decoder = root.decoder();
  ObjectMeta meta = DecodeMeta(root, info);
  if (!meta.name.empty()) label = ObjectLabel(info.kind, meta, src);
  // A component config is one per node whatever its (optional) name.
  std::string key = DuplicateKey(info.kind, meta.ns,
                                 info.scope == Scope::kConfig ? "" : std::string_view(meta.name));
  if (decoder.ok()) {
    if (auto it = seen_.find(key); it != seen_.end()) {
      return Bad(absl::StrCat(src.file, ": ", label, ": duplicate object: already defined in ",
                              DescribeSource(it->second)));
    }
    info.decode(root, meta, src, scratch_);
  }
  if (!decoder.ok()) return Bad(absl::StrCat(src.file, ": ", label, ": ", decoder.error()));
  seen_.emplace(key, src);
  for (const std::string& warning : decoder.warnings()) {
    scratch_.notes.push_back(absl::StrCat(src.file, ": ", label, ": ", warning));
  }
  return absl::OkStatus();
}

namespace {

template <typename T>
void Append(std::vector<T>& to, std::vector<T>& from) {
  to.insert(to.end(), std::make_move_iterator(from.begin()), std::make_move_iterator(from.end()));
}

}  // namespace

void LoadSession::CommitTo(ClusterState& state) {
  Append(state.namespaces, scratch_.namespaces);
  Append(state.pods, scratch_.pods);
  Append(state.services, scratch_.services);
  Append(state.endpoint_slices, scratch_.endpoint_slices);
  Append(state.network_policies, scratch_.network_policies);
  Append(state.nodes, scratch_.nodes);
  Append(state.service_cidrs, scratch_.service_cidrs);
  Append(state.notes, scratch_.notes);
  if (scratch_.proxy_config) state.proxy_config = std::move(scratch_.proxy_config);
  if (scratch_.masq_config) state.masq_config = std::move(scratch_.masq_config);
  if (scratch_.node_facts) state.node_facts = std::move(scratch_.node_facts);
  scratch_ = ClusterState{};
}

namespace {

absl::StatusOr<std::string> ReadFile(const std::filesystem::path& path,
                                     const LoadOptions& options) {
  std::string name = path.string();
  std::error_code ec;
  uintmax_t size = std::filesystem::file_size(path, ec);
  if (ec) return absl::NotFoundError(absl::StrCat(name, ": ", ec.message()));
  if (size > options.max_file_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrFormat("%s: %d bytes exceeds the limit of %d (LoadOptions::max_file_bytes)", name,
                        size, options.max_file_bytes));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(name, ": cannot open"));
  std::string text(size, '\0');
  in.read(text.data(), static_cast<std::streamsize>(size));
  text.resize(static_cast<size_t>(in.gcount()));
  return text;
}

absl::StatusOr<std::string> ReadStdin(const LoadOptions& options) {
  std::string text;
  char buf[65536];
  while (std::cin.read(buf, sizeof buf) || std::cin.gcount() > 0) {
    text.append(buf, static_cast<size_t>(std::cin.gcount()));
    if (text.size() > options.max_file_bytes) {
      return absl::ResourceExhaustedError(absl::StrFormat(
          "<stdin>: more than %d bytes (LoadOptions::max_file_bytes)", options.max_file_bytes));
    }
  }
  return text;
}

bool IsManifestName(const std::filesystem::path& p) {
  std::string ext = p.extension().string();
  return ext == ".yaml" || ext == ".yml" || ext == ".json";
}

// Like `kubectl apply -f DIR`: the directory's manifest files, not recursive, sorted by name.
absl::StatusOr<std::vector<std::filesystem::path>> ListDirectory(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> files;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (IsManifestName(entry.path()) && entry.is_regular_file(ec)) files.push_back(entry.path());
  }
  if (ec) return absl::NotFoundError(absl::StrCat(dir.string(), ": ", ec.message()));
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace
}  // namespace loader

absl::Status LoadPaths(const std::vector<std::string>& paths, const LoadOptions& options,
                       ClusterState& state) {
  namespace fs = std::filesystem;
  loader::LoadSession session(options, state);
  for (const std::string& path : paths) {
    if (path == "-") {
      NICFLOW_ASSIGN_OR_RETURN(std::string text, loader::ReadStdin(options));
      NICFLOW_RETURN_IF_ERROR(session.AddText(text, "<stdin>"));
      continue;
    }
    std::error_code ec;
    fs::file_status status = fs::status(path, ec);
    if (ec || !fs::exists(status)) {
      return absl::NotFoundError(absl::StrCat(path, ": no such file or directory"));
    }
    std::vector<fs::path> files{fs::path(path)};
    if (fs::is_directory(status)) {
      NICFLOW_ASSIGN_OR_RETURN(files, loader::ListDirectory(path));
    }
    for (const fs::path& file : files) {
      NICFLOW_ASSIGN_OR_RETURN(std::string text, loader::ReadFile(file, options));
      NICFLOW_RETURN_IF_ERROR(session.AddText(text, file.string()));
    }
  }
  session.CommitTo(state);
  return absl::OkStatus();
}

absl::Status LoadText(std::string_view text, std::string_view source_name,
                      const LoadOptions& options, ClusterState& state) {
  loader::LoadSession session(options, state);
  NICFLOW_RETURN_IF_ERROR(session.AddText(text, source_name.empty() ? "<inline>" : source_name));
  session.CommitTo(state);
  return absl::OkStatus();
}

}  // namespace nicflow::flowtables
