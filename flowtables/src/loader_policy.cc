// Decoder for networking.k8s.io/v1 NetworkPolicy, with the API server's defaulting (policyTypes,
// port protocol TCP) and validation (peers, ipBlock, ports, endPort).
//
// ipBlock CIDRs: the API server parses them loosely (net.ParseCIDR), so "10.0.0.1/24" is accepted
// and means 10.0.0.0/24; it only rejects bad syntax. We do the same and add a note when host bits
// were dropped. `except` entries must be strict subsets of `cidr`, as validation requires.
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "loader_internal.h"
#include "nicflow/flowtables/status.h"

namespace nicflow::flowtables::loader {
namespace {

IpBlock DecodeIpBlock(const Field& f) {
  IpBlock block;
  Field cidr = f["cidr"];
  if (!f.Is(Value::Type::kMap) || !cidr.Require()) return block;
  block.cidr = DecodeCidr(cidr, /*mask_host_bits=*/true);
  std::vector<Field> items = f["except"].Items();
  for (const Field& item : items) {
    if (!item.Require()) continue;
    IpPrefix except = DecodeCidr(item, /*mask_host_bits=*/true);
    if (!f.decoder().ok()) break;
    if (except.family() != block.cidr.family() ||
        !(block.cidr.Contains(except) && except.prefix_len_bits > block.cidr.prefix_len_bits)) {
      item.Fail(absl::StrFormat("%s must be a strict subset of cidr %s", except.ToString(),
                                block.cidr.ToString()));
    }
    block.except.push_back(except);
  }
  return block;
}

NetworkPolicyPeer DecodePeer(const Field& f) {
  NetworkPolicyPeer peer;
  if (!f.Is(Value::Type::kMap)) return peer;
  Field pods = f["podSelector"];
  Field namespaces = f["namespaceSelector"];
  Field block = f["ipBlock"];
  if (pods.present()) peer.pod_selector = DecodeLabelSelector(pods);
  if (namespaces.present()) peer.namespace_selector = DecodeLabelSelector(namespaces);
  if (block.present()) peer.ip_block = DecodeIpBlock(block);
  if (!f.decoder().ok()) return peer;
  if (block.present() && (pods.present() || namespaces.present())) {
    f.Fail("ipBlock may not be combined with podSelector or namespaceSelector");
  } else if (!block.present() && !pods.present() && !namespaces.present()) {
    f.Fail("must specify a peer (podSelector, namespaceSelector or ipBlock)");
  }
  return peer;
}

NetworkPolicyPort DecodePolicyPort(const Field& f) {
  NetworkPolicyPort p;
  if (!f.Is(Value::Type::kMap)) return p;
  p.protocol = DecodeProtocol(f["protocol"]);
  p.port = DecodeIntOrStringPort(f["port"]);
  Field end = f["endPort"];
  if (!end.present()) return p;
  uint16_t end_port = DecodePort(end);
  if (!f.decoder().ok()) return p;
  if (std::holds_alternative<std::monostate>(p.port)) {
    end.Fail("may not be specified when port is not specified");
  } else if (std::holds_alternative<std::string>(p.port)) {
    end.Fail(absl::StrFormat("may not be specified when port is a name (\"%s\")",
                             std::get<std::string>(p.port)));
  } else if (end_port < std::get<uint16_t>(p.port)) {
    end.Fail(absl::StrFormat("%d must be greater than or equal to port %d", end_port,
                             std::get<uint16_t>(p.port)));
  } else {
    p.end_port = end_port;
  }
  return p;
}

std::vector<NetworkPolicyRule> DecodeRules(const Field& rules, std::string_view peers_key) {
  std::vector<NetworkPolicyRule> out;
  for (const Field& rule : rules.Items()) {
    NetworkPolicyRule r;
    if (rule.present() && !rule.Is(Value::Type::kMap)) continue;
    for (const Field& peer : rule[peers_key].Items()) r.peers.push_back(DecodePeer(peer));
    for (const Field& port : rule["ports"].Items()) r.ports.push_back(DecodePolicyPort(port));
    out.push_back(std::move(r));
  }
  return out;
}

// Defaulting from networking/v1: no policyTypes means Ingress, plus Egress when egress rules
// are given.
void DecodePolicyTypes(const Field& spec, NetworkPolicy& np) {
  Field types = spec["policyTypes"];
  std::vector<std::string> values = types.Strings();
  if (values.size() > 2 && spec.decoder().ok()) {
    types.Fail("may not specify more than two policyTypes");
  }
  for (size_t i = 0; i < values.size() && spec.decoder().ok(); ++i) {
    if (values[i] == "Ingress") {
      np.affects_ingress = true;
    } else if (values[i] == "Egress") {
      np.affects_egress = true;
    } else {
      spec.decoder().Fail(
          absl::StrCat(types.path(), "[", i, "]"),
          absl::StrFormat("unsupported value \"%s\": must be one of Ingress, Egress", values[i]));
    }
  }
  if (values.empty()) {
    np.affects_ingress = true;
    np.affects_egress = !np.egress.empty();
  }
}

}  // namespace

void DecodeNetworkPolicy(const Field& root, const ObjectMeta& meta, const SourceRef& src,
                         ClusterState& out) {
  NetworkPolicy np;
  np.ns = meta.ns;
  np.name = meta.name;
  Field spec = root["spec"];
  if (!spec.Require() || !spec.Is(Value::Type::kMap)) return;
  // podSelector is required by the schema but its zero value, {}, selects every pod: an absent
  // one decodes to that (Go's JSON decoding), which can only isolate more pods, never fewer.
  np.pod_selector = DecodeLabelSelector(spec["podSelector"]);
  np.ingress = DecodeRules(spec["ingress"], "from");
  np.egress = DecodeRules(spec["egress"], "to");
  DecodePolicyTypes(spec, np);
  np.source = src;
  if (root.decoder().ok()) out.network_policies.push_back(std::move(np));
}

}  // namespace nicflow::flowtables::loader
