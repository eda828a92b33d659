// Lowering of a pipeline program to rte_flow rules; the mapping is described in rteflow_lower.h.
#include "rteflow_lower.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <set>
#include <span>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "nicflow/flowtables/status.h"

namespace nicflow::host::rteflow {

namespace {

using flowtables::Action;
using flowtables::Entry;
using flowtables::Field;
using flowtables::FieldMatch;
using flowtables::TableId;
using flowtables::U128;

constexpr uint8_t kTcp = 6, kUdp = 17, kSctp = 132, kIcmp = 1, kIcmp6 = 58;

/// The IP family (0 = not pinned) and L4 protocol (0 = no L4 item) a rule is specialised for.
struct Variant {
  int family = 0;
  uint8_t l4 = 0;
};

bool IsL4Ports(uint8_t p) { return p == kTcp || p == kUdp || p == kSctp; }

// The IR's match semantics on a plain value (for fields decided while lowering).
bool ValueMatches(const FieldMatch& m, U128 v, int width) {
  return std::visit(
      [&](const auto& x) -> bool {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, flowtables::ExactMatch>) {
          return v == x.value;
        } else if constexpr (std::is_same_v<T, flowtables::TernaryMatch>) {
          return (v & x.mask) == x.value;
        } else if constexpr (std::is_same_v<T, flowtables::LpmMatch>) {
          return (v & U128::PrefixMask(width, x.prefix_len_bits)) == x.value;
        } else {
          return x.lo <= v && v <= x.hi;
        }
      },
      m.value);
}

const FieldMatch* Find(const std::vector<FieldMatch>& ms, Field f) {
  for (const auto& m : ms) {
    if (m.field == f) return &m;
  }
  return nullptr;
}

int TagOf(Field f) {
  switch (f) {
    case Field::kCtState:
      return kTagCtState;
    case Field::kMetaSrcSet:
      return kTagSrcSet;
    case Field::kMetaDstSet:
      return kTagDstSet;
    case Field::kMetaPeerBits:
      return kTagPeerBits;
    default:
      return -1;
  }
}

rte_flow_item_type L4Item(uint8_t l4, int family) {
  switch (l4) {
    case kTcp:
      return RTE_FLOW_ITEM_TYPE_TCP;
    case kUdp:
      return RTE_FLOW_ITEM_TYPE_UDP;
    case kSctp:
      return RTE_FLOW_ITEM_TYPE_SCTP;
    default:
      return family == 6 ? RTE_FLOW_ITEM_TYPE_ICMP6 : RTE_FLOW_ITEM_TYPE_ICMP;
  }
}

// Where `f` lives for variant `v`; type END when the variant has no such item.
FieldLoc LocOf(Field f, Variant v) {
  rte_flow_item_type t = RTE_FLOW_ITEM_TYPE_END;
  switch (f) {
    case Field::kEthType:
      t = RTE_FLOW_ITEM_TYPE_ETH;
      break;
    case Field::kIpProto:
      if (v.family != 0) t = v.family == 4 ? RTE_FLOW_ITEM_TYPE_IPV4 : RTE_FLOW_ITEM_TYPE_IPV6;
      break;
    case Field::kIpv4Src:
    case Field::kIpv4Dst:
      t = RTE_FLOW_ITEM_TYPE_IPV4;
      break;
    case Field::kIpv6Src:
    case Field::kIpv6Dst:
      t = RTE_FLOW_ITEM_TYPE_IPV6;
      break;
    case Field::kL4Src:
    case Field::kL4Dst:
      if (IsL4Ports(v.l4)) t = L4Item(v.l4, v.family);
      break;
    case Field::kTcpFlags:
      if (v.l4 == kTcp) t = RTE_FLOW_ITEM_TYPE_TCP;
      break;
    case Field::kIcmpType:
      if (v.l4 == kIcmp || v.l4 == kIcmp6) t = L4Item(v.l4, v.family);
      break;
    case Field::kMetaFlags:
      t = RTE_FLOW_ITEM_TYPE_META;
      break;
    default:
      if (TagOf(f) >= 0) {
        FieldLoc loc = FieldsOfItem(RTE_FLOW_ITEM_TYPE_TAG)[0];
        loc.tag_index = static_cast<uint8_t>(TagOf(f));
        loc.field = f;
        return loc;
      }
      return {};
  }
  for (const FieldLoc& loc : FieldsOfItem(t)) {
    if (loc.field == f) return loc;
  }
  return {};
}

void WriteValue(void* base, const FieldLoc& loc, U128 v) {
  auto* b = static_cast<uint8_t*>(base) + loc.offset;
  if (loc.host_order) {
    const auto x = static_cast<uint32_t>(v.lo);
    std::memcpy(b, &x, sizeof x);
    return;
  }
  for (int i = 0; i < loc.size; ++i) {
    const int shift = 8 * (loc.size - 1 - i);  // byte i of a big-endian field
    b[i] = static_cast<uint8_t>(shift >= 64 ? v.hi >> (shift - 64) : v.lo >> shift);
  }
}

struct ItemSlot {
  rte_flow_item_type type;
  uint8_t tag;
  void* spec;
  void* mask;
  void* last = nullptr;
  std::vector<FieldLoc> ranged;
};

int ItemOrder(rte_flow_item_type t) {
  switch (t) {
    case RTE_FLOW_ITEM_TYPE_ETH:
      return 0;
    case RTE_FLOW_ITEM_TYPE_IPV4:
    case RTE_FLOW_ITEM_TYPE_IPV6:
      return 1;
    case RTE_FLOW_ITEM_TYPE_META:
      return 3;
    case RTE_FLOW_ITEM_TYPE_TAG:
      return 4;
    default:
      return 2;
  }
}

// Builds one rule's pattern: items are created on demand and emitted in header order.
class PatternBuilder {
 public:
  explicit PatternBuilder(Arena& a) : arena_(a) {}

