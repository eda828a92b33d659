// Decoders for the core node-level kinds: Namespace, Pod, Node, ServiceCIDR.
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "loader_internal.h"
#include "nicflow/flowtables/status.h"

namespace nicflow::flowtables::loader {
namespace {

constexpr std::string_view kNamespaceNameLabel = "kubernetes.io/metadata.name";

// At most one address per family, the way the API server validates dual-stack lists.
void CheckDualStack(const Field& f, const std::vector<IpAddr>& ips) {
  if (!f.decoder().ok()) return;
  if (ips.size() > 2) {
    f.Fail(absl::StrFormat("at most 2 entries (one per IP family), got %d", ips.size()));
  } else if (ips.size() == 2 && ips[0].family() == ips[1].family()) {
    f.Fail("the two entries must be of different IP families (dual-stack)");
  }
}

void CheckDualStack(const Field& f, const std::vector<IpPrefix>& cidrs) {
  std::vector<IpAddr> addrs;
  for (const IpPrefix& p : cidrs) addrs.push_back(p.addr);
  CheckDualStack(f, addrs);
}

std::vector<ContainerPort> DecodeContainerPorts(const Field& spec) {
  std::vector<ContainerPort> out;
  for (const Field& container : spec["containers"].Items()) {
    container.Is(Value::Type::kMap);
    for (const Field& port : container["ports"].Items()) {
      ContainerPort cp;
      cp.name = DecodeName(port["name"], CheckIanaServiceName, false);
      Field number = port["containerPort"];
      if (number.Require()) cp.port = DecodePort(number);
      cp.protocol = DecodeProtocol(port["protocol"]);
      out.push_back(std::move(cp));
    }
  }
  return out;
}

// status.podIPs, or the older single status.podIP; when both are set the first must agree.
std::vector<IpAddr> DecodePodIps(const Field& status) {
  std::vector<IpAddr> ips;
  Field list = status["podIPs"];
  for (const Field& item : list.Items()) {
    Field ip = item["ip"];
    if (ip.Require()) ips.push_back(DecodeIp(ip));
  }
  CheckDualStack(list, ips);
  Field single = status["podIP"];
  if (single.present()) {
    IpAddr ip = DecodeIp(single);
    if (ips.empty()) {
      ips.push_back(ip);
    } else if (ips[0] != ip && single.decoder().ok()) {
      single.Fail(absl::StrFormat("%s does not match status.podIPs[0] (%s)", ip.ToString(),
                                  ips[0].ToString()));
    }
  }
  return ips;
}

bool DecodeTerminalPhase(const Field& phase) {
  std::string s = phase.Str();
  if (s == "Succeeded" || s == "Failed") return true;
  if (!s.empty() && s != "Pending" && s != "Running" && s != "Unknown" && phase.decoder().ok()) {
    phase.Fail(absl::StrFormat(
        "unsupported value \"%s\": must be one of Pending, Running, Succeeded, Failed, Unknown",
        s));
  }
  return false;
}

}  // namespace

void DecodeNamespace(const Field& root, const ObjectMeta& meta, const SourceRef& src,
                     ClusterState& out) {
  Namespace ns;
  ns.name = meta.name;
  ns.labels = meta.labels;
  ns.source = src;
  // The API server sets this label on every namespace and keeps it equal to the name.
  auto [it, added] = ns.labels.emplace(kNamespaceNameLabel, meta.name);
  if (!added && it->second != meta.name) {
    root["metadata"]["labels"].Warn(
        absl::StrFormat("%s is \"%s\"; the API server sets it to the name \"%s\"",
                        Sv(kNamespaceNameLabel), it->second, meta.name));
    it->second = meta.name;
  }
  if (root.decoder().ok()) out.namespaces.push_back(std::move(ns));
}

void DecodePod(const Field& root, const ObjectMeta& meta, const SourceRef& src, ClusterState& out) {
  Pod pod;
  pod.ns = meta.ns;
  pod.name = meta.name;
  pod.labels = meta.labels;
  Field spec = root["spec"];
  if (spec.Is(Value::Type::kMap)) {
    pod.node_name = spec["nodeName"].Str();
    pod.host_network = spec["hostNetwork"].Bool();
    pod.ports = DecodeContainerPorts(spec);
  }
  Field status = root["status"];
  if (status.Is(Value::Type::kMap)) {
    pod.ips = DecodePodIps(status);
    pod.terminal = DecodeTerminalPhase(status["phase"]);
  }
  pod.source = src;
  if (root.decoder().ok()) out.pods.push_back(std::move(pod));
}

void DecodeNode(const Field& root, const ObjectMeta& meta, const SourceRef& src,
                ClusterState& out) {
  Node node;
  node.name = meta.name;
  for (const Field& addr : root["status"]["addresses"].Items()) {
    std::string type = addr["type"].Str();
    Field address = addr["address"];
    if (!addr["type"].Require() || !address.Require()) continue;
    if (type == "InternalIP") {
      node.internal_ips.push_back(DecodeIp(address));
    } else if (type == "ExternalIP") {
      node.external_ips.push_back(DecodeIp(address));
    } else if (type != "Hostname" && type != "InternalDNS" && type != "ExternalDNS" &&
               root.decoder().ok()) {
      addr["type"].Fail(absl::StrFormat(
          "unsupported value \"%s\": must be one of Hostname, InternalIP, ExternalIP, "
          "InternalDNS, ExternalDNS",
          type));
    }
  }
  Field spec = root["spec"];
  // Node CIDRs are parsed loosely by the API server (host bits are masked), so are they here.
  Field cidrs = spec["podCIDRs"];
  node.pod_cidrs = DecodeCidrs(cidrs, /*mask_host_bits=*/true);
  CheckDualStack(cidrs, node.pod_cidrs);
  Field single = spec["podCIDR"];
  if (single.present()) {
    IpPrefix cidr = DecodeCidr(single, true);
    if (node.pod_cidrs.empty()) {
      node.pod_cidrs.push_back(cidr);
    } else if (node.pod_cidrs[0] != cidr && root.decoder().ok()) {
      single.Fail(absl::StrFormat("%s does not match spec.podCIDRs[0] (%s)", cidr.ToString(),
                                  node.pod_cidrs[0].ToString()));
    }
  }
  node.source = src;
  if (root.decoder().ok()) out.nodes.push_back(std::move(node));
}

void DecodeServiceCidr(const Field& root, const ObjectMeta& meta, const SourceRef& src,
                       ClusterState& out) {
  ServiceCidr sc;
  sc.name = meta.name;
  Field cidrs = root["spec"]["cidrs"];
  if (cidrs.Require()) {
    sc.cidrs = DecodeCidrs(cidrs, /*mask_host_bits=*/false);
    if (sc.cidrs.empty() && root.decoder().ok()) cidrs.Fail("at least one CIDR is required");
    CheckDualStack(cidrs, sc.cidrs);
  }
  sc.source = src;
  if (root.decoder().ok()) out.service_cidrs.push_back(std::move(sc));
}

}  // namespace nicflow::flowtables::loader
