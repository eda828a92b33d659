// RteFlowDevice: a DPDK port as a Device (rteflow_device.h). DPDK handles stay in this file.
#include <rte_errno.h>
#include <rte_flow.h>

#include <algorithm>
#include <map>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "nicflow/flowtables/status.h"
#include "nicflow/host/rteflow_device.h"
#include "rteflow_errors.h"
#include "rteflow_lower.h"

namespace nicflow::host {

namespace {

namespace ft = ::nicflow::flowtables;

constexpr uint32_t kQueue = 0;          // the one flow queue configured at port start
constexpr int kMaxPullRounds = 100000;  // bound on polling for completions

// Waits for `n` completions on the flow queue; the number that failed, or -1 on a timeout.
int PullCompletions(uint16_t port, size_t n) {
  std::vector<rte_flow_op_result> res(std::max<size_t>(n, 1));
  rte_flow_error err{};
  size_t done = 0;
  int failed = 0;
  for (int round = 0; done < n && round < kMaxPullRounds; ++round) {
    const int got =
        rte_flow_pull(port, kQueue, res.data(), static_cast<uint16_t>(res.size()), &err);
    if (got < 0) return -1;
    for (int i = 0; i < got; ++i) failed += res[i].status != RTE_FLOW_OP_SUCCESS;
    done += static_cast<size_t>(got);
  }
  return done == n ? failed : -1;
}

// Owns one rte_flow rule; destroys it when dropped (through the flow queue for async rules).
class FlowHandle {
 public:
  FlowHandle(uint16_t port, rte_flow* flow, bool async) : port_(port), flow_(flow), async_(async) {}
  FlowHandle(const FlowHandle&) = delete;
  FlowHandle& operator=(const FlowHandle&) = delete;
  ~FlowHandle() {
    if (flow_ == nullptr) return;
    rte_flow_error err{};
    if (!async_) {
      rte_flow_destroy(port_, flow_, &err);
      return;
    }
    const rte_flow_op_attr op{};
    if (rte_flow_async_destroy(port_, kQueue, &op, flow_, nullptr, &err) == 0) {
      rte_flow_push(port_, kQueue, &err);
      PullCompletions(port_, 1);
    }
  }
  rte_flow* get() const { return flow_; }

 private:
  uint16_t port_;
  rte_flow* flow_;
  bool async_;
};

// A template table (with its pattern and actions templates) for rules of one shape: the same
// group, attributes, item types and masks, and action types. Destroyed table first.
class TemplateTable {
 public:
  static absl::StatusOr<std::unique_ptr<TemplateTable>> Create(uint16_t port,
                                                               const rteflow::Rule& r) {
    auto t = std::unique_ptr<TemplateTable>(new TemplateTable(port));
    rte_flow_error err{};
    std::vector<rte_flow_item> items;
    for (const rte_flow_item& it : r.pattern) items.push_back({it.type, nullptr, nullptr, it.mask});
    rte_flow_pattern_template_attr pattr{};
    pattr.ingress = r.attr.ingress;
    pattr.transfer = r.attr.transfer;
    t->pattern_ = rte_flow_pattern_template_create(port, &pattr, items.data(), &err);
    if (t->pattern_ == nullptr) return Error("pattern template", err);
    std::vector<rte_flow_action> masks;
    for (const rte_flow_action& a : r.actions) masks.push_back({a.type, nullptr});
    rte_flow_actions_template_attr aattr{};
    aattr.ingress = r.attr.ingress;
    aattr.transfer = r.attr.transfer;
    t->actions_ =
        rte_flow_actions_template_create(port, &aattr, r.actions.data(), masks.data(), &err);
    if (t->actions_ == nullptr) return Error("actions template", err);
    rte_flow_template_table_attr tattr{};
    tattr.flow_attr = r.attr;
    tattr.nb_flows = 1u << 16;
    t->table_ =
        rte_flow_template_table_create(port, &tattr, &t->pattern_, 1, &t->actions_, 1, &err);
    if (t->table_ == nullptr) return Error("template table", err);
    return t;
  }
  ~TemplateTable() {
    rte_flow_error err{};
    if (table_ != nullptr) rte_flow_template_table_destroy(port_, table_, &err);
    if (actions_ != nullptr) rte_flow_actions_template_destroy(port_, actions_, &err);
    if (pattern_ != nullptr) rte_flow_pattern_template_destroy(port_, pattern_, &err);
  }
  rte_flow_template_table* get() const { return table_; }