  ItemSlot& Item(rte_flow_item_type t, uint8_t tag = 0) {
    for (auto& s : slots_) {
      if (s.type == t && s.tag == tag) return s;
    }
    const size_t n = ItemSize(t);
    ItemSlot s{t, tag, arena_.NewItemBuffer(n), arena_.NewItemBuffer(n), nullptr, {}};
    if (t == RTE_FLOW_ITEM_TYPE_TAG) {
      static_cast<rte_flow_item_tag*>(s.spec)->index = tag;
      static_cast<rte_flow_item_tag*>(s.mask)->index = 0xff;
    }
    slots_.push_back(s);
    return slots_.back();
  }

  void Match(const FieldLoc& loc, const FieldMatch& m) {
    ItemSlot& s = Item(loc.type, loc.tag_index);
    const int width = flowtables::GetFieldInfo(m.field).width_bits;
    const U128 ones = U128::Ones(width);
    std::visit(
        [&](const auto& x) {
          using T = std::decay_t<decltype(x)>;
          if constexpr (std::is_same_v<T, flowtables::ExactMatch>) {
            WriteValue(s.spec, loc, x.value), WriteValue(s.mask, loc, ones);
          } else if constexpr (std::is_same_v<T, flowtables::TernaryMatch>) {
            WriteValue(s.spec, loc, x.value), WriteValue(s.mask, loc, x.mask);
          } else if constexpr (std::is_same_v<T, flowtables::LpmMatch>) {
            WriteValue(s.spec, loc, x.value);
            WriteValue(s.mask, loc, U128::PrefixMask(width, x.prefix_len_bits));
          } else {
            if (s.last == nullptr) s.last = arena_.NewItemBuffer(ItemSize(loc.type));
            WriteValue(s.spec, loc, x.lo), WriteValue(s.mask, loc, ones);
            WriteValue(s.last, loc, x.hi);
            s.ranged.push_back(loc);
          }
        },
        m.value);
  }

  std::vector<rte_flow_item> Finish() {
    std::stable_sort(slots_.begin(), slots_.end(), [](const ItemSlot& a, const ItemSlot& b) {
      return std::pair(ItemOrder(a.type), a.tag) < std::pair(ItemOrder(b.type), b.tag);
    });
    std::vector<rte_flow_item> out;
    out.reserve(slots_.size() + 1);
    for (ItemSlot& s : slots_) {
      if (s.last != nullptr) {
        // Fields without a range: last = spec, which rte_flow reads as "no range".
        const size_t n = ItemSize(s.type);
        std::vector<std::byte> hi(static_cast<std::byte*>(s.last),
                                  static_cast<std::byte*>(s.last) + n);
        std::memcpy(s.last, s.spec, n);
        for (const FieldLoc& loc : s.ranged) {
          std::memcpy(static_cast<std::byte*>(s.last) + loc.offset, hi.data() + loc.offset,
                      loc.size);
        }
      }
      out.push_back(rte_flow_item{s.type, s.spec, s.last, s.mask});
    }
    out.push_back(rte_flow_item{RTE_FLOW_ITEM_TYPE_END, nullptr, nullptr, nullptr});
    return out;
  }

