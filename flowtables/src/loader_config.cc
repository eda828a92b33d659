// Decoders for node configuration: kube-proxy's KubeProxyConfiguration (read unchanged from a
// node, so nicflow can take over from kube-proxy) and nicflow's MasqueradeConfig, whose keys are
// ip-masq-agent's. Both are component configs: metadata is optional, and one of each per load.
#include <algorithm>
#include <cctype>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "loader_internal.h"
#include "nicflow/flowtables/status.h"

namespace nicflow::flowtables::loader {
namespace {

std::string DecodeChoice(const Field& f, std::initializer_list<std::string_view> allowed) {
  std::string s = f.Str();
  if (s.empty() || !f.decoder().ok()) return s;
  if (std::find(allowed.begin(), allowed.end(), s) != allowed.end()) return s;
  std::string list;
  for (std::string_view a : allowed) absl::StrAppend(&list, list.empty() ? "" : ", ", Sv(a));
  f.Fail(absl::StrFormat("unsupported value \"%s\": must be one of %s", s, list));
  return "";
}

}  // namespace

DetectLocalMode DecodeDetectLocal(const Field& f) {
  std::string s =
      DecodeChoice(f, {"ClusterCIDR", "NodeCIDR", "InterfaceNamePrefix", "BridgeInterface"});
  if (s == "NodeCIDR") return DetectLocalMode::kNodeCidr;
  if (s == "InterfaceNamePrefix") return DetectLocalMode::kInterfaceNamePrefix;
  if (s == "BridgeInterface") return DetectLocalMode::kBridge;
  return DetectLocalMode::kClusterCidr;
}

namespace {

// nodePortAddresses: CIDRs, or the single special value "primary" (the node's primary IPs).
void DecodeNodePortAddresses(const Field& f, ProxyConfig& pc) {
  std::vector<Field> items = f.Items();
  for (const Field& item : items) {
    if (item.Str() == "primary") {
      pc.node_port_primary = true;
      if (items.size() > 1 && item.decoder().ok()) {
        item.Fail("\"primary\" may not be combined with CIDRs");
      }
      continue;
    }
    if (item.Require()) pc.node_port_addresses.push_back(DecodeCidr(item, true));
  }
}

}  // namespace

void DecodeKubeProxyConfiguration(const Field& root, const ObjectMeta& /*meta*/,
                                  const SourceRef& src, ClusterState& out) {
  ProxyConfig pc;
  // kube-proxy trims and lowercases the override before using it as the node name.
  pc.hostname_override =
      absl::AsciiStrToLower(absl::StripAsciiWhitespace(root["hostnameOverride"].Str()));
  Field cluster_cidr = root["clusterCIDR"];
  pc.cluster_cidrs = DecodeCidrList(cluster_cidr, /*mask_host_bits=*/true);
  if (pc.cluster_cidrs.size() > 2 ||
      (pc.cluster_cidrs.size() == 2 &&
       pc.cluster_cidrs[0].family() == pc.cluster_cidrs[1].family())) {
    if (root.decoder().ok()) cluster_cidr.Fail("at most one CIDR per IP family (dual-stack)");
  }
  DecodeNodePortAddresses(root["nodePortAddresses"], pc);
  // The nftables proxier honours nftables.masqueradeAll; iptables and ipvs iptables's (this is
  // how kube-proxy converts v1alpha1 to its internal Linux.MasqueradeAll).
  std::string mode = DecodeChoice(root["mode"], {"iptables", "ipvs", "nftables", "kernelspace"});
  std::optional<bool> ipt = root["iptables"]["masqueradeAll"].OptBool();
  std::optional<bool> nft = root["nftables"]["masqueradeAll"].OptBool();
  pc.masquerade_all = mode == "nftables" ? nft.value_or(false) : ipt.value_or(false);
  if (mode != "nftables" && nft.value_or(false) && !ipt.value_or(false)) {
    root["nftables"]["masqueradeAll"].Warn(
        absl::StrFormat("ignored: mode is %s, so kube-proxy reads iptables.masqueradeAll",
                        mode.empty() ? "iptables (the default)" : mode));
  } else if (mode == "nftables" && ipt.value_or(false) && !nft.value_or(false)) {
    root["iptables"]["masqueradeAll"].Warn(
        "ignored: mode is \"nftables\", so kube-proxy reads nftables.masqueradeAll");
  }
  pc.detect_local = DecodeDetectLocal(root["detectLocalMode"]);
  pc.source = src;
  if (root.decoder().ok()) out.proxy_config = std::move(pc);
}

void DecodeMasqueradeConfig(const Field& root, const ObjectMeta& /*meta*/, const SourceRef& src,
                            ClusterState& out) {
  MasqConfig mc;
  mc.non_masquerade_cidrs = DecodeCidrs(root["nonMasqueradeCIDRs"], /*mask_host_bits=*/true);
  mc.masq_link_local = root["masqLinkLocal"].Bool(false);
  mc.source = src;
  if (root.decoder().ok()) out.masq_config = std::move(mc);
}

}  // namespace nicflow::flowtables::loader