 private:
  explicit TemplateTable(uint16_t port) : port_(port) {}
  static absl::Status Error(const char* what, const rte_flow_error& err) {
    return absl::UnavailableError(
        absl::StrCat("rte_flow ", what, ": ", rteflow::FlowErrorText(-rte_errno, err)));
  }
  uint16_t port_;
  rte_flow_pattern_template* pattern_ = nullptr;
  rte_flow_actions_template* actions_ = nullptr;
  rte_flow_template_table* table_ = nullptr;
};

std::string ShapeKey(const rteflow::Rule& r) {
  std::string key = absl::StrCat(r.attr.group, "|", r.attr.priority, "|", r.attr.transfer, "|");
  for (const rte_flow_item& it : r.pattern) {
    absl::StrAppend(&key, it.type, it.last != nullptr ? "r" : "", ":");
    if (it.mask != nullptr) {
      const auto* m = static_cast<const uint8_t*>(it.mask);
      for (size_t i = 0; i < rteflow::ItemSize(it.type); ++i) absl::StrAppend(&key, m[i], ",");
    }
  }
  for (const rte_flow_action& a : r.actions) absl::StrAppend(&key, "a", a.type);
  return key;
}

// A rule's identity across lowerings: what the port would be told to create.
std::string RuleKey(const rteflow::Rule& r) {
  return absl::StrCat(r.attr.group, "|", r.attr.priority, "|", r.attr.transfer, "|",
                      rteflow::PatternToString(r), "|", rteflow::ActionsToString(r));
}

struct Installed {
  std::unique_ptr<FlowHandle> flow;
  std::string entry_key;
};

}  // namespace

struct RteFlowDevice::State {
  uint16_t port = 0;
  std::string name;
  PortProbe probe;
  RteFlowLowerOptions options;
  ft::Program installed;
  std::vector<ft::PortDecl> ports;
  // Declared before `rules`: rules are destroyed before the template tables they live in.
  std::map<std::string, std::unique_ptr<TemplateTable>> tables;  // ShapeKey -> table
  std::map<std::string, Installed> rules;                        // RuleKey -> handle

  absl::Status CheckFlowApi() const {
    if (probe.flow_api) return absl::OkStatus();
    return absl::FailedPreconditionError(absl::StrCat(name, ": ", probe.ToText()));
  }

  rteflow::LowerOptions Lowering(const ft::Program& p) const {
    rteflow::LowerOptions lo;
    lo.port_class = options.in_port == "host"     ? ft::PortClass::kHost
                    : options.in_port == "uplink" ? ft::PortClass::kUplink
                                                  : ft::PortClass::kPod;
    lo.in_port = port;
    lo.transfer = options.transfer;
    lo.punt_queue = options.punt_queue;
    lo.select_max_bits = options.select_max_bits;
    lo.outputs = rteflow::DefaultOutputs(p);
    if (!options.vf_ethdev_ports.empty()) {
      rteflow::BindVfOutputs(ports, options.vf_ethdev_ports, lo.outputs);
    }
    return lo;
  }

  // Declared pod port -> the ethdev port of its VF's representor (options.vf_ethdev_ports).
  std::map<std::string, uint16_t> VfOutputs() const {
    std::map<std::string, uint16_t> out;
    for (const ft::PortDecl& d : ports) {
      if (d.ref.kind != ft::PortRef::Kind::kPod || d.vf_pci.empty()) continue;
      auto it = options.vf_ethdev_ports.find(d.vf_pci);
      if (it != options.vf_ethdev_ports.end()) out[d.ref.ToString()] = it->second;
    }
    return out;
  }

