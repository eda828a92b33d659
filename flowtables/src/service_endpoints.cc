// Endpoint selection for the service stage: which endpoints a Service port load-balances to.
// See service_compiler.h for the rules and where kube-proxy implements them.
#include <algorithm>
#include <map>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "service_compiler.h"

namespace nicflow::flowtables {

namespace {

// How usable a copy of an endpoint is, for choosing among duplicates: ready beats
// serving+terminating beats neither (kube-proxy keeps the ready copy of a duplicated endpoint).
int Usability(const ServiceEndpoint& e) {
  if (e.ready) return 2;
  return e.serving && e.terminating ? 1 : 0;
}

bool ServingTerminating(const ServiceEndpoint& e) { return e.serving && e.terminating; }

// Ready endpoints among `eps` accepted by `keep`, else serving+terminating ones (the fallback
// that lets connections drain while a rollout replaces every endpoint).
std::vector<ServiceEndpoint> ReadyElseTerminating(const std::vector<ServiceEndpoint>& eps,
                                                  bool only_local) {
  std::vector<ServiceEndpoint> out;
  for (const ServiceEndpoint& e : eps) {
    if (e.ready && (!only_local || e.local)) out.push_back(e);
  }
  if (!out.empty()) return out;
  for (const ServiceEndpoint& e : eps) {
    if (ServingTerminating(e) && (!only_local || e.local)) out.push_back(e);
  }
  return out;
}

}  // namespace

CategorizedEndpoints CategorizeEndpoints(const std::vector<ServiceEndpoint>& all) {
  std::map<std::pair<IpAddr, uint16_t>, ServiceEndpoint> unique;
  for (const ServiceEndpoint& e : all) {
    auto [it, inserted] = unique.emplace(std::make_pair(e.addr, e.port), e);
    if (!inserted && Usability(e) > Usability(it->second)) it->second = e;
  }
  std::vector<ServiceEndpoint> eps;
  eps.reserve(unique.size());
  for (auto& [key, e] : unique) eps.push_back(e);

  CategorizedEndpoints out;
  out.cluster = ReadyElseTerminating(eps, /*only_local=*/false);
  out.local = ReadyElseTerminating(eps, /*only_local=*/true);
  out.has_any = !out.cluster.empty();
  return out;
}

std::vector<ServiceEndpoint> CollectEndpoints(const ServicePort& port, IpFamily family,
                                              const std::vector<const EndpointSlice*>& slices,
                                              const std::string& node_name) {
  std::vector<ServiceEndpoint> out;
  for (const EndpointSlice* s : slices) {
    if (s->family != family) continue;
    auto sp = std::find_if(s->ports.begin(), s->ports.end(), [&](const EndpointPort& p) {
      return p.name == port.name && p.protocol == port.protocol;
    });
    if (sp == s->ports.end() || sp->port == 0) continue;
    for (const Endpoint& e : s->endpoints) {
      // kube-proxy uses an endpoint's first address; the API requires exactly one.
      if (e.addresses.empty() || e.addresses.front().family() != family) continue;
      out.push_back(ServiceEndpoint{e.addresses.front(), sp->port, e.ready, e.serving,
                                    e.terminating, !node_name.empty() && e.node_name == node_name});
    }
  }
  std::sort(out.begin(), out.end(), [](const ServiceEndpoint& a, const ServiceEndpoint& b) {
    return std::tie(a.addr, a.port) < std::tie(b.addr, b.port);
  });
  return out;
}

std::string ServiceGroupName(const Service& svc, const ServicePort& port, IpFamily family,
                             bool local) {
  std::string port_label = port.name;
  if (port_label.empty()) {
    // Only a single-port Service may leave its port unnamed, so this cannot collide.
    const char* proto = port.protocol == Protocol::kTcp   ? "tcp"
                        : port.protocol == Protocol::kUdp ? "udp"
                                                          : "sctp";
    port_label = absl::StrCat(proto, "-", port.port);
  }
  return absl::StrCat("svc/", svc.ns, "/", svc.name, "/", port_label,
                      family == IpFamily::kV4 ? "/v4/" : "/v6/", local ? "local" : "cluster");
}

}  // namespace nicflow::flowtables
