// Field locations of rte_flow items and the text forms of lowered rules (testpmd, traces).
#include <arpa/inet.h>

#include <cstddef>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "rteflow_lower.h"

namespace nicflow::host::rteflow {

namespace {

using flowtables::Field;

#define NICFLOW_LOC(T, ITEM, MEMBER, F)                                                \
  FieldLoc {                                                                           \
    T, static_cast<uint16_t>(offsetof(ITEM, MEMBER)),                                  \
        static_cast<uint8_t>(sizeof(static_cast<ITEM*>(nullptr)->MEMBER)), false, 0, F \
  }

const std::vector<FieldLoc> kEth = {
    NICFLOW_LOC(RTE_FLOW_ITEM_TYPE_ETH, rte_flow_item_eth, hdr.ether_type, Field::kEthType)};
const std::vector<FieldLoc> kIpv4 = {
    NICFLOW_LOC(RTE_FLOW_ITEM_TYPE_IPV4, rte_flow_item_ipv4, hdr.next_proto_id, Field::kIpProto),
    NICFLOW_LOC(RTE_FLOW_ITEM_TYPE_IPV4, rte_flow_item_ipv4, hdr.src_addr, Field::kIpv4Src),
    NICFLOW_LOC(RTE_FLOW_ITEM_TYPE_IPV4, rte_flow_item_ipv4, hdr.dst_addr, Field::kIpv4Dst)};
const std::vector<FieldLoc> kIpv6 = {
    NICFLOW_LOC(RTE_FLOW_ITEM_TYPE_IPV6, rte_flow_item_ipv6, hdr.proto, Field::kIpProto),
    NICFLOW_LOC(RTE_FLOW_ITEM_TYPE_IPV6, rte_flow_item_ipv6, hdr.src_addr, Field::kIpv6Src),
    NICFLOW_LOC(RTE_FLOW_ITEM_TYPE_IPV6, rte_flow_item_ipv6, hdr.dst_addr, Field::kIpv6Dst)};
const std::vector<FieldLoc> kTcp = {
    NICFLOW_LOC(RTE_FLOW_ITEM_TYPE_TCP, rte_flow_item_tcp, hdr.src_port, Field::kL4Src),
    NICFLOW_LOC(RTE_FLOW_ITEM_TYPE_TCP, rte_flow_item_tcp, hdr.dst_port, Field::kL4Dst),
    NICFLOW_LOC(RTE_FLOW_ITEM_TYPE_TCP, rte_flow_item_tcp, hdr.tcp_flags, Field::kTcpFlags)};
const std::vector<FieldLoc> kUdp = {
    NICFLOW_LOC(RTE_FLOW_ITEM_TYPE_UDP, rte_flow_item_udp, hdr.src_port, Field::kL4Src),
    NICFLOW_LOC(RTE_FLOW_ITEM_TYPE_UDP, rte_flow_item_udp, hdr.dst_port, Field::kL4Dst)};
const std::vector<FieldLoc> kSctp = {
    NICFLOW_LOC(RTE_FLOW_ITEM_TYPE_SCTP, rte_flow_item_sctp, hdr.src_port, Field::kL4Src),
    NICFLOW_LOC(RTE_FLOW_ITEM_TYPE_SCTP, rte_flow_item_sctp, hdr.dst_port, Field::kL4Dst)};
const std::vector<FieldLoc> kIcmp = {
    NICFLOW_LOC(RTE_FLOW_ITEM_TYPE_ICMP, rte_flow_item_icmp, hdr.icmp_type, Field::kIcmpType)};
const std::vector<FieldLoc> kIcmp6 = {
    NICFLOW_LOC(RTE_FLOW_ITEM_TYPE_ICMP6, rte_flow_item_icmp6, type, Field::kIcmpType)};
const std::vector<FieldLoc> kMeta = {
    FieldLoc{RTE_FLOW_ITEM_TYPE_META, static_cast<uint16_t>(offsetof(rte_flow_item_meta, data)), 4,
             true, 0, Field::kMetaFlags}};
// TAG's data field; which register it is comes from spec.index (the executor reads it).
const std::vector<FieldLoc> kTag = {
    FieldLoc{RTE_FLOW_ITEM_TYPE_TAG, static_cast<uint16_t>(offsetof(rte_flow_item_tag, data)), 4,
             true, 0, Field::kMetaSrcSet}};
const std::vector<FieldLoc> kNone;

#undef NICFLOW_LOC

// testpmd's token for a field of an item.
const char* TestpmdFieldName(rte_flow_item_type t, Field f) {
  switch (f) {
    case Field::kEthType:
      return "type";
    case Field::kIpProto:
      return "proto";
    case Field::kIpv4Src:
    case Field::kIpv6Src:
    case Field::kL4Src:
      return "src";
    case Field::kIpv4Dst:
    case Field::kIpv6Dst:
    case Field::kL4Dst:
      return "dst";
    case Field::kTcpFlags:
      return "flags";
    case Field::kIcmpType:
      return "type";
    default:
      return t == RTE_FLOW_ITEM_TYPE_TAG || t == RTE_FLOW_ITEM_TYPE_META ? "data" : "?";
  }
}

uint64_t ReadNumber(const void* base, const FieldLoc& loc) {
  const auto* b = static_cast<const uint8_t*>(base) + loc.offset;
  if (loc.host_order) {
    uint32_t v;
    std::memcpy(&v, b, sizeof v);
    return v;
  }
  uint64_t v = 0;
  for (int i = 0; i < loc.size && i < 8; ++i) v = v << 8 | b[i];
  return v;
}

std::string FieldText(const void* base, const FieldLoc& loc) {
  const auto* b = static_cast<const uint8_t*>(base) + loc.offset;
  char buf[INET6_ADDRSTRLEN] = {};
  if (loc.size == 4 && !loc.host_order) {
    inet_ntop(AF_INET, b, buf, sizeof buf);
    return buf;
  }
  if (loc.size == 16) {
    inet_ntop(AF_INET6, b, buf, sizeof buf);
    return buf;
  }
  if (loc.field == Field::kL4Src || loc.field == Field::kL4Dst) {
    return absl::StrCat(ReadNumber(base, loc));
  }
  return absl::StrFormat("0x%x", ReadNumber(base, loc));
}

bool AllZero(const void* base, const FieldLoc& loc) {
  const auto* b = static_cast<const uint8_t*>(base) + loc.offset;
  for (int i = 0; i < loc.size; ++i) {
    if (b[i] != 0) return false;
  }
  return true;
}

bool SameBytes(const void* a, const void* b, const FieldLoc& loc) {
  return std::memcmp(static_cast<const uint8_t*>(a) + loc.offset,
                     static_cast<const uint8_t*>(b) + loc.offset, loc.size) == 0;
}

std::string ItemText(const rte_flow_item& it) {
  std::string out = ItemName(it.type);
  if (it.spec == nullptr) return out;
  for (const FieldLoc& loc : FieldsOfItem(it.type)) {
    const void* mask = it.mask;
    if (mask != nullptr && AllZero(mask, loc)) continue;
    const char* name = TestpmdFieldName(it.type, loc.field);
    absl::StrAppend(&out, " ", name, " spec ", FieldText(it.spec, loc));
    if (it.last != nullptr && !SameBytes(it.last, it.spec, loc) && !AllZero(it.last, loc)) {
      absl::StrAppend(&out, " ", name, " last ", FieldText(it.last, loc));
    }
    if (mask != nullptr) absl::StrAppend(&out, " ", name, " mask ", FieldText(mask, loc));
  }
  if (it.type == RTE_FLOW_ITEM_TYPE_TAG) {
    absl::StrAppend(&out, " index is ", static_cast<const rte_flow_item_tag*>(it.spec)->index);
  }
  return out;
}

std::string Ipv4Text(rte_be32_t a) {
  char buf[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &a, buf, sizeof buf);
  return buf;
}

std::string ActionText(const rte_flow_action& a) {
  switch (a.type) {
    case RTE_FLOW_ACTION_TYPE_COUNT:
      return "count";
    case RTE_FLOW_ACTION_TYPE_DROP:
      return "drop";
    case RTE_FLOW_ACTION_TYPE_JUMP:
      return absl::StrCat("jump group ", static_cast<const rte_flow_action_jump*>(a.conf)->group);
    case RTE_FLOW_ACTION_TYPE_QUEUE:
      return absl::StrCat("queue index ", static_cast<const rte_flow_action_queue*>(a.conf)->index);
    case RTE_FLOW_ACTION_TYPE_MARK:
      return absl::StrCat("mark id ", static_cast<const rte_flow_action_mark*>(a.conf)->id);
    case RTE_FLOW_ACTION_TYPE_SET_TAG: {
      const auto* c = static_cast<const rte_flow_action_set_tag*>(a.conf);
      return absl::StrFormat("set_tag data 0x%x mask 0x%x index %d", c->data, c->mask, c->index);
    }
    case RTE_FLOW_ACTION_TYPE_SET_META: {
      const auto* c = static_cast<const rte_flow_action_set_meta*>(a.conf);
      return absl::StrFormat("set_meta data 0x%x mask 0x%x", c->data, c->mask);
    }
    case RTE_FLOW_ACTION_TYPE_SET_IPV4_DST:
      return absl::StrCat(
          "set_ipv4_dst ipv4_addr ",
          Ipv4Text(static_cast<const rte_flow_action_set_ipv4*>(a.conf)->ipv4_addr));
    case RTE_FLOW_ACTION_TYPE_SET_IPV6_DST: {
      char buf[INET6_ADDRSTRLEN] = {};
      inet_ntop(AF_INET6, static_cast<const rte_flow_action_set_ipv6*>(a.conf)->ipv6_addr, buf,
                sizeof buf);
      return absl::StrCat("set_ipv6_dst ipv6_addr ", buf);
    }
    case RTE_FLOW_ACTION_TYPE_SET_TP_DST:
      return absl::StrCat("set_tp_dst port ",
                          ntohs(static_cast<const rte_flow_action_set_tp*>(a.conf)->port));
    case RTE_FLOW_ACTION_TYPE_REPRESENTED_PORT:
      return absl::StrCat("represented_port ethdev_port_id ",
                          static_cast<const rte_flow_action_ethdev*>(a.conf)->port_id);
    case RTE_FLOW_ACTION_TYPE_PORT_REPRESENTOR:
      return absl::StrCat("port_representor port_id ",
                          static_cast<const rte_flow_action_ethdev*>(a.conf)->port_id);
    case RTE_FLOW_ACTION_TYPE_SAMPLE:
      return absl::StrCat("sample ratio ",
                          static_cast<const rte_flow_action_sample*>(a.conf)->ratio, " index 0");
    default:
      return absl::StrCat("action#", static_cast<int>(a.type));
  }
}

}  // namespace

const std::vector<FieldLoc>& FieldsOfItem(rte_flow_item_type t) {
  switch (t) {
    case RTE_FLOW_ITEM_TYPE_ETH:
      return kEth;
    case RTE_FLOW_ITEM_TYPE_IPV4:
      return kIpv4;
    case RTE_FLOW_ITEM_TYPE_IPV6:
      return kIpv6;
    case RTE_FLOW_ITEM_TYPE_TCP:
      return kTcp;
    case RTE_FLOW_ITEM_TYPE_UDP:
      return kUdp;
    case RTE_FLOW_ITEM_TYPE_SCTP:
      return kSctp;
    case RTE_FLOW_ITEM_TYPE_ICMP:
      return kIcmp;
    case RTE_FLOW_ITEM_TYPE_ICMP6:
      return kIcmp6;
    case RTE_FLOW_ITEM_TYPE_META:
      return kMeta;
    case RTE_FLOW_ITEM_TYPE_TAG:
      return kTag;
    default:
      return kNone;
  }
}

size_t ItemSize(rte_flow_item_type t) {
  switch (t) {
    case RTE_FLOW_ITEM_TYPE_ETH:
      return sizeof(rte_flow_item_eth);
    case RTE_FLOW_ITEM_TYPE_IPV4:
      return sizeof(rte_flow_item_ipv4);
    case RTE_FLOW_ITEM_TYPE_IPV6:
      return sizeof(rte_flow_item_ipv6);
    case RTE_FLOW_ITEM_TYPE_TCP:
      return sizeof(rte_flow_item_tcp);
    case RTE_FLOW_ITEM_TYPE_UDP:
      return sizeof(rte_flow_item_udp);
    case RTE_FLOW_ITEM_TYPE_SCTP:
      return sizeof(rte_flow_item_sctp);
    case RTE_FLOW_ITEM_TYPE_ICMP:
      return sizeof(rte_flow_item_icmp);
    case RTE_FLOW_ITEM_TYPE_ICMP6:
      return sizeof(rte_flow_item_icmp6);
    case RTE_FLOW_ITEM_TYPE_META:
      return sizeof(rte_flow_item_meta);
    case RTE_FLOW_ITEM_TYPE_TAG:
      return sizeof(rte_flow_item_tag);
    default:
      return 0;
  }
}

const char* ItemName(rte_flow_item_type t) {
  switch (t) {
    case RTE_FLOW_ITEM_TYPE_ETH:
      return "eth";
    case RTE_FLOW_ITEM_TYPE_IPV4:
      return "ipv4";
    case RTE_FLOW_ITEM_TYPE_IPV6:
      return "ipv6";
    case RTE_FLOW_ITEM_TYPE_TCP:
      return "tcp";
    case RTE_FLOW_ITEM_TYPE_UDP:
      return "udp";
    case RTE_FLOW_ITEM_TYPE_SCTP:
      return "sctp";
    case RTE_FLOW_ITEM_TYPE_ICMP:
      return "icmp";
    case RTE_FLOW_ITEM_TYPE_ICMP6:
      return "icmp6";
    case RTE_FLOW_ITEM_TYPE_META:
      return "meta";
    case RTE_FLOW_ITEM_TYPE_TAG:
      return "tag";
    default:
      return "?";
  }
}

std::string PatternToString(const Rule& r) {
  std::string out;
  for (const rte_flow_item& it : r.pattern) {
    if (it.type == RTE_FLOW_ITEM_TYPE_END) break;
    absl::StrAppend(&out, ItemText(it), " / ");
  }
  return absl::StrCat(out, "end");
}

std::string ActionsToString(const Rule& r) {
  std::string out;
  for (const rte_flow_action& a : r.actions) {
    if (a.type == RTE_FLOW_ACTION_TYPE_END) break;
    absl::StrAppend(&out, ActionText(a), " / ");
  }
  return absl::StrCat(out, "end");
}

std::string RuleToTestpmd(const Rule& r, uint16_t port_id) {
  return absl::StrFormat("flow create %d group %d priority %d %s pattern %s actions %s", port_id,
                         r.attr.group, r.attr.priority, r.attr.transfer ? "transfer" : "ingress",
                         PatternToString(r), ActionsToString(r));
}

std::vector<std::string> TestpmdPreamble(const LowerOptions& options) {
  return {absl::StrFormat("set sample_actions 0 mark id %d / queue index %d / end", kCommitMark,
                          options.punt_queue)};
}

}  // namespace nicflow::host::rteflow