  // Template/async API: enqueue every rule, push once, pull every completion.
  absl::Status CreateAsync(const std::vector<const rteflow::Rule*>& todo,
                           std::vector<std::unique_ptr<FlowHandle>>& out) {
    rte_flow_error err{};
    rte_flow_op_attr op{};
    op.postpone = 1;
    for (const rteflow::Rule* r : todo) {
      std::string shape = ShapeKey(*r);
      auto it = tables.find(shape);
      if (it == tables.end()) {
        NICFLOW_ASSIGN_OR_RETURN(auto t, TemplateTable::Create(port, *r));
        it = tables.emplace(shape, std::move(t)).first;
      }
      rte_flow* f = rte_flow_async_create(port, kQueue, &op, it->second->get(), r->pattern.data(),
                                          0, r->actions.data(), 0, nullptr, &err);
      if (f == nullptr) {
        rte_flow_push(port, kQueue, &err);
        PullCompletions(port, out.size());
        return absl::UnavailableError(absl::StrCat(name, ": rte_flow_async_create group ",
                                                   r->attr.group, ": ",
                                                   rteflow::FlowErrorText(-rte_errno, err, r)));
      }
      out.push_back(std::make_unique<FlowHandle>(port, f, true));
    }
    if (rte_flow_push(port, kQueue, &err) != 0) {
      return absl::UnavailableError(
          absl::StrCat(name, ": rte_flow_push: ", rteflow::FlowErrorText(-rte_errno, err)));
    }
    if (const int failed = PullCompletions(port, todo.size()); failed != 0) {
      return absl::UnavailableError(absl::StrCat(name, ": ", failed < 0 ? "timed out on" : "failed",
                                                 " async rule creation (", failed, " of ",
                                                 todo.size(), ")"));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<rte_flow*> Create(const rteflow::Rule& r) {
    rte_flow_error err{};
    rte_flow* f = rte_flow_create(port, &r.attr, r.pattern.data(), r.actions.data(), &err);
    if (f == nullptr) {
      return absl::UnavailableError(absl::StrCat(name, ": rte_flow_create group ", r.attr.group,
                                                 " priority ", r.attr.priority, ": ",
                                                 rteflow::FlowErrorText(-rte_errno, err, &r)));
    }
    return f;
  }

  // Makes the port hold exactly the lowering of `p`: creates what is missing (in lowering order:
  // jump targets first), then destroys what is no longer wanted. All or nothing.
  absl::Status Commit(const ft::Program& p) {
    NICFLOW_RETURN_IF_ERROR(CheckFlowApi());
    NICFLOW_ASSIGN_OR_RETURN(rteflow::RuleSet rs, rteflow::Lower(p, Lowering(p)));
    std::map<std::string, Installed> next;
    std::vector<const rteflow::Rule*> todo;
    std::vector<std::string> todo_keys;
    for (const rteflow::Rule& r : rs.rules) {
      std::string key = RuleKey(r);
      if (next.contains(key)) continue;
      next.emplace(key, Installed{nullptr, r.entry_key});
      if (!rules.contains(key)) todo.push_back(&r), todo_keys.push_back(std::move(key));
    }
    // Created in lowering order (jump targets first); on failure the handles of this call's
    // rules destroy them, so the port is as before.
    std::vector<std::unique_ptr<FlowHandle>> created;
    if (probe.template_api) {
      NICFLOW_RETURN_IF_ERROR(CreateAsync(todo, created));
    } else {
      for (const rteflow::Rule* r : todo) {
        NICFLOW_ASSIGN_OR_RETURN(rte_flow * f, Create(*r));
        created.push_back(std::make_unique<FlowHandle>(port, f, false));
      }
    }
    for (size_t i = 0; i < todo_keys.size(); ++i) next[todo_keys[i]].flow = std::move(created[i]);
    for (auto& [key, inst] : next) {
      if (inst.flow == nullptr) inst.flow = std::move(rules[key].flow);
    }
    rules.swap(next);  // `next` now holds the stale rules
    // Break after make: stale rules go lowest group first, so a rule that jumps into a group is
    // gone before the group's rules (helper groups are numbered after the tables).
    std::vector<std::pair<uint32_t, std::unique_ptr<FlowHandle>*>> stale;
    for (auto& [key, inst] : next) {
      if (inst.flow != nullptr)
        stale.emplace_back(std::stoul(key.substr(0, key.find('|'))), &inst.flow);
    }
    std::stable_sort(stale.begin(), stale.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    for (auto& [group, flow] : stale) flow->reset();
    installed = p;
    return absl::OkStatus();
  }
};

RteFlowDevice::RteFlowDevice(std::unique_ptr<State> s) : s_(std::move(s)) {}
RteFlowDevice::~RteFlowDevice() = default;

absl::StatusOr<std::unique_ptr<RteFlowDevice>> RteFlowDevice::Open(RteFlowEal& eal,
                                                                   uint16_t port_id,
                                                                   RteFlowLowerOptions options) {
  NICFLOW_ASSIGN_OR_RETURN(PortProbe probe, eal.Probe(port_id));
  auto s = std::make_unique<State>();
  s->port = port_id;
  s->name = absl::StrCat("rteflow:port", port_id);
  s->probe = std::move(probe);
  s->options = std::move(options);
  return std::unique_ptr<RteFlowDevice>(new RteFlowDevice(std::move(s)));
}

std::string_view RteFlowDevice::name() const { return s_->name; }
const Capabilities& RteFlowDevice::capabilities() const { return s_->probe.capabilities; }
const PortProbe& RteFlowDevice::probe() const { return s_->probe; }

absl::Status RteFlowDevice::Install(const ft::Program& p) {
  NICFLOW_RETURN_IF_ERROR(ft::Validate(p));
  // The program's ports (and their VFs) decide where its outputs go.
  std::vector<ft::PortDecl> old = std::exchange(s_->ports, p.ports);
  absl::Status st = s_->Commit(p);
  if (!st.ok()) s_->ports = std::move(old);
  return st;
}

absl::Status RteFlowDevice::Apply(const ft::Delta& d) {
  NICFLOW_RETURN_IF_ERROR(s_->CheckFlowApi());
  if (s_->installed.tables.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(s_->name, ": nothing installed"));
  }
  ft::Program next = s_->installed;
  NICFLOW_RETURN_IF_ERROR(ft::ApplyDelta(next, d));
  return s_->Commit(next);
}

absl::Status RteFlowDevice::DeclarePorts(const std::vector<ft::PortDecl>& ports) {
  const std::map<std::string, uint16_t> before = s_->VfOutputs();
  std::vector<ft::PortDecl> old = std::exchange(s_->ports, ports);
  if (s_->VfOutputs() == before || s_->installed.tables.empty()) return absl::OkStatus();
  // A pod moved to another VF: re-create the rules that output to it (make before break).
  if (absl::Status st = s_->Commit(s_->installed); !st.ok()) {
    s_->ports = std::move(old);
    return st;
  }
  return absl::OkStatus();
}

absl::StatusOr<ft::Program> RteFlowDevice::ReadBack() const { return s_->installed; }

absl::StatusOr<EntryCounter> RteFlowDevice::GetEntryCounter(std::string_view entry_key) const {
  EntryCounter total;
  bool found = false;
  const rte_flow_action count[] = {{RTE_FLOW_ACTION_TYPE_COUNT, nullptr},
                                   {RTE_FLOW_ACTION_TYPE_END, nullptr}};
  for (const auto& [key, inst] : s_->rules) {
    if (inst.entry_key != entry_key || inst.flow == nullptr) continue;
    found = true;
    rte_flow_query_count q{};
    rte_flow_error err{};
    if (const int rc = rte_flow_query(s_->port, inst.flow->get(), count, &q, &err); rc != 0) {
      return absl::UnavailableError(
          absl::StrCat(s_->name, ": rte_flow_query COUNT: ", rteflow::FlowErrorText(rc, err)));
    }
    total.packets += q.hits;
    total.bytes += q.bytes;
  }
  if (!found) {
    return absl::NotFoundError(absl::StrCat(s_->name, ": no rule for entry ", Sv(entry_key)));
  }
  return total;
}

absl::StatusOr<TableCounter> RteFlowDevice::GetTableCounter(ft::TableId table) const {
  return absl::UnimplementedError(
      absl::StrCat(s_->name, ": rte_flow counts rules, not lookups of table ", table));
}

}  // namespace nicflow::host