 private:
  Arena& arena_;
  std::vector<ItemSlot> slots_;
};

}  // namespace

void* Arena::Allocate(size_t size, size_t align) {
  used_ = (used_ + align - 1) & ~(align - 1);
  if (blocks_.empty() || used_ + size > block_size_) {
    block_size_ = std::max<size_t>(size + align, 64 * 1024);
    blocks_.push_back(std::make_unique<std::byte[]>(block_size_));
    used_ = 0;
  }
  void* p = blocks_.back().get() + used_;
  used_ += size;
  used_total_ += size;
  return p;
}

std::map<std::string, OutputTarget, std::less<>> DefaultOutputs(const flowtables::Program& p) {
  std::map<std::string, OutputTarget, std::less<>> out;
  out["host"] = {0, true};
  out["uplink"] = {0, false};
  uint16_t next = 1;
  for (const auto& port : p.ports) {
    if (port.ref.kind == flowtables::PortRef::Kind::kPod)
      out[port.ref.ToString()] = {next++, false};
  }
  return out;
}

void BindVfOutputs(const std::vector<flowtables::PortDecl>& ports,
                   const std::map<std::string, uint16_t>& vf_ethdev_ports,
                   std::map<std::string, OutputTarget, std::less<>>& outputs) {
  std::erase_if(outputs, [](const auto& kv) { return kv.first.rfind("vf:", 0) == 0; });
  for (const flowtables::PortDecl& d : ports) {
    if (d.ref.kind != flowtables::PortRef::Kind::kPod || d.vf_pci.empty()) continue;
    auto it = vf_ethdev_ports.find(d.vf_pci);
    if (it != vf_ethdev_ports.end()) outputs[d.ref.ToString()] = {it->second, false};
  }
}

namespace {

bool HasAnyOf(const std::vector<FieldMatch>& ms, std::initializer_list<Field> fs) {
  for (Field f : fs) {
    if (Find(ms, f) != nullptr) return true;
  }
  return false;
}

// Whether an action list rewrites addresses (then the family must be pinned to lower it).
bool NeedsFamily(const flowtables::Program& p, const std::vector<Action>& actions) {
  for (const Action& a : actions) {
    if (std::holds_alternative<flowtables::DnatAction>(a)) return true;
    if (const auto* g = std::get_if<flowtables::GroupAction>(&a)) {
      if (const auto* grp = p.FindGroup(g->group)) {
        for (const auto& b : grp->buckets) {
          if (NeedsFamily(p, b.actions)) return true;
        }
      }
    }
  }
  return false;
}

class Lowerer {
 public:
  Lowerer(const flowtables::Program& p, const LowerOptions& o, RuleSet& rs)
      : p_(p), o_(o), rs_(rs), arena_(*rs.arena) {
    if (o_.outputs.empty()) o_.outputs = DefaultOutputs(p);
  }

  absl::Status Run() {
    rs_.table_groups = static_cast<uint32_t>(p_.tables.size());
    next_group_ = rs_.table_groups;
    // Rules move when the vector grows; reserving for the usual expansion avoids most of that.
    size_t buckets = 0;
    for (const auto& g : p_.groups) buckets += g.buckets.size();
    rs_.rules.reserve(p_.EntryCount() * 2 + p_.tables.size() + buckets * 3);
    for (const auto& t : p_.tables) rs_.group_names[t.id] = t.name;
    // Last table first: a rule is created after the groups it jumps to.
    for (size_t t = p_.tables.size(); t-- > 0;) NICFLOW_RETURN_IF_ERROR(LowerTable(p_.tables[t]));
    rs_.groups = next_group_;
    return absl::OkStatus();
  }

 private:
  absl::Status LowerTable(const flowtables::TableSchema& schema) {
    const auto& entries = p_.entries[schema.id];
    std::vector<int32_t> prios;
    for (const Entry& e : entries) prios.push_back(e.priority);
    std::sort(prios.begin(), prios.end(), std::greater<>());
    prios.erase(std::unique(prios.begin(), prios.end()), prios.end());
    for (const Entry& e : entries) {
      const auto rank = static_cast<uint32_t>(
          std::lower_bound(prios.begin(), prios.end(), e.priority, std::greater<>()) -
          prios.begin());
      NICFLOW_RETURN_IF_ERROR(LowerEntry(e, rank, RuleRole::kEntry));
    }
    Entry def;
    def.table = schema.id;
    def.actions = schema.default_actions;
    return LowerEntry(def, static_cast<uint32_t>(prios.size()), RuleRole::kDefault);
  }

