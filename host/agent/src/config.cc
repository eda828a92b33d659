#include "nicflow/agent/config.h"

#include <yaml-cpp/yaml.h>

#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "nicflow/flowtables/status.h"

namespace nicflow::agent {

std::string_view BackendKindName(BackendKind k) {
  switch (k) {
    case BackendKind::kSim:
      return "sim";
    case BackendKind::kRteFlow:
      return "rteflow";
    case BackendKind::kFpga:
      return "fpga";
  }
  return "?";
}

namespace {

bool Absent(const YAML::Node& n) {
  return !n || n.Type() == YAML::NodeType::Undefined || n.IsNull();
}

// Reads one mapping, refusing keys it does not know.
class MapReader {
 public:
  MapReader(const YAML::Node& node, std::string source, std::string path)
      : node_(node), source_(std::move(source)), path_(std::move(path)) {}

  // `any_key`: a map keyed by names of the user's choosing (only its shape is checked).
  absl::Status Check(std::initializer_list<std::string_view> known, bool any_key = false) const {
    if (Absent(node_)) return absl::OkStatus();
    if (!node_.IsMap()) return Err("", "expected a mapping");
    if (any_key) return absl::OkStatus();
    std::set<std::string_view> ok(known);
    for (const auto& kv : node_) {
      std::string key = kv.first.Scalar();
      if (!ok.contains(key)) return Err(key, "unknown key");
    }
    return absl::OkStatus();
  }

  std::vector<std::string> Keys() const {
    std::vector<std::string> keys;
    if (Absent(node_) || !node_.IsMap()) return keys;
    for (const auto& kv : node_) keys.push_back(kv.first.Scalar());
    return keys;
  }

  // An absent or null key reads as undefined: the default applies.
  YAML::Node Child(std::string_view key) const {
    if (!node_ || !node_.IsMap()) return YAML::Node(YAML::NodeType::Undefined);
    YAML::Node n = node_[std::string(key)];
    return n && !n.IsNull() ? n : YAML::Node(YAML::NodeType::Undefined);
  }
  std::string ChildPath(std::string_view key) const {
    return path_.empty() ? std::string(key) : absl::StrCat(path_, ".", Sv(key));
  }

  absl::Status String(std::string_view key, std::string& out) const {
    YAML::Node n = Child(key);
    if (Absent(n)) return absl::OkStatus();
    if (!n.IsScalar()) return Err(key, "expected a string");
    out = n.Scalar();
    return absl::OkStatus();
  }

  absl::Status Uint(std::string_view key, uint64_t max, uint64_t& out, int base = 10) const {
    YAML::Node n = Child(key);
    if (Absent(n)) return absl::OkStatus();
    const std::string& s = n.IsScalar() ? n.Scalar() : std::string();
    size_t used = 0;
    uint64_t v = 0;
    try {
      v = std::stoull(s, &used, base);
    } catch (const std::exception&) {
      used = 0;
    }
    if (s.empty() || used != s.size() || v > max || s[0] == '-') {
      return Err(key, absl::StrCat("expected an integer 0-", max, ", got \"", s, "\""));
    }
    out = v;
    return absl::OkStatus();
  }

  absl::Status Bool(std::string_view key, bool& out) const {
    YAML::Node n = Child(key);
    if (Absent(n)) return absl::OkStatus();
    const std::string& s = n.IsScalar() ? n.Scalar() : std::string();
    if (s == "true") {
      out = true;
    } else if (s == "false") {
      out = false;
    } else {
      return Err(key, absl::StrCat("expected true or false, got \"", s, "\""));
    }
    return absl::OkStatus();
  }

  absl::Status Strings(std::string_view key, std::vector<std::string>& out) const {
    YAML::Node n = Child(key);
    if (Absent(n)) return absl::OkStatus();
    if (!n.IsSequence()) return Err(key, "expected a list of strings");
    out.clear();
    for (const auto& item : n) {
      if (!item.IsScalar()) return Err(key, "expected a list of strings");
      out.push_back(item.Scalar());
    }
    return absl::OkStatus();
  }

  absl::Status Err(std::string_view key, std::string_view why) const {
    std::string where = key.empty() ? (path_.empty() ? "(top)" : path_) : ChildPath(key);
    return absl::InvalidArgumentError(absl::StrCat(source_, ": ", where, ": ", Sv(why)));
  }

