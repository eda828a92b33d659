#include "rteflow_errors.h"

#include <cstring>

#include "absl/strings/str_cat.h"

namespace nicflow::host::rteflow {

const char* FlowErrorTypeName(rte_flow_error_type t) {
  switch (t) {
    case RTE_FLOW_ERROR_TYPE_NONE:
      return "NONE";
    case RTE_FLOW_ERROR_TYPE_UNSPECIFIED:
      return "UNSPECIFIED";
    case RTE_FLOW_ERROR_TYPE_HANDLE:
      return "HANDLE";
    case RTE_FLOW_ERROR_TYPE_ATTR_GROUP:
      return "ATTR_GROUP";
    case RTE_FLOW_ERROR_TYPE_ATTR_PRIORITY:
      return "ATTR_PRIORITY";
    case RTE_FLOW_ERROR_TYPE_ATTR_INGRESS:
      return "ATTR_INGRESS";
    case RTE_FLOW_ERROR_TYPE_ATTR_EGRESS:
      return "ATTR_EGRESS";
    case RTE_FLOW_ERROR_TYPE_ATTR_TRANSFER:
      return "ATTR_TRANSFER";
    case RTE_FLOW_ERROR_TYPE_ATTR:
      return "ATTR";
    case RTE_FLOW_ERROR_TYPE_ITEM_NUM:
      return "ITEM_NUM";
    case RTE_FLOW_ERROR_TYPE_ITEM_SPEC:
      return "ITEM_SPEC";
    case RTE_FLOW_ERROR_TYPE_ITEM_LAST:
      return "ITEM_LAST";
    case RTE_FLOW_ERROR_TYPE_ITEM_MASK:
      return "ITEM_MASK";
    case RTE_FLOW_ERROR_TYPE_ITEM:
      return "ITEM";
    case RTE_FLOW_ERROR_TYPE_ACTION_NUM:
      return "ACTION_NUM";
    case RTE_FLOW_ERROR_TYPE_ACTION_CONF:
      return "ACTION_CONF";
    case RTE_FLOW_ERROR_TYPE_ACTION:
      return "ACTION";
    case RTE_FLOW_ERROR_TYPE_STATE:
      return "STATE";
  }
  return "UNKNOWN";
}

namespace {

// Which item or action of `rule` the PMD's cause pointer designates, if any.
std::string CauseText(const rte_flow_error& err, const Rule* rule) {
  if (rule == nullptr || err.cause == nullptr) return "";
  for (size_t i = 0; i < rule->pattern.size(); ++i) {
    const rte_flow_item& it = rule->pattern[i];
    if (err.cause == &it || (it.spec != nullptr && err.cause == it.spec) ||
        (it.mask != nullptr && err.cause == it.mask) ||
        (it.last != nullptr && err.cause == it.last)) {
      return absl::StrCat(" at item ", i, " (", ItemName(it.type), ")");
    }
  }
  for (size_t i = 0; i < rule->actions.size(); ++i) {
    const rte_flow_action& a = rule->actions[i];
    if (err.cause == &a || (a.conf != nullptr && err.cause == a.conf)) {
      return absl::StrCat(" at action ", i);
    }
  }
  return "";
}

}  // namespace

std::string FlowErrorText(int rc, const rte_flow_error& err, const Rule* rule) {
  return absl::StrCat(FlowErrorTypeName(err.type), " (type ", static_cast<int>(err.type), ")",
                      CauseText(err, rule), ": ", err.message != nullptr ? err.message : "",
                      err.message != nullptr ? ": " : "", std::strerror(rc < 0 ? -rc : rc));
}

}  // namespace nicflow::host::rteflow