  absl::Status LowerEntry(const Entry& e, uint32_t rank, RuleRole role) {
    std::string why_never;
    for (const Variant& v : Variants(e, why_never)) {
      Rule r;
      r.attr.group = e.table;
      r.attr.priority = rank;
      r.attr.ingress = o_.transfer ? 0 : 1;
      r.attr.transfer = o_.transfer ? 1 : 0;
      r.role = role;
      r.table = e.table;
      r.ir_priority = e.priority;
      if (role == RuleRole::kEntry) {
        r.entry_key = flowtables::EntryKey(e);
        r.origin = e.origin.ToString();
      } else {
        r.note = "default actions";
      }
      PatternBuilder pb(arena_);
      pb.Item(RTE_FLOW_ITEM_TYPE_ETH);
      PinVariant(pb, v);
      for (const FieldMatch& m : e.match) {
        if (m.field == Field::kMetaPortClass || m.field == Field::kInPort) continue;
        const FieldLoc loc = LocOf(m.field, v);
        if (loc.type == RTE_FLOW_ITEM_TYPE_END) {
          return absl::UnimplementedError(absl::StrCat(
              "rte_flow: table ", p_.tables[e.table].name, ": entry ", flowtables::EntryText(e),
              ": field ", Sv(flowtables::GetFieldInfo(m.field).name), " cannot be matched"));
        }
        pb.Match(loc, m);
      }
      r.pattern = pb.Finish();
      r.actions.push_back({RTE_FLOW_ACTION_TYPE_COUNT, arena_.New<rte_flow_action_count>()});
      NICFLOW_RETURN_IF_ERROR(LowerActions(r, e.actions, v, e.table));
      rs_.rules.push_back(std::move(r));
    }
    if (!why_never.empty()) {
      rs_.notes.push_back(absl::StrCat("table ", p_.tables[e.table].name, ": entry ",
                                       flowtables::EntryText(e), " left out: ", why_never));
    }
    return absl::OkStatus();
  }

  // The family/protocol specialisations an entry needs; none when it can never match here.
  std::vector<Variant> Variants(const Entry& e, std::string& why_never) {
    const auto& ms = e.match;
    for (Field f : {Field::kMetaPortClass, Field::kInPort}) {
      const FieldMatch* m = Find(ms, f);
      const U128 here =
          U128::Of(f == Field::kInPort ? o_.in_port : static_cast<uint64_t>(o_.port_class));
      if (m != nullptr && !ValueMatches(*m, here, flowtables::GetFieldInfo(f).width_bits)) {
        why_never =
            absl::StrCat("matches ", Sv(flowtables::GetFieldInfo(f).name), " of another port");
        return {};
      }
    }
    std::vector<int> fams = {4, 6};
    const bool v4 = HasAnyOf(ms, {Field::kIpv4Src, Field::kIpv4Dst});
    const bool v6 = HasAnyOf(ms, {Field::kIpv6Src, Field::kIpv6Dst});
    if (v4 && v6) {
      why_never = "matches both IPv4 and IPv6 fields";
      return {};
    }
    if (v4) fams = {4};
    if (v6) fams = {6};
    if (const FieldMatch* et = Find(ms, Field::kEthType)) {
      std::erase_if(
          fams, [&](int f) { return !ValueMatches(*et, U128::Of(f == 4 ? 0x0800 : 0x86dd), 16); });
    }
    const bool ports = HasAnyOf(ms, {Field::kL4Src, Field::kL4Dst});
    const bool flags = Find(ms, Field::kTcpFlags) != nullptr;
    const bool icmp = Find(ms, Field::kIcmpType) != nullptr;
    const bool need_family = v4 || v6 || ports || flags || icmp ||
                             HasAnyOf(ms, {Field::kIpProto, Field::kEthType}) ||
                             NeedsFamily(p_, e.actions);
    if (!need_family) return {Variant{}};
    std::vector<Variant> out;
    const FieldMatch* proto = Find(ms, Field::kIpProto);
    for (int fam : fams) {
      if (!ports && !flags && !icmp) {
        out.push_back({fam, 0});
        continue;
      }
      std::vector<uint8_t> l4s;
      if (icmp && !ports && !flags) l4s = {fam == 4 ? kIcmp : kIcmp6};
      if (!icmp) l4s = flags ? std::vector<uint8_t>{kTcp} : std::vector<uint8_t>{kTcp, kUdp, kSctp};
      for (uint8_t l4 : l4s) {
        if (proto == nullptr || ValueMatches(*proto, U128::Of(l4), 8)) out.push_back({fam, l4});
      }
    }
    if (out.empty()) why_never = "no IP family / protocol satisfies its match";
    return out;
  }

