// Scenario files (examples/README.md): parsing and validation into plain structs. Kubernetes
// objects inside scenarios go through the manifest loader, so they get the same defaults and
// checks as manifests do.
#include "nicflow/flowtables/scenario.h"

#include <filesystem>
#include <fstream>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "loader_internal.h"
#include "nicflow/flowtables/status.h"

namespace nicflow::flowtables {
namespace {

using loader::Decoder;
using loader::Field;
using loader::Value;

absl::StatusOr<std::string> ReadScenarioFile(const std::string& path, const LoadOptions& options) {
  std::error_code ec;
  uintmax_t size = std::filesystem::file_size(path, ec);
  if (ec) return absl::NotFoundError(absl::StrCat(path, ": ", ec.message()));
  if (size > options.max_file_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrFormat("%s: %d bytes exceeds the limit of %d (LoadOptions::max_file_bytes)", path,
                        size, options.max_file_bytes));
  }
  std::ifstream in(path, std::ios::binary);
  std::string text(size, '\0');
  in.read(text.data(), static_cast<std::streamsize>(size));
  if (!in && !in.eof()) return absl::NotFoundError(absl::StrCat(path, ": cannot read"));
  return text;
}

// A scenario file is one YAML document holding a list of scenarios.
absl::StatusOr<Value> ParseScenarioList(std::string_view text, std::string_view source,
                                        const LoadOptions& options) {
  if (text.size() > options.max_file_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrFormat("%s: %d bytes exceeds the limit of %d (LoadOptions::max_file_bytes)",
                        Sv(source), text.size(), options.max_file_bytes));
  }
  loader::ParseLimits limits;
  limits.max_string_bytes = options.max_string_bytes;
  limits.max_nodes = 2 * text.size() + 1024;
  NICFLOW_ASSIGN_OR_RETURN(std::vector<Value> docs, loader::ParseDocuments(text, source, limits));
  if (docs.empty()) return Value{};
  if (docs.size() > 1) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: expected one YAML document (a list of scenarios), got %d", Sv(source), docs.size()));
  }
  if (docs[0].type != Value::Type::kSeq) {
    return absl::InvalidArgumentError(absl::StrFormat("%s: expected a list of scenarios, got %s",
                                                      Sv(source),
                                                      Sv(loader::TypeName(docs[0].type))));
  }
  return std::move(docs[0]);
}

std::string ScenarioLabel(size_t index, const Value& v) {
  const Value* name = v.Find("name");
  if (name && name->type == Value::Type::kString) {
    return absl::StrFormat("scenario %d (%s)", index + 1, name->text);
  }
  return absl::StrFormat("scenario %d", index + 1);
}

absl::Status ScenarioError(std::string_view source, const std::string& label,
                           const Decoder& decoder) {
  return absl::InvalidArgumentError(
      absl::StrFormat("%s: %s: %s", Sv(source), label, decoder.error()));
}

SourceRef MakeSource(std::string_view file, size_t index, const Value& v) {
  SourceRef src;
  src.file = std::string(file);
  src.document = static_cast<int>(index);
  src.line = v.line;
  return src;
}

std::optional<ExpectedVerdict> DecodeExpect(const Field& f, ScenarioPacket& p) {
  if (!f.Require()) return std::nullopt;
  p.expect = f.Str();
  if (p.expect.empty()) return ExpectedVerdict::kForward;
  if (p.expect == "DROP") return ExpectedVerdict::kDrop;
  if (p.expect == "REJECT") return ExpectedVerdict::kReject;
  for (absl::string_view part : absl::StrSplit(p.expect, ',')) {
    std::string text(absl::StripAsciiWhitespace(part));
    absl::StatusOr<std::pair<IpAddr, uint16_t>> ep = ParseEndpoint(text);
    if (!ep.ok()) {
      f.Fail(absl::StrCat(ep.status().message(),
                          " (expect is \"ip:port, ...\", \"\", DROP or REJECT)"));
      return std::nullopt;
    }
    p.endpoints.push_back(*ep);
  }
  return ExpectedVerdict::kDnat;
}

