#include "rteflow_sim.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <set>

#include "absl/strings/str_cat.h"
#include "nicflow/flowtables/status.h"

namespace nicflow::host::rteflow {

namespace {

using flowtables::Field;
using flowtables::U128;

constexpr int kMaxJumps = 64;

U128 ReadU128(const void* base, const FieldLoc& loc) {
  const auto* b = static_cast<const uint8_t*>(base) + loc.offset;
  if (loc.host_order) {
    uint32_t v;
    std::memcpy(&v, b, sizeof v);
    return U128::Of(v);
  }
  U128 v;
  for (int i = 0; i < loc.size; ++i) {
    v.hi = v.hi << 8 | v.lo >> 56;
    v.lo = v.lo << 8 | b[i];
  }
  return v;
}

uint8_t Proto(const sim::PacketFields& f) {
  return f.has(Field::kIpProto) ? static_cast<uint8_t>(f.get(Field::kIpProto).lo) : 0;
}

// Whether the packet carries the layer an item describes.
bool HasLayer(rte_flow_item_type t, const sim::PacketFields& f) {
  const uint64_t eth = f.get(Field::kEthType).lo;
  switch (t) {
    case RTE_FLOW_ITEM_TYPE_ETH:
    case RTE_FLOW_ITEM_TYPE_META:
    case RTE_FLOW_ITEM_TYPE_TAG:
      return true;
    case RTE_FLOW_ITEM_TYPE_IPV4:
      return eth == sim::kEthTypeIpv4;
    case RTE_FLOW_ITEM_TYPE_IPV6:
      return eth == sim::kEthTypeIpv6;
    case RTE_FLOW_ITEM_TYPE_TCP:
      return Proto(f) == sim::kProtoTcp && f.has(Field::kL4Src);
    case RTE_FLOW_ITEM_TYPE_UDP:
      return Proto(f) == sim::kProtoUdp && f.has(Field::kL4Src);
    case RTE_FLOW_ITEM_TYPE_SCTP:
      return Proto(f) == sim::kProtoSctp && f.has(Field::kL4Src);
    case RTE_FLOW_ITEM_TYPE_ICMP:
      return eth == sim::kEthTypeIpv4 && Proto(f) == sim::kProtoIcmp && f.has(Field::kIcmpType);
    case RTE_FLOW_ITEM_TYPE_ICMP6:
      return eth == sim::kEthTypeIpv6 && Proto(f) == sim::kProtoIcmpv6 && f.has(Field::kIcmpType);
    default:
      return false;
  }
}

U128 PacketValue(const rte_flow_item& it, const FieldLoc& loc, const SimPacket& p) {
  if (it.type == RTE_FLOW_ITEM_TYPE_TAG) {
    const uint8_t idx = static_cast<const rte_flow_item_tag*>(it.spec)->index;
    return U128::Of(idx < p.tags.size() ? p.tags[idx] : 0);
  }
  if (it.type == RTE_FLOW_ITEM_TYPE_META) return U128::Of(p.meta);
  return p.fields.get(loc.field);
}

// Bytes of an item's mask outside the fields the model reads must be zero.
absl::Status CheckMask(const rte_flow_item& it) {
  const size_t n = ItemSize(it.type);
  if (n == 0) {
    return absl::UnimplementedError(absl::StrCat("item type ", static_cast<int>(it.type)));
  }
  if (it.spec != nullptr && it.mask == nullptr) {
    return absl::UnimplementedError(absl::StrCat(ItemName(it.type), ": spec without mask"));
  }
  if (it.mask == nullptr) return absl::OkStatus();
  std::vector<bool> known(n, false);
  for (const FieldLoc& loc : FieldsOfItem(it.type)) {
    for (int i = 0; i < loc.size; ++i) known[loc.offset + i] = true;
  }
  if (it.type == RTE_FLOW_ITEM_TYPE_TAG) known[offsetof(rte_flow_item_tag, index)] = true;
  const auto* m = static_cast<const uint8_t*>(it.mask);
  for (size_t i = 0; i < n; ++i) {
    if (m[i] != 0 && !known[i]) {
      return absl::UnimplementedError(
          absl::StrCat(ItemName(it.type), ": mask byte ", i, " covers a field not modelled"));
    }
  }
  return absl::OkStatus();
}

bool KnownAction(rte_flow_action_type t) {
  switch (t) {
    case RTE_FLOW_ACTION_TYPE_COUNT:
    case RTE_FLOW_ACTION_TYPE_MARK:
    case RTE_FLOW_ACTION_TYPE_SET_TAG:
    case RTE_FLOW_ACTION_TYPE_SET_META:
    case RTE_FLOW_ACTION_TYPE_SET_IPV4_DST:
    case RTE_FLOW_ACTION_TYPE_SET_IPV6_DST:
    case RTE_FLOW_ACTION_TYPE_SET_TP_DST:
    case RTE_FLOW_ACTION_TYPE_SAMPLE:
    case RTE_FLOW_ACTION_TYPE_JUMP:
    case RTE_FLOW_ACTION_TYPE_DROP:
    case RTE_FLOW_ACTION_TYPE_QUEUE:
    case RTE_FLOW_ACTION_TYPE_RSS:
    case RTE_FLOW_ACTION_TYPE_REPRESENTED_PORT:
    case RTE_FLOW_ACTION_TYPE_PORT_REPRESENTOR:
      return true;
    default:
      return false;
  }
}

}  // namespace

const char* FateName(Fate f) {
  switch (f) {
    case Fate::kForward:
      return "forward";
    case Fate::kDrop:
      return "drop";
    case Fate::kQueue:
      return "queue";
    case Fate::kMiss:
      return "miss";
    case Fate::kLoop:
      return "loop";
  }
  return "?";
}

SimPacket PacketFromParsed(const sim::ParsedPacket& p) {
  SimPacket out;
  out.fields = p.fields;
  return out;
}

absl::StatusOr<RteFlowSim> RteFlowSim::Create(const RuleSet& rules) {
  RteFlowSim s(rules);
  for (size_t i = 0; i < rules.rules.size(); ++i) {
    const Rule& r = rules.rules[i];
    auto where = [&] {
      return absl::StrCat("rule ", i, " (group ", r.attr.group, " priority ", r.attr.priority, ")");
    };
    for (const rte_flow_item& it : r.pattern) {
      if (it.type == RTE_FLOW_ITEM_TYPE_END) break;
      if (absl::Status st = CheckMask(it); !st.ok()) {
        return absl::UnimplementedError(absl::StrCat("rteflow sim: ", where(), ": ", st.message()));
      }
    }
    for (const rte_flow_action& a : r.actions) {
      if (a.type == RTE_FLOW_ACTION_TYPE_END) break;
      if (!KnownAction(a.type)) {
        return absl::UnimplementedError(absl::StrCat("rteflow sim: ", where(), ": action type ",
                                                     static_cast<int>(a.type), " not modelled"));
      }
    }
    if (r.attr.group >= s.by_group_.size()) s.by_group_.resize(r.attr.group + 1);
    s.by_group_[r.attr.group].push_back(i);
  }
  for (auto& g : s.by_group_) {
    std::stable_sort(g.begin(), g.end(), [&](size_t a, size_t b) {
      return rules.rules[a].attr.priority < rules.rules[b].attr.priority;
    });
  }
  s.select_hash_.assign(s.by_group_.size(), Field::kCount);
  for (const auto& [g, f] : rules.select_hash_fields) {
    if (g < s.select_hash_.size()) s.select_hash_[g] = f;
  }
  return s;
}

bool RteFlowSim::Matches(const Rule& r, const SimPacket& p, Field ignore) const noexcept {
  for (const rte_flow_item& it : r.pattern) {
    if (it.type == RTE_FLOW_ITEM_TYPE_END) return true;
    if (!HasLayer(it.type, p.fields)) return false;
    if (it.spec == nullptr) continue;
    for (const FieldLoc& loc : FieldsOfItem(it.type)) {
      if (loc.field == ignore && it.type != RTE_FLOW_ITEM_TYPE_TAG) continue;
      const U128 mask = ReadU128(it.mask, loc);
      if (mask == U128{}) continue;
      const U128 v = PacketValue(it, loc, p) & mask;
      const U128 lo = ReadU128(it.spec, loc) & mask;
      const U128 hi = it.last != nullptr ? ReadU128(it.last, loc) & mask : lo;
      if (hi > lo ? (v < lo || v > hi) : v != lo) return false;
    }
  }
  return true;
}

int64_t RteFlowSim::Execute(size_t rule, SimPacket& p, SimResult& out) const noexcept {
  const Rule& r = rules_->rules[rule];
  out.hits.push_back(rule);
  const bool v4 = p.fields.get(Field::kEthType).lo == sim::kEthTypeIpv4;
  for (const rte_flow_action& a : r.actions) {
    switch (a.type) {
      case RTE_FLOW_ACTION_TYPE_END:
        out.fate = Fate::kMiss;
        return -1;  // no fate: not lowered
      case RTE_FLOW_ACTION_TYPE_COUNT:
        break;
      case RTE_FLOW_ACTION_TYPE_MARK:
        out.mark = static_cast<const rte_flow_action_mark*>(a.conf)->id;
        out.marked = true;
        break;
      case RTE_FLOW_ACTION_TYPE_SET_TAG: {
        const auto* c = static_cast<const rte_flow_action_set_tag*>(a.conf);
        if (c->index < p.tags.size()) {
          p.tags[c->index] = (p.tags[c->index] & ~c->mask) | (c->data & c->mask);
        }
        break;
      }
      case RTE_FLOW_ACTION_TYPE_SET_META: {
        const auto* c = static_cast<const rte_flow_action_set_meta*>(a.conf);
        p.meta = (p.meta & ~c->mask) | (c->data & c->mask);
        break;
      }
      case RTE_FLOW_ACTION_TYPE_SET_IPV4_DST:
        if (v4) {
          p.fields.set(
              Field::kIpv4Dst,
              U128::Of(ntohl(static_cast<const rte_flow_action_set_ipv4*>(a.conf)->ipv4_addr)));
        }
        break;
      case RTE_FLOW_ACTION_TYPE_SET_IPV6_DST:
        if (!v4) {
          FieldLoc loc{RTE_FLOW_ITEM_TYPE_END, 0, 16, false, 0, Field::kIpv6Dst};
          p.fields.set(
              Field::kIpv6Dst,
              ReadU128(static_cast<const rte_flow_action_set_ipv6*>(a.conf)->ipv6_addr, loc));
        }
        break;
      case RTE_FLOW_ACTION_TYPE_SET_TP_DST:
        if (p.fields.has(Field::kL4Dst)) {
          p.fields.set(Field::kL4Dst,
                       U128::Of(ntohs(static_cast<const rte_flow_action_set_tp*>(a.conf)->port)));
        }
        break;
      case RTE_FLOW_ACTION_TYPE_SAMPLE:
        out.sampled = true;
        break;
      case RTE_FLOW_ACTION_TYPE_JUMP:
        return static_cast<const rte_flow_action_jump*>(a.conf)->group;
      case RTE_FLOW_ACTION_TYPE_DROP:
        out.fate = Fate::kDrop;
        return -1;
      case RTE_FLOW_ACTION_TYPE_QUEUE:
        out.fate = Fate::kQueue;
        out.queue = static_cast<const rte_flow_action_queue*>(a.conf)->index;
        return -1;
      case RTE_FLOW_ACTION_TYPE_RSS:
        out.fate = Fate::kQueue;
        return -1;
      case RTE_FLOW_ACTION_TYPE_REPRESENTED_PORT:
      case RTE_FLOW_ACTION_TYPE_PORT_REPRESENTOR:
        out.fate = Fate::kForward;
        out.port_id = static_cast<const rte_flow_action_ethdev*>(a.conf)->port_id;
        out.representor = a.type == RTE_FLOW_ACTION_TYPE_PORT_REPRESENTOR;
        return -1;
      default:
        out.fate = Fate::kMiss;
        return -1;  // refused by Create()
    }
  }
  out.fate = Fate::kMiss;
  return -1;
}

SimResult RteFlowSim::Run(const SimPacket& in) const noexcept {
  SimResult out;
  out.packet = in;
  int64_t group = 0;
  for (int jumps = 0; jumps < kMaxJumps; ++jumps) {
    const auto g = static_cast<size_t>(group);
    size_t winner = SIZE_MAX;
    if (g < by_group_.size()) {
      for (size_t i : by_group_[g]) {
        if (Matches(rules_->rules[i], out.packet, Field::kCount)) {
          winner = i;
          break;
        }
      }
    }
    if (winner == SIZE_MAX) {
      out.fate = Fate::kMiss;
      return out;
    }
    group = Execute(winner, out.packet, out);
    if (group < 0) return out;
  }
  out.fate = Fate::kLoop;
  return out;
}

std::vector<SimResult> RteFlowSim::Trace(const SimPacket& in) const {
  std::vector<SimResult> out;
  SimResult start;
  start.packet = in;
  TraceFrom(0, std::move(start), 0, out);
  return out;
}

void RteFlowSim::TraceFrom(uint32_t group, SimResult state, int depth,
                           std::vector<SimResult>& out) const {
  if (depth >= kMaxJumps) {
    state.fate = Fate::kLoop;
    out.push_back(std::move(state));
    return;
  }
  const Field ignore = group < select_hash_.size() ? select_hash_[group] : Field::kCount;
  const bool fork = rules_->select_groups.contains(group);
  std::set<std::string> taken;  // buckets with the same actions lead to the same place
  bool any = false;
  if (group < by_group_.size()) {
    for (size_t i : by_group_[group]) {
      const Rule& r = rules_->rules[i];
      if (!Matches(r, state.packet, ignore)) continue;
      if (fork && !taken.insert(ActionsToString(r)).second) continue;
      any = true;
      SimResult next = state;
      const int64_t to = Execute(i, next.packet, next);
      if (to >= 0) {
        TraceFrom(static_cast<uint32_t>(to), std::move(next), depth + 1, out);
      } else {
        out.push_back(std::move(next));
      }
      if (!fork) break;
    }
  }
  if (!any) {
    state.fate = Fate::kMiss;
    out.push_back(std::move(state));
  }
}

}  // namespace nicflow::host::rteflow