  static void PinVariant(PatternBuilder& pb, Variant v) {
    if (v.family == 4) pb.Item(RTE_FLOW_ITEM_TYPE_IPV4);
    if (v.family == 6) pb.Item(RTE_FLOW_ITEM_TYPE_IPV6);
    if (v.l4 != 0) pb.Item(L4Item(v.l4, v.family));
  }

  template <typename T>
  T* Add(Rule& r, rte_flow_action_type type) {
    T* conf = arena_.New<T>();
    r.actions.push_back({type, conf});
    return conf;
  }

  absl::Status SetField(Rule& r, const flowtables::SetFieldAction& a, TableId table) {
    if (const int tag = TagOf(a.field); tag >= 0) {
      auto* c = Add<rte_flow_action_set_tag>(r, RTE_FLOW_ACTION_TYPE_SET_TAG);
      c->data = static_cast<uint32_t>(a.value.lo);
      c->mask = static_cast<uint32_t>(a.mask.lo);
      c->index = static_cast<uint8_t>(tag);
      return absl::OkStatus();
    }
    if (a.field == Field::kMetaFlags) {
      auto* c = Add<rte_flow_action_set_meta>(r, RTE_FLOW_ACTION_TYPE_SET_META);
      c->data = static_cast<uint32_t>(a.value.lo);
      c->mask = static_cast<uint32_t>(a.mask.lo);
      return absl::OkStatus();
    }
    const int width = flowtables::GetFieldInfo(a.field).width_bits;
    if (a.mask == U128::Ones(width)) {
      if (a.field == Field::kIpv4Dst) {
        Add<rte_flow_action_set_ipv4>(r, RTE_FLOW_ACTION_TYPE_SET_IPV4_DST)->ipv4_addr =
            htonl(static_cast<uint32_t>(a.value.lo));
        return absl::OkStatus();
      }
      if (a.field == Field::kL4Dst) {
        Add<rte_flow_action_set_tp>(r, RTE_FLOW_ACTION_TYPE_SET_TP_DST)->port =
            htons(static_cast<uint16_t>(a.value.lo));
        return absl::OkStatus();
      }
    }
    return absl::UnimplementedError(
        absl::StrCat("rte_flow: table ", p_.tables[table].name, ": set_field ",
                     Sv(flowtables::GetFieldInfo(a.field).name), " cannot be lowered"));
  }

  void Dnat(Rule& r, const flowtables::DnatAction& a) {
    if (!a.addr.is_v4()) {
      auto* c = Add<rte_flow_action_set_ipv6>(r, RTE_FLOW_ACTION_TYPE_SET_IPV6_DST);
      const U128 v = U128::FromIp(a.addr);
      for (int i = 0; i < 16; ++i) {
        const int shift = 8 * (15 - i);
        c->ipv6_addr[i] = static_cast<uint8_t>(shift >= 64 ? v.hi >> (shift - 64) : v.lo >> shift);
      }
    } else {
      Add<rte_flow_action_set_ipv4>(r, RTE_FLOW_ACTION_TYPE_SET_IPV4_DST)->ipv4_addr =
          htonl(static_cast<uint32_t>(U128::FromIp(a.addr).lo));
    }
    if (a.port != 0) {
      Add<rte_flow_action_set_tp>(r, RTE_FLOW_ACTION_TYPE_SET_TP_DST)->port = htons(a.port);
    }
  }

  void Punt(Rule& r, TableId table) {
    Add<rte_flow_action_mark>(r, RTE_FLOW_ACTION_TYPE_MARK)->id = table + 1u;
    Add<rte_flow_action_queue>(r, RTE_FLOW_ACTION_TYPE_QUEUE)->index = o_.punt_queue;
  }