 private:
  YAML::Node node_;
  std::string source_;
  std::string path_;
};

absl::Status ParseBackend(const MapReader& top, const std::string& source, BackendConfig& b) {
  MapReader r(top.Child("backend"), source, "backend");
  NICFLOW_RETURN_IF_ERROR(r.Check(
      {"type", "profile", "simnic_socket", "eal_args", "port", "platform", "xclbin", "vf_ports"}));
  std::string type = "sim";
  NICFLOW_RETURN_IF_ERROR(r.String("type", type));
  if (type == "sim") {
    b.kind = BackendKind::kSim;
  } else if (type == "rteflow") {
    b.kind = BackendKind::kRteFlow;
  } else if (type == "fpga") {
    if (!FpgaBackendBuilt()) {
      return r.Err("type",
                   "fpga: this nicflowd build does not include the FPGA backend (hw/ was not "
                   "built: configure with hw in NICFLOW_COMPONENTS); use sim or rteflow");
    }
    b.kind = BackendKind::kFpga;
  } else {
    return r.Err("type", absl::StrCat("unknown backend \"", type, "\" (sim, rteflow, fpga)"));
  }
  NICFLOW_RETURN_IF_ERROR(r.String("profile", b.profile));
  NICFLOW_RETURN_IF_ERROR(r.String("simnic_socket", b.simnic_socket));
  NICFLOW_RETURN_IF_ERROR(r.Strings("eal_args", b.eal_args));
  uint64_t port = b.port;
  NICFLOW_RETURN_IF_ERROR(r.Uint("port", UINT16_MAX, port));
  b.port = static_cast<uint16_t>(port);
  NICFLOW_RETURN_IF_ERROR(r.String("platform", b.platform));
  NICFLOW_RETURN_IF_ERROR(r.String("xclbin", b.xclbin));
  MapReader vf_ports(r.Child("vf_ports"), source, r.ChildPath("vf_ports"));
  NICFLOW_RETURN_IF_ERROR(vf_ports.Check({}, /*any_key=*/true));
  for (const std::string& pci : vf_ports.Keys()) {
    uint64_t id = 0;
    NICFLOW_RETURN_IF_ERROR(vf_ports.Uint(pci, UINT16_MAX, id));
    b.vf_ports[pci] = static_cast<uint16_t>(id);
  }
  return absl::OkStatus();
}

absl::Status ParseInputs(const MapReader& top, const std::string& source, InputsConfig& in) {
  MapReader r(top.Child("inputs"), source, "inputs");
  NICFLOW_RETURN_IF_ERROR(r.Check({"manifests", "kube_api", "kubeconfig", "pod_resources_socket",
                                   "pod_resources_interval_s", "sysfs_root"}));
  NICFLOW_RETURN_IF_ERROR(r.String("manifests", in.manifests_dir));
  NICFLOW_RETURN_IF_ERROR(r.Bool("kube_api", in.kube_api));
  NICFLOW_RETURN_IF_ERROR(r.String("kubeconfig", in.kubeconfig));
  NICFLOW_RETURN_IF_ERROR(r.String("pod_resources_socket", in.pod_resources_socket));
  uint64_t interval = in.pod_resources_interval_s;
  NICFLOW_RETURN_IF_ERROR(r.Uint("pod_resources_interval_s", 86'400, interval));
  in.pod_resources_interval_s = static_cast<uint32_t>(interval);
  return r.String("sysfs_root", in.sysfs_root);
}

absl::Status ParseRest(const MapReader& top, const std::string& source, AgentConfig& c) {
  MapReader control(top.Child("control"), source, "control");
  NICFLOW_RETURN_IF_ERROR(control.Check({"socket", "mode"}));
  NICFLOW_RETURN_IF_ERROR(control.String("socket", c.control_socket));
  uint64_t mode = c.control_socket_mode;
  NICFLOW_RETURN_IF_ERROR(control.Uint("mode", 0777, mode, 8));
  c.control_socket_mode = static_cast<uint32_t>(mode);
  if (c.control_socket.empty()) return control.Err("socket", "must not be empty");

  MapReader metrics(top.Child("metrics"), source, "metrics");
  NICFLOW_RETURN_IF_ERROR(metrics.Check({"address"}));
  NICFLOW_RETURN_IF_ERROR(metrics.String("address", c.metrics_address));

  MapReader rec(top.Child("reconcile"), source, "reconcile");
  NICFLOW_RETURN_IF_ERROR(rec.Check({"debounce_ms", "resync_s"}));
  uint64_t debounce = c.debounce_ms, resync = c.resync_s;
  NICFLOW_RETURN_IF_ERROR(rec.Uint("debounce_ms", 60'000, debounce));
  NICFLOW_RETURN_IF_ERROR(rec.Uint("resync_s", 86'400, resync));
  c.debounce_ms = static_cast<uint32_t>(debounce);
  c.resync_s = static_cast<uint32_t>(resync);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<AgentConfig> ParseConfig(std::string_view yaml_text, std::string_view source) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml_text));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(Sv(source), ": ", e.what()));
  }
  std::string src(source);
  MapReader top(root, src, "");
  NICFLOW_RETURN_IF_ERROR(
      top.Check({"node", "backend", "inputs", "control", "metrics", "reconcile"}));
  AgentConfig c;
  NICFLOW_RETURN_IF_ERROR(top.String("node", c.node));
  NICFLOW_RETURN_IF_ERROR(ParseBackend(top, src, c.backend));
  NICFLOW_RETURN_IF_ERROR(ParseInputs(top, src, c.inputs));
  NICFLOW_RETURN_IF_ERROR(ParseRest(top, src, c));
  if (c.inputs.manifests_dir.empty() && !c.inputs.kube_api) {
    return absl::InvalidArgumentError(
        absl::StrCat(src, ": inputs: set inputs.manifests and/or inputs.kube_api"));
  }
  return c;
}

absl::StatusOr<AgentConfig> LoadConfigFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open config file"));
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseConfig(ss.str(), path);
}

}  // namespace nicflow::agent