ScenarioPacket DecodePacket(const Field& f) {
  ScenarioPacket p;
  if (!f.Is(Value::Type::kMap)) return p;
  p.name = f["name"].Str();
  Field proto = f["proto"];
  if (proto.Require()) p.proto = loader::DecodeProtocol(proto);
  Field src = f["src"];
  if (src.Require()) p.src = loader::DecodeIp(src);
  Field dst = f["dst"];
  if (dst.Require() && f.decoder().ok()) {
    absl::StatusOr<std::pair<IpAddr, uint16_t>> ep = ParseEndpoint(dst.Str());
    if (ep.ok()) {
      std::tie(p.dst, p.dst_port) = *ep;
    } else if (f.decoder().ok()) {
      dst.Fail(Sv(ep.status().message()));
    }
  }
  p.verdict = DecodeExpect(f["expect"], p).value_or(ExpectedVerdict::kForward);
  p.masq = f["masq"].Bool(false);
  p.in_port = f["inPort"].OptStr();
  return p;
}

NodeFacts DecodeNodeFacts(const Field& f) {
  NodeFacts n;
  n.name = loader::DecodeName(f["name"], loader::CheckDns1123Subdomain, true);
  n.ips = loader::DecodeIps(f["ips"]);
  n.cluster_cidrs = loader::DecodeCidrs(f["clusterCIDRs"], false);
  n.service_cidrs = loader::DecodeCidrs(f["serviceCIDRs"], false);
  n.pod_cidrs = loader::DecodeCidrs(f["podCIDRs"], false);
  n.masquerade_all = f["masqueradeAll"].Bool(false);
  n.node_port_addresses = loader::DecodeCidrs(f["nodePortAddresses"], false);
  n.masq.non_masquerade_cidrs = loader::DecodeCidrs(f["nonMasqueradeCIDRs"], false);
  n.masq.masq_link_local = f["masqLinkLocal"].Bool(false);
  n.detect_local = loader::DecodeDetectLocal(f["detectLocalMode"]);
  return n;
}

std::vector<std::string> ResolveManifests(const Field& f, std::string_view base_dir) {
  std::vector<std::string> out;
  for (const std::string& rel : f.Strings()) {
    std::filesystem::path p(rel);
    if (p.is_relative() && !base_dir.empty()) p = std::filesystem::path(base_dir) / p;
    out.push_back(p.lexically_normal().string());
  }
  return out;
}