  void Jump(Rule& r, uint32_t group) {
    Add<rte_flow_action_jump>(r, RTE_FLOW_ACTION_TYPE_JUMP)->group = group;
  }

  // Lowers `actions` up to the first terminal one; a list without one drops ("fell off").
  absl::Status LowerActions(Rule& r, std::span<const Action> actions, Variant v, TableId table) {
    for (size_t i = 0; i < actions.size(); ++i) {
      const Action& a = actions[i];
      const std::span<const Action> rest = actions.subspan(i + 1);
      switch (flowtables::KindOf(a)) {
        case flowtables::ActionKind::kDrop:
          Add<char>(r, RTE_FLOW_ACTION_TYPE_DROP);
          return Finish(r);
        case flowtables::ActionKind::kGoto:
          Jump(r, std::get<flowtables::GotoAction>(a).table);
          return Finish(r);
        case flowtables::ActionKind::kPunt:
          Punt(r, table);
          return Finish(r);
        case flowtables::ActionKind::kOutput: {
          const std::string name = std::get<flowtables::OutputAction>(a).port.ToString();
          auto it = o_.outputs.find(name);
          if (it == o_.outputs.end()) {
            return absl::NotFoundError(
                absl::StrCat("rte_flow: output port ", name, " has no ethdev port"));
          }
          Add<rte_flow_action_ethdev>(r, it->second.representor
                                             ? RTE_FLOW_ACTION_TYPE_PORT_REPRESENTOR
                                             : RTE_FLOW_ACTION_TYPE_REPRESENTED_PORT)
              ->port_id = it->second.ethdev_port_id;
          return Finish(r);
        }
        case flowtables::ActionKind::kSetField:
          NICFLOW_RETURN_IF_ERROR(SetField(r, std::get<flowtables::SetFieldAction>(a), table));
          break;
        case flowtables::ActionKind::kDnat:
          if (std::get<flowtables::DnatAction>(a).addr.is_v4() == (v.family == 6)) {
            Add<char>(r, RTE_FLOW_ACTION_TYPE_DROP);  // the simulator drops a cross-family NAT
            return Finish(r);
          }
          Dnat(r, std::get<flowtables::DnatAction>(a));
          break;
        case flowtables::ActionKind::kCtCommit: {
          auto* sub = arena_.NewArray<rte_flow_action>(3);
          auto* mark = arena_.New<rte_flow_action_mark>();
          mark->id = kCommitMark;
          auto* queue = arena_.New<rte_flow_action_queue>();
          queue->index = o_.punt_queue;
          sub[0] = {RTE_FLOW_ACTION_TYPE_MARK, mark};
          sub[1] = {RTE_FLOW_ACTION_TYPE_QUEUE, queue};
          sub[2] = {RTE_FLOW_ACTION_TYPE_END, nullptr};
          auto* s = Add<rte_flow_action_sample>(r, RTE_FLOW_ACTION_TYPE_SAMPLE);
          s->ratio = 1;
          s->actions = sub;
          break;
        }
        case flowtables::ActionKind::kCtLookup: {
          NICFLOW_ASSIGN_OR_RETURN(uint32_t g, CtHelper(rest, v, table));
          Jump(r, g);
          return Finish(r);
        }
        case flowtables::ActionKind::kGroup: {
          const auto& name = std::get<flowtables::GroupAction>(a).group;
          const auto* grp = p_.FindGroup(name);
          if (grp == nullptr) return absl::NotFoundError(absl::StrCat("group ", name, " unknown"));
          NICFLOW_ASSIGN_OR_RETURN(uint32_t g, SelectHelper(*grp, rest, v, table));
          Jump(r, g);
          return Finish(r);
        }
        case flowtables::ActionKind::kReject:
        case flowtables::ActionKind::kSnat:
        case flowtables::ActionKind::kCount:
          return absl::UnimplementedError(
              absl::StrCat("rte_flow: table ", p_.tables[table].name, ": action ",
                           Sv(flowtables::ActionKindName(flowtables::KindOf(a))),
                           " cannot be expressed (placement should have punted it)"));
      }
    }
    Add<char>(r, RTE_FLOW_ACTION_TYPE_DROP);
    return Finish(r);
  }

  static absl::Status Finish(Rule& r) {
    r.actions.push_back({RTE_FLOW_ACTION_TYPE_END, nullptr});
    return absl::OkStatus();
  }

