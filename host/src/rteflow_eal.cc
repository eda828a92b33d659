// EAL ownership, port start and the rte_flow support probe (rteflow_device.h).
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_flow.h>
#include <rte_mbuf.h>

#include <atomic>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nicflow/flowtables/status.h"
#include "nicflow/host/rteflow_device.h"
#include "rteflow_errors.h"

namespace nicflow::host {

namespace {

std::atomic<bool> eal_initialised{false};
rte_mempool* pool = nullptr;

// A probe rule: attr, pattern, actions, all on the stack of the caller.
int Validate(uint16_t port, uint32_t group, const rte_flow_item* pattern,
             const rte_flow_action* actions, rte_flow_error* err) {
  rte_flow_attr attr{};
  attr.group = group;
  attr.ingress = 1;
  return rte_flow_validate(port, &attr, pattern, actions, err);
}

constexpr rte_flow_item kEthOnly[] = {{RTE_FLOW_ITEM_TYPE_ETH, nullptr, nullptr, nullptr},
                                      {RTE_FLOW_ITEM_TYPE_END, nullptr, nullptr, nullptr}};

// Validates `actions` after an eth-only pattern in group 1; true when the port accepts it.
bool Accepts(uint16_t port, const rte_flow_action* actions,
             const rte_flow_item* pattern = kEthOnly) {
  rte_flow_error err{};
  return Validate(port, 1, pattern, actions, &err) == 0;
}

void ProbeFeatures(uint16_t port, PortProbe& p) {
  using ft = flowtables::ActionKind;
  Capabilities& c = p.capabilities;
  auto off = [&](ft k) { c.actions[static_cast<size_t>(k)] = false; };
  rte_flow_action_jump jump{2};
  const rte_flow_action jump_a[] = {{RTE_FLOW_ACTION_TYPE_JUMP, &jump},
                                    {RTE_FLOW_ACTION_TYPE_END, nullptr}};
  if (!Accepts(port, jump_a)) {
    p.flow_api = false;
    p.error = "no JUMP between groups: the multi-table pipeline cannot be offloaded";
    return;
  }
  rte_flow_item_tcp spec{}, last{}, mask{};
  spec.hdr.dst_port = rte_cpu_to_be_16(8000);
  last.hdr.dst_port = rte_cpu_to_be_16(9000);
  mask.hdr.dst_port = 0xffff;
  const rte_flow_item range[] = {{RTE_FLOW_ITEM_TYPE_ETH, nullptr, nullptr, nullptr},
                                 {RTE_FLOW_ITEM_TYPE_IPV4, nullptr, nullptr, nullptr},
                                 {RTE_FLOW_ITEM_TYPE_TCP, &spec, &last, &mask},
                                 {RTE_FLOW_ITEM_TYPE_END, nullptr, nullptr, nullptr}};
  if (!Accepts(port, jump_a, range))
    c.match_kinds[static_cast<size_t>(flowtables::MatchKind::kRange)] = false;
  rte_flow_action_set_tag tag{1, 0xff, 1};
  const rte_flow_action tag_a[] = {{RTE_FLOW_ACTION_TYPE_SET_TAG, &tag},
                                   {RTE_FLOW_ACTION_TYPE_JUMP, &jump},
                                   {RTE_FLOW_ACTION_TYPE_END, nullptr}};
  if (!Accepts(port, tag_a)) {
    for (auto f : {flowtables::Field::kCtState, flowtables::Field::kMetaSrcSet,
                   flowtables::Field::kMetaDstSet, flowtables::Field::kMetaPeerBits}) {
      c.match_fields[static_cast<size_t>(f)] = false;
    }
    off(ft::kSetField);
    off(ft::kCtLookup);
  }
  rte_flow_action_set_ipv4 dst{};
  const rte_flow_action nat_a[] = {{RTE_FLOW_ACTION_TYPE_SET_IPV4_DST, &dst},
                                   {RTE_FLOW_ACTION_TYPE_JUMP, &jump},
                                   {RTE_FLOW_ACTION_TYPE_END, nullptr}};
  if (!Accepts(port, nat_a)) off(ft::kDnat), off(ft::kGroup);
  rte_flow_action_ethdev out{port};
  const rte_flow_action out_a[] = {{RTE_FLOW_ACTION_TYPE_REPRESENTED_PORT, &out},
                                   {RTE_FLOW_ACTION_TYPE_END, nullptr}};
  if (!Accepts(port, out_a)) off(ft::kOutput);
  rte_flow_action_mark mark{1};
  rte_flow_action_queue queue{0};
  const rte_flow_action sub[] = {{RTE_FLOW_ACTION_TYPE_MARK, &mark},
                                 {RTE_FLOW_ACTION_TYPE_QUEUE, &queue},
                                 {RTE_FLOW_ACTION_TYPE_END, nullptr}};
  rte_flow_action_sample sample{1, sub};
  const rte_flow_action sample_a[] = {{RTE_FLOW_ACTION_TYPE_SAMPLE, &sample},
                                      {RTE_FLOW_ACTION_TYPE_JUMP, &jump},
                                      {RTE_FLOW_ACTION_TYPE_END, nullptr}};
  if (!Accepts(port, sample_a)) off(ft::kCtCommit);
}

}  // namespace

EalConfig EalConfig::ForTests() {
  return {{"--no-huge", "--no-pci", "-m", "256", "--no-shconf", "-l", "0", "--vdev=net_null0",
           "--log-level=lib.eal:error"}};
}

std::string PortProbe::ToText() const {
  std::string out = absl::StrCat("port ", port_id, " (", driver, "): ");
  if (!flow_api) return absl::StrCat(out, "no flow API: ", error, "; everything runs in software");
  return absl::StrCat(out, "rte_flow ", template_api ? "template/async API" : "synchronous API");
}

absl::StatusOr<std::unique_ptr<RteFlowEal>> RteFlowEal::Init(const EalConfig& config) {
  if (eal_initialised.exchange(true)) {
    return absl::FailedPreconditionError(
        "EAL is already initialised in this process (DPDK allows it once)");
  }
  std::vector<std::string> args = {"nicflow"};
  args.insert(args.end(), config.args.begin(), config.args.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  if (rte_eal_init(static_cast<int>(argv.size()), argv.data()) < 0) {
    return absl::UnavailableError(absl::StrCat("rte_eal_init(", absl::StrJoin(config.args, " "),
                                               "): ", rte_strerror(rte_errno)));
  }
  pool = rte_pktmbuf_pool_create("nicflow_pool", 1024, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                 static_cast<int>(rte_socket_id()));
  return std::unique_ptr<RteFlowEal>(new RteFlowEal());
}

RteFlowEal::~RteFlowEal() {
  for (uint16_t p : started_) {
    rte_flow_flush(p, nullptr);
    rte_eth_dev_stop(p);
    rte_eth_dev_close(p);
  }
  if (pool != nullptr) rte_mempool_free(pool), pool = nullptr;
  rte_eal_cleanup();
}

std::vector<uint16_t> RteFlowEal::Ports() const {
  std::vector<uint16_t> out;
  uint16_t p;
  RTE_ETH_FOREACH_DEV(p) { out.push_back(p); }
  return out;
}

absl::Status RteFlowEal::StartPort(uint16_t port_id) {
  if (!rte_eth_dev_is_valid_port(port_id)) {
    return absl::NotFoundError(absl::StrCat("ethdev port ", port_id, " does not exist"));
  }
  rte_eth_conf conf{};
  int rc = rte_eth_dev_configure(port_id, 1, 1, &conf);
  if (rc == 0)
    rc = rte_eth_rx_queue_setup(port_id, 0, 256, rte_eth_dev_socket_id(port_id), nullptr, pool);
  if (rc == 0)
    rc = rte_eth_tx_queue_setup(port_id, 0, 256, rte_eth_dev_socket_id(port_id), nullptr);
  // The template API is configured before the port starts (mlx5 HWS needs it so).
  rte_flow_port_info info{};
  rte_flow_queue_info qinfo{};
  rte_flow_error err{};
  if (rc == 0 && rte_flow_info_get(port_id, &info, &qinfo, &err) == 0 && info.max_nb_queues > 0) {
    rte_flow_port_attr pattr{};
    pattr.nb_counters = std::min<uint32_t>(info.max_nb_counters, 1u << 16);
    rte_flow_queue_attr qattr{};
    qattr.size = 1024;
    const rte_flow_queue_attr* qattrs[] = {&qattr};
    if (rte_flow_configure(port_id, &pattr, 1, qattrs, &err) != 0) {
      // Not fatal: the synchronous API remains.
    }
  }
  if (rc == 0) rc = rte_eth_dev_start(port_id);
  if (rc != 0) {
    return absl::UnavailableError(
        absl::StrCat("ethdev port ", port_id, ": start: ", rte_strerror(-rc)));
  }
  started_.push_back(port_id);
  return absl::OkStatus();
}

absl::StatusOr<PortProbe> RteFlowEal::Probe(uint16_t port_id) {
  if (!rte_eth_dev_is_valid_port(port_id)) {
    return absl::NotFoundError(absl::StrCat("ethdev port ", port_id, " does not exist"));
  }
  PortProbe p;
  p.port_id = port_id;
  rte_eth_dev_info info{};
  if (rte_eth_dev_info_get(port_id, &info) == 0 && info.driver_name != nullptr) {
    p.driver = info.driver_name;
  }
  p.capabilities = RteFlowCapabilities();
  rte_flow_error err{};
  const rte_flow_action drop[] = {{RTE_FLOW_ACTION_TYPE_DROP, nullptr},
                                  {RTE_FLOW_ACTION_TYPE_END, nullptr}};
  if (const int rc = Validate(port_id, 0, kEthOnly, drop, &err); rc != 0) {
    p.flow_api = false;
    p.error = rteflow::FlowErrorText(rc, err);
  } else {
    p.flow_api = true;
    ProbeFeatures(port_id, p);
  }
  rte_flow_port_info pinfo{};
  rte_flow_queue_info qinfo{};
  p.template_api = p.flow_api && rte_flow_info_get(port_id, &pinfo, &qinfo, &err) == 0 &&
                   pinfo.max_nb_queues > 0;
  p.capabilities.flow_api = p.flow_api;
  p.capabilities.note = p.ToText();
  return p;
}

}  // namespace nicflow::host
