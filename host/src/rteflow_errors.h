// Private to host/: rte_flow_error as text, so PMD errors reach the user with their type and cause.
#pragma once

#include <rte_flow.h>

#include <string>

#include "rteflow_lower.h"

namespace nicflow::host::rteflow {

/// "ITEM_MASK (type 9): <PMD message>: <strerror(-rc)>", naming the item or action the cause
/// points at when `rule` is given ("item 2 (tcp)", "action 1").
std::string FlowErrorText(int rc, const rte_flow_error& err, const Rule* rule = nullptr);

const char* FlowErrorTypeName(rte_flow_error_type t);

}  // namespace nicflow::host::rteflow