  Rule HelperRule(uint32_t group, uint32_t priority, RuleRole role, TableId table) {
    Rule r;
    r.attr.group = group;
    r.attr.priority = priority;
    r.attr.ingress = o_.transfer ? 0 : 1;
    r.attr.transfer = o_.transfer ? 1 : 0;
    r.role = role;
    r.table = table;
    return r;
  }

  std::string HelperKey(std::string_view kind, std::string_view name, Variant v,
                        std::span<const Action> rest) {
    std::vector<Action> cont(rest.begin(), rest.end());
    return absl::StrCat(Sv(kind), "|", Sv(name), "|", v.family, "|", v.l4, "|",
                        flowtables::ActionsToString(cont));
  }

  absl::StatusOr<uint32_t> CtHelper(std::span<const Action> rest, Variant v, TableId table) {
    const std::string key = HelperKey("ct", "", v, rest);
    if (auto it = helpers_.find(key); it != helpers_.end()) return it->second;
    const uint32_t g = next_group_++;
    helpers_[key] = g;
    rs_.group_names[g] = absl::StrCat("conntrack (after ", p_.tables[table].name, ")");
    // TCP segments that cannot start a connection (conntrack's TcpCanStart): trk|inv.
    struct Inv {
      uint8_t spec, mask;
    };
    constexpr Inv kInvalid[] = {{0x04, 0x04}, {0x01, 0x01}, {0x12, 0x12}, {0x00, 0x17}};
    if (v.l4 == 0 || v.l4 == kTcp) {
      for (int fam : v.family != 0 ? std::vector<int>{v.family} : std::vector<int>{4, 6}) {
        for (const Inv& inv : kInvalid) {
          Rule r = HelperRule(g, 0, RuleRole::kConntrack, table);
          r.note = "conntrack miss: TCP segment cannot start a connection -> trk|inv";
          PatternBuilder pb(arena_);
          pb.Item(RTE_FLOW_ITEM_TYPE_ETH);
          PinVariant(pb, {fam, kTcp});
          pb.Match(LocOf(Field::kTcpFlags, {fam, kTcp}),
                   FieldMatch{Field::kTcpFlags,
                              flowtables::TernaryMatch{U128::Of(inv.spec), U128::Of(inv.mask)}});
          r.pattern = pb.Finish();
          NICFLOW_RETURN_IF_ERROR(
              SetCtState(r, flowtables::kCtTrk | flowtables::kCtInv, rest, {fam, kTcp}, table));
          rs_.rules.push_back(std::move(r));
        }
      }
    }
    Rule r = HelperRule(g, 1, RuleRole::kConntrack, table);
    r.note = "conntrack miss -> trk|new (committed connections get rules above this one)";
    PatternBuilder pb(arena_);
    pb.Item(RTE_FLOW_ITEM_TYPE_ETH);
    r.pattern = pb.Finish();
    NICFLOW_RETURN_IF_ERROR(SetCtState(r, flowtables::kCtTrk | flowtables::kCtNew, rest, v, table));
    rs_.rules.push_back(std::move(r));
    return g;
  }

  absl::Status SetCtState(Rule& r, uint32_t state, std::span<const Action> rest, Variant v,
                          TableId table) {
    auto* c = Add<rte_flow_action_set_tag>(r, RTE_FLOW_ACTION_TYPE_SET_TAG);
    c->data = state;
    c->mask = 0xff;
    c->index = kTagCtState;
    return LowerActions(r, rest, v, table);
  }

  absl::StatusOr<uint32_t> SelectHelper(const flowtables::SelectGroup& grp,
                                        std::span<const Action> rest, Variant v, TableId table);