absl::Status DecodeServiceScenario(const Value& v, size_t index, std::string_view source,
                                   std::string_view base_dir, const LoadOptions& options,
                                   ServiceScenario& out) {
  Decoder decoder;
  Field root(decoder, &v, "");
  std::string label = ScenarioLabel(index, v);
  if (root.Is(Value::Type::kMap)) out.name = root["name"].Str();
  out.source = MakeSource(source, index, v);
  out.manifests = ResolveManifests(root["manifests"], base_dir);
  Field node = root["node"];
  if (node.present() && node.value()->type == Value::Type::kMap) {
    out.state.node_facts = DecodeNodeFacts(node);
    out.node_name = out.state.node_facts->name;
  } else {
    out.node_name = node.Str();
  }
  for (const Field& packet : root["packets"].Items()) out.packets.push_back(DecodePacket(packet));
  Field objects = root["objects"];
  objects.Is(Value::Type::kSeq);
  if (!decoder.ok()) return ScenarioError(source, label, decoder);
  NICFLOW_RETURN_IF_ERROR(LoadPaths(out.manifests, options, out.state));
  if (objects.present()) {
    loader::LoadSession session(options, out.state);
    NICFLOW_RETURN_IF_ERROR(session.AddDocuments(objects.value()->seq, source));
    session.CommitTo(out.state);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<ServiceScenario>> ParseServiceScenarios(std::string_view text,
                                                                   std::string_view source_name,
                                                                   std::string_view base_dir,
                                                                   const LoadOptions& options) {
  NICFLOW_ASSIGN_OR_RETURN(Value list, ParseScenarioList(text, source_name, options));
  std::vector<ServiceScenario> out(list.seq.size());
  for (size_t i = 0; i < list.seq.size(); ++i) {
    NICFLOW_RETURN_IF_ERROR(
        DecodeServiceScenario(list.seq[i], i, source_name, base_dir, options, out[i]));
  }
  return out;
}

absl::StatusOr<std::vector<ServiceScenario>> LoadServiceScenarios(const std::string& path,
                                                                  const LoadOptions& options) {
  NICFLOW_ASSIGN_OR_RETURN(std::string text, ReadScenarioFile(path, options));
  std::string base = std::filesystem::path(path).parent_path().string();
  return ParseServiceScenarios(text, path, base, options);
}

namespace {

std::vector<ContainerPort> DecodeNetpolPorts(const Field& f) {
  std::vector<ContainerPort> out;
  for (const Field& item : f.Items()) {
    ContainerPort cp;
    if (!item.Is(Value::Type::kMap)) continue;
    cp.name = loader::DecodeName(item["name"], loader::CheckIanaServiceName, false);
    if (item["port"].Require()) cp.port = loader::DecodePort(item["port"]);
    cp.protocol = loader::DecodeProtocol(item["protocol"]);
    out.push_back(std::move(cp));
  }
  return out;
}

void DecodeNetpolPods(const Field& f, NetpolScenario& s) {
  std::set<std::string> seen;
  for (const Field& item : f.Items()) {
    NetpolPod pod;
    if (!item.Is(Value::Type::kMap)) continue;
    pod.ns = loader::DecodeName(item["ns"], loader::CheckDns1123Label, true);
    pod.name = loader::DecodeName(item["name"], loader::CheckDns1123Subdomain, true);
    pod.labels = loader::DecodeLabels(item["labels"]);
    if (item["ip"].Require()) pod.ip = loader::DecodeIp(item["ip"]);
    pod.ports = DecodeNetpolPorts(item["ports"]);
    if (!f.decoder().ok()) return;
    if (!s.namespaces.contains(pod.ns)) {
      item["ns"].Fail(
          absl::StrFormat("namespace \"%s\" is not in the scenario's namespaces", pod.ns));
    } else if (!seen.insert(absl::StrCat(pod.ns, "/", pod.name)).second) {
      item.Fail(absl::StrFormat("duplicate pod %s/%s", pod.ns, pod.name));
    }
    s.pods.push_back(std::move(pod));
  }
}

std::vector<std::pair<std::string, std::string>> DecodePairs(const Field& f,
                                                             const std::set<std::string>& pods) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const Field& item : f.Items()) {
    std::vector<std::string> pair = item.Strings();
    if (!f.decoder().ok()) break;
    if (pair.size() != 2) {
      item.Fail(absl::StrFormat("expected a pair [from, to], got %d entries", pair.size()));
      break;
    }
    for (const std::string& p : pair) {
      if (!pods.contains(p)) item.Fail(absl::StrFormat("unknown pod \"%s\" (write ns/name)", p));
    }
    out.emplace_back(pair[0], pair[1]);
  }
  return out;
}

void DecodeProbes(const Field& f, NetpolScenario& s) {
  std::set<std::string> pods;
  for (const NetpolPod& p : s.pods) pods.insert(absl::StrCat(p.ns, "/", p.name));
  for (const Field& item : f.Items()) {
    NetpolProbe probe;
    if (!item.Is(Value::Type::kMap)) continue;
    if (item["port"].Require()) probe.port = loader::DecodePort(item["port"]);
    if (item["proto"].Require()) probe.proto = loader::DecodeProtocol(item["proto"]);
    probe.allowed = DecodePairs(item["allowed"], pods);
    probe.denied = DecodePairs(item["denied"], pods);
    s.probes.push_back(std::move(probe));
  }
}

absl::Status DecodePolicies(const Field& f, std::string_view source, const LoadOptions& options,
                            NetpolScenario& s) {
  if (!f.present()) return absl::OkStatus();
  for (const Field& item : f.Items()) {
    Field kind = item["kind"];
    if (f.decoder().ok() && kind.present() && kind.Str() != "NetworkPolicy") {
      kind.Fail(absl::StrFormat("expected NetworkPolicy, got %s", kind.Str()));
    }
  }
  if (!f.decoder().ok()) return absl::OkStatus();
  ClusterState state;
  loader::LoadSession session(options, state);
  NICFLOW_RETURN_IF_ERROR(session.AddDocuments(f.value()->seq, source));
  session.CommitTo(state);
  s.policies = std::move(state.network_policies);
  return absl::OkStatus();
}

absl::Status DecodeNetpolScenario(const Value& v, size_t index, std::string_view source,
                                  const LoadOptions& options, NetpolScenario& out) {
  Decoder decoder;
  Field root(decoder, &v, "");
  std::string label = ScenarioLabel(index, v);
  if (root.Is(Value::Type::kMap)) out.name = root["name"].Str();
  out.source = MakeSource(source, index, v);
  for (auto& [ns, labels] : root["namespaces"].Entries()) {
    if (std::string why = loader::CheckDns1123Label(ns); !why.empty()) labels.Fail(why);
    out.namespaces[ns] = loader::DecodeLabels(labels);
  }
  DecodeNetpolPods(root["pods"], out);
  DecodeProbes(root["probes"], out);
  NICFLOW_RETURN_IF_ERROR(DecodePolicies(root["policies"], source, options, out));
  if (!decoder.ok()) return ScenarioError(source, label, decoder);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<NetpolScenario>> ParseNetpolScenarios(std::string_view text,
                                                                 std::string_view source_name,
                                                                 const LoadOptions& options) {
  NICFLOW_ASSIGN_OR_RETURN(Value list, ParseScenarioList(text, source_name, options));
  std::vector<NetpolScenario> out(list.seq.size());
  for (size_t i = 0; i < list.seq.size(); ++i) {
    NICFLOW_RETURN_IF_ERROR(DecodeNetpolScenario(list.seq[i], i, source_name, options, out[i]));
  }
  return out;
}

absl::StatusOr<std::vector<NetpolScenario>> LoadNetpolScenarios(const std::string& path,
                                                                const LoadOptions& options) {
  NICFLOW_ASSIGN_OR_RETURN(std::string text, ReadScenarioFile(path, options));
  return ParseNetpolScenarios(text, path, options);
}

namespace {

// 10.0.0.0/8 when it holds every pod; otherwise the /8s and /64s the pods live in.
std::vector<IpPrefix> CoveringClusterCidrs(const NetpolScenario& s) {
  const IpPrefix ten{IpAddr::V4(10u << 24), 8};
  std::set<IpPrefix> cidrs;
  for (const NetpolPod& pod : s.pods) {
    if (ten.Contains(pod.ip)) {
      cidrs.insert(ten);
    } else {
      int len = pod.ip.is_v4() ? 8 : 64;
      cidrs.insert(IpPrefix{pod.ip.Masked(len), len});
    }
  }
  if (cidrs.empty()) cidrs.insert(ten);
  return {cidrs.begin(), cidrs.end()};
}

}  // namespace

ClusterState NetpolScenarioToClusterState(const NetpolScenario& s) {
  ClusterState state;
  for (const auto& [name, labels] : s.namespaces) {
    Namespace ns;
    ns.name = name;
    ns.labels = labels;
    ns.labels.emplace("kubernetes.io/metadata.name", name);
    ns.source = s.source;
    state.namespaces.push_back(std::move(ns));
  }
  bool any_v6 = false;
  for (const NetpolPod& p : s.pods) {
    Pod pod;
    pod.ns = p.ns;
    pod.name = p.name;
    pod.labels = p.labels;
    pod.node_name = std::string(kNetpolNodeName);
    pod.ips = {p.ip};
    pod.ports = p.ports;
    pod.source = s.source;
    any_v6 = any_v6 || !p.ip.is_v4();
    state.pods.push_back(std::move(pod));
  }
  state.network_policies = s.policies;
  NodeFacts facts;
  facts.name = std::string(kNetpolNodeName);
  facts.ips.push_back(*IpAddr::Parse(kNetpolNodeIp));
  if (any_v6) facts.ips.push_back(*IpAddr::Parse(kNetpolNodeIpV6));
  facts.cluster_cidrs = CoveringClusterCidrs(s);
  facts.pod_cidrs = facts.cluster_cidrs;
  Node node;
  node.name = facts.name;
  node.internal_ips = facts.ips;
  node.pod_cidrs = facts.pod_cidrs;
  node.source = s.source;
  state.nodes.push_back(std::move(node));
  state.node_facts = std::move(facts);
  return state;
}

}  // namespace nicflow::flowtables
