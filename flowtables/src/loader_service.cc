// Decoders for Service and EndpointSlice, with the defaults the API server applies on admission
// (protocol TCP, targetPort = port, type ClusterIP, ClientIP affinity timeout 10800 s) and the
// endpoint-condition rules kube-proxy follows (nil ready = ready, nil serving = serving, nil
// terminating = not terminating).
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "loader_internal.h"
#include "nicflow/flowtables/status.h"

namespace nicflow::flowtables::loader {
namespace {

constexpr uint32_t kDefaultAffinityTimeoutS = 10800;  // v1.DefaultClientIPServiceAffinitySeconds
constexpr uint32_t kMaxAffinityTimeoutS = 86400;      // v1.MaxClientIPServiceAffinitySeconds
constexpr std::string_view kServiceNameLabel = "kubernetes.io/service-name";

// Checks an enum-valued string; "" (absent) passes. Returns the value.
std::string DecodeEnum(const Field& f, std::initializer_list<std::string_view> allowed) {
  std::string s = f.Str();
  if (s.empty() || !f.decoder().ok()) return s;
  for (std::string_view a : allowed) {
    if (s == a) return s;
  }
  std::string list;
  for (std::string_view a : allowed) absl::StrAppend(&list, list.empty() ? "" : ", ", Sv(a));
  f.Fail(absl::StrFormat("unsupported value \"%s\": must be one of %s", s, list));
  return "";
}

ServiceType DecodeServiceType(const Field& f) {
  std::string s = DecodeEnum(f, {"ClusterIP", "NodePort", "LoadBalancer", "ExternalName"});
  if (s == "NodePort") return ServiceType::kNodePort;
  if (s == "LoadBalancer") return ServiceType::kLoadBalancer;
  if (s == "ExternalName") return ServiceType::kExternalName;
  return ServiceType::kClusterIP;
}

// spec.clusterIP and spec.clusterIPs: "None" is headless, "" not yet allocated (dry-run output).
void DecodeClusterIps(const Field& spec, Service& svc) {
  Field single = spec["clusterIP"];
  Field list = spec["clusterIPs"];
  std::string primary = single.Str();
  std::vector<std::string> ips = list.Strings();
  if (!ips.empty() && !primary.empty() && ips[0] != primary && spec.decoder().ok()) {
    list.Fail(
        absl::StrFormat("first entry \"%s\" must match spec.clusterIP \"%s\"", ips[0], primary));
    return;
  }
  if (ips.empty() && !primary.empty()) ips.push_back(primary);
  Field where = list.present() ? list : single;
  if (!ips.empty() && ips[0] == "None") {
    svc.headless = true;
    if (ips.size() > 1) where.Fail("\"None\" must be the only entry");
    return;
  }
  for (size_t i = 0; i < ips.size(); ++i) {
    Value v = Value::String(ips[i]);
    Field item(spec.decoder(), &v,
               list.present() ? absl::StrCat(list.path(), "[", i, "]") : single.path());
    svc.cluster_ips.push_back(DecodeIp(item));
  }
  if (svc.cluster_ips.size() > 2 ||
      (svc.cluster_ips.size() == 2 && svc.cluster_ips[0].family() == svc.cluster_ips[1].family())) {
    where.Fail("at most one IP per family (dual-stack)");
  }
}

ServicePort DecodeServicePort(const Field& f, ServiceType type) {
  ServicePort p;
  f.Is(Value::Type::kMap);
  p.name = DecodeName(f["name"], CheckDns1123Label, false);
  p.protocol = DecodeProtocol(f["protocol"]);
  Field port = f["port"];
  if (port.Require()) p.port = DecodePort(port);
  Field target = f["targetPort"];
  // 0 is IntOrString's zero value: the API server defaults it like an absent targetPort.
  bool zero =
      target.present() && target.value()->type == Value::Type::kInt && target.value()->integer == 0;
  auto tp =
      zero ? std::variant<std::monostate, uint16_t, std::string>{} : DecodeIntOrStringPort(target);
  if (auto* name = std::get_if<std::string>(&tp)) {
    p.target_port = *name;
  } else if (auto* number = std::get_if<uint16_t>(&tp)) {
    p.target_port = *number;
  } else {
    p.target_port = p.port;  // absent: the API server copies port
  }
  Field node_port = f["nodePort"];
  p.node_port = DecodePort(node_port, /*allow_zero=*/true);
  if (p.node_port != 0 && type == ServiceType::kClusterIP && f.decoder().ok()) {
    node_port.Fail("may not be used when type is ClusterIP");
  }
  return p;
}

void DecodeServicePorts(const Field& spec, Service& svc) {
  Field ports = spec["ports"];
  std::vector<Field> items = ports.Items();
  std::set<std::string> names;
  std::set<std::pair<uint16_t, Protocol>> numbers;
  std::set<std::pair<uint16_t, Protocol>> node_ports;
  for (const Field& item : items) {
    ServicePort p = DecodeServicePort(item, svc.type);
    if (!spec.decoder().ok()) return;
    if (items.size() > 1 && p.name.empty()) {
      item["name"].Fail("required when the Service has more than one port");
    } else if (!p.name.empty() && !names.insert(p.name).second) {
      item["name"].Fail(absl::StrFormat("duplicate port name \"%s\"", p.name));
    } else if (!numbers.insert({p.port, p.protocol}).second) {
      item.Fail(absl::StrFormat("duplicate port %d/%s", p.port, Sv(ProtocolName(p.protocol))));
    } else if (p.node_port != 0 && !node_ports.insert({p.node_port, p.protocol}).second) {
      item["nodePort"].Fail(absl::StrFormat("duplicate nodePort %d", p.node_port));
    }
    svc.ports.push_back(std::move(p));
  }
  if (items.empty() && !svc.headless && svc.type != ServiceType::kExternalName) {
    ports.Fail("required value (a Service that is not headless or ExternalName needs ports)");
  }
}

void DecodeSessionAffinity(const Field& spec, Service& svc) {
  std::string affinity = DecodeEnum(spec["sessionAffinity"], {"None", "ClientIP"});
  if (affinity != "ClientIP") return;
  Field timeout = spec["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"];
  svc.affinity_timeout_s = static_cast<uint32_t>(
      timeout.Int(1, kMaxAffinityTimeoutS).value_or(kDefaultAffinityTimeoutS));
}

void DecodeLoadBalancerStatus(const Field& root, Service& svc) {
  for (const Field& ingress : root["status"]["loadBalancer"]["ingress"].Items()) {
    Field ip = ingress["ip"];
    std::string mode = DecodeEnum(ingress["ipMode"], {"VIP", "Proxy"});
    // ipMode Proxy: the load balancer proxies and delivers to nodes itself; kube-proxy does not
    // capture traffic to that IP. Hostname-only entries have no IP to match.
    if (!ip.present() || mode == "Proxy") continue;
    svc.load_balancer_ips.push_back(DecodeIp(ip));
  }
}

}  // namespace

void DecodeService(const Field& root, const ObjectMeta& meta, const SourceRef& src,
                   ClusterState& out) {
  Service svc;
  svc.ns = meta.ns;
  svc.name = meta.name;
  Field spec = root["spec"];
  if (!spec.Is(Value::Type::kMap)) return;
  svc.type = DecodeServiceType(spec["type"]);
  if (svc.type != ServiceType::kExternalName) DecodeClusterIps(spec, svc);
  if (svc.headless && svc.type != ServiceType::kClusterIP && root.decoder().ok()) {
    spec["clusterIP"].Fail("may be \"None\" only when type is ClusterIP");
  }
  Field selector = spec["selector"];
  if (selector.present()) {
    Labels labels = DecodeLabels(selector);
    if (!labels.empty()) svc.selector = std::move(labels);  // {} selects nothing, like absent
  }
  DecodeServicePorts(spec, svc);
  svc.external_ips = DecodeIps(spec["externalIPs"]);
  svc.load_balancer_source_ranges = DecodeCidrs(spec["loadBalancerSourceRanges"], true);
  DecodeSessionAffinity(spec, svc);
  svc.external_traffic_local =
      DecodeEnum(spec["externalTrafficPolicy"], {"Cluster", "Local"}) == "Local";
  svc.internal_traffic_local =
      DecodeEnum(spec["internalTrafficPolicy"], {"Cluster", "Local"}) == "Local";
  DecodeLoadBalancerStatus(root, svc);
  svc.source = src;
  if (root.decoder().ok()) out.services.push_back(std::move(svc));
}

namespace {

std::optional<IpFamily> DecodeAddressType(const Field& f, bool& fqdn) {
  fqdn = false;
  if (!f.Require()) return std::nullopt;
  std::string s = DecodeEnum(f, {"IPv4", "IPv6", "FQDN"});
  fqdn = s == "FQDN";
  if (s == "IPv4") return IpFamily::kV4;
  if (s == "IPv6") return IpFamily::kV6;
  return std::nullopt;
}

Endpoint DecodeEndpoint(const Field& f, IpFamily family, const std::string& slice_ns) {
  Endpoint ep;
  f.Is(Value::Type::kMap);
  Field addresses = f["addresses"];
  if (addresses.Require()) ep.addresses = DecodeIps(addresses);
  if (f.decoder().ok() && (ep.addresses.empty() || ep.addresses.size() > 100)) {
    addresses.Fail(absl::StrFormat("must have 1 to 100 addresses, got %d", ep.addresses.size()));
  }
  for (size_t i = 0; i < ep.addresses.size() && f.decoder().ok(); ++i) {
    if (ep.addresses[i].family() != family) {
      f.decoder().Fail(
          absl::StrCat(addresses.path(), "[", i, "]"),
          absl::StrFormat("%s does not match the slice's addressType", ep.addresses[i].ToString()));
    }
  }
  Field conditions = f["conditions"];
  std::optional<bool> ready = conditions["ready"].OptBool();
  std::optional<bool> serving = conditions["serving"].OptBool();
  ep.ready = ready.value_or(true);
  // kube-proxy (pkg/proxy/endpointslicecache.go) reads a nil serving as true, not as ready;
  // it matters for a terminating endpoint without the condition, which stays a fallback.
  ep.serving = serving.value_or(true);
  ep.terminating = conditions["terminating"].Bool(false);
  ep.node_name = f["nodeName"].Str();
  Field ref = f["targetRef"];
  if (ref.Is(Value::Type::kMap) && ref["kind"].Str() == "Pod") {
    std::string ns = ref["namespace"].Str();
    ep.target_pod = absl::StrCat(ns.empty() ? slice_ns : ns, "/", ref["name"].Str());
  }
  return ep;
}

}  // namespace

void DecodeEndpointSlice(const Field& root, const ObjectMeta& meta, const SourceRef& src,
                         ClusterState& out) {
  EndpointSlice slice;
  slice.ns = meta.ns;
  slice.name = meta.name;
  if (auto it = meta.labels.find(std::string(kServiceNameLabel)); it != meta.labels.end()) {
    slice.service_name = it->second;
  } else {
    root["metadata"]["labels"].Warn(absl::StrFormat(
        "no %s label: the slice belongs to no Service and is ignored", Sv(kServiceNameLabel)));
  }
  bool fqdn = false;
  slice.family = DecodeAddressType(root["addressType"], fqdn);
  if (slice.family) {
    for (const Field& item : root["endpoints"].Items()) {
      slice.endpoints.push_back(DecodeEndpoint(item, *slice.family, meta.ns));
    }
  } else if (fqdn) {
    root["addressType"].Warn("FQDN endpoints are not used by kube-proxy; the slice is ignored");
  }
  for (const Field& item : root["ports"].Items()) {
    EndpointPort p;
    item.Is(Value::Type::kMap);
    p.name = DecodeName(item["name"], CheckDns1123Label, false);
    p.protocol = DecodeProtocol(item["protocol"]);
    // A nil port means "all ports", which kube-proxy cannot program; it skips such ports too.
    if (!item["port"].present()) continue;
    p.port = DecodePort(item["port"]);
    slice.ports.push_back(std::move(p));
  }
  slice.source = src;
  if (root.decoder().ok()) out.endpoint_slices.push_back(std::move(slice));
}

}  // namespace nicflow::flowtables::loader