  const flowtables::Program& p_;
  LowerOptions o_;
  RuleSet& rs_;
  Arena& arena_;
  uint32_t next_group_ = 0;
  absl::flat_hash_map<std::string, uint32_t> helpers_;
};

// Slots per bucket, in proportion to weights (largest remainder), every positive weight at least
// one slot when there are enough.
std::vector<uint32_t> DealSlots(const flowtables::SelectGroup& g, uint32_t slots) {
  std::vector<uint32_t> count(g.buckets.size(), 0);
  uint64_t total = 0;
  for (const auto& b : g.buckets) total += b.weight;
  if (total == 0) return count;
  std::vector<std::pair<uint64_t, size_t>> rem;
  uint32_t dealt = 0;
  for (size_t i = 0; i < g.buckets.size(); ++i) {
    const uint64_t share = uint64_t{g.buckets[i].weight} * slots;
    count[i] = static_cast<uint32_t>(share / total);
    dealt += count[i];
    rem.emplace_back(share % total, i);
  }
  std::stable_sort(rem.begin(), rem.end(), [](auto& a, auto& b) { return a.first > b.first; });
  for (size_t i = 0; dealt < slots && i < rem.size(); ++i, ++dealt) ++count[rem[i].second];
  for (size_t i = 0; i < count.size(); ++i) {
    if (g.buckets[i].weight == 0 || count[i] != 0) continue;
    auto most = std::max_element(count.begin(), count.end());
    if (*most > 1) --*most, ++count[i];
  }
  return count;
}

absl::StatusOr<uint32_t> Lowerer::SelectHelper(const flowtables::SelectGroup& grp,
                                               std::span<const Action> rest, Variant v,
                                               TableId table) {
  const std::string key = HelperKey("select", grp.name, v, rest);
  if (auto it = helpers_.find(key); it != helpers_.end()) return it->second;
  const uint32_t g = next_group_++;
  helpers_[key] = g;
  rs_.select_groups[g] = grp.name;
  rs_.group_names[g] = absl::StrCat("select ", grp.name);
  size_t positive = 0;
  for (const auto& b : grp.buckets) positive += b.weight > 0;
  if (positive == 0) {
    Rule r = HelperRule(g, 0, RuleRole::kSelectBucket, table);
    r.note = absl::StrCat("select ", grp.name, ": no bucket with weight -> drop");
    PatternBuilder pb(arena_);
    pb.Item(RTE_FLOW_ITEM_TYPE_ETH);
    r.pattern = pb.Finish();
    Add<char>(r, RTE_FLOW_ACTION_TYPE_DROP);
    NICFLOW_RETURN_IF_ERROR(Finish(r));
    rs_.rules.push_back(std::move(r));
    return g;
  }
  int bits = 0;
  while ((size_t{1} << bits) < positive) ++bits;
  bits = std::min(o_.select_max_bits, bits + o_.select_extra_bits);
  const uint32_t slots = 1u << bits;
  const std::vector<uint32_t> count = DealSlots(grp, slots);
  const bool by_port = IsL4Ports(v.l4) && !grp.affinity_timeout_s.has_value();
  for (int fam : v.family != 0 ? std::vector<int>{v.family} : std::vector<int>{4, 6}) {
    const Variant fv{fam, v.l4};
    const Field hash = by_port ? Field::kL4Src : fam == 4 ? Field::kIpv4Src : Field::kIpv6Src;
    if (bits > 0) rs_.select_hash_fields[g] = hash;
    uint32_t slot = 0;
    for (size_t b = 0; b < grp.buckets.size(); ++b) {
      // A bucket's run of slots as aligned power-of-two blocks: one ternary rule per block.
      for (uint32_t left = count[b]; left > 0;) {
        uint32_t size = 1;
        while (size * 2 <= left && slot % (size * 2) == 0) size *= 2;
        Rule r = HelperRule(g, 0, RuleRole::kSelectBucket, table);
        r.note = absl::StrFormat("select %s: slots %d-%d of %d -> %s", grp.name, slot,
                                 slot + size - 1, slots, grp.buckets[b].label);
        PatternBuilder pb(arena_);
        pb.Item(RTE_FLOW_ITEM_TYPE_ETH);
        PinVariant(pb, fv);
        if (bits > 0) {
          const uint64_t mask = (slots - 1) & ~uint64_t{size - 1};
          pb.Match(LocOf(hash, fv),
                   FieldMatch{hash, flowtables::TernaryMatch{U128::Of(slot), U128::Of(mask)}});
        }
        r.pattern = pb.Finish();
        std::vector<Action> acts = grp.buckets[b].actions;
        acts.insert(acts.end(), rest.begin(), rest.end());
        NICFLOW_RETURN_IF_ERROR(LowerActions(r, acts, fv, table));
        rs_.rules.push_back(std::move(r));
        slot += size;
        left -= size;
      }
    }
  }
  return g;
}

}  // namespace

absl::StatusOr<RuleSet> Lower(const flowtables::Program& p, const LowerOptions& options) {
  NICFLOW_RETURN_IF_ERROR(flowtables::Validate(p));
  RuleSet rs;
  Lowerer l(p, options, rs);
  NICFLOW_RETURN_IF_ERROR(l.Run());
  return rs;
}

}  // namespace nicflow::host::rteflow
