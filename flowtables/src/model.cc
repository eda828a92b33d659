#include "nicflow/flowtables/model.h"

#include <algorithm>

namespace nicflow::flowtables {

std::string_view ProtocolName(Protocol p) {
  switch (p) {
    case Protocol::kTcp:
      return "TCP";
    case Protocol::kUdp:
      return "UDP";
    case Protocol::kSctp:
      return "SCTP";
  }
  return "?";
}

// metav1.LabelSelector semantics: every matchLabels pair and every requirement must hold.
// NotIn and DoesNotExist also match objects that lack the key altogether.
bool LabelSelector::Matches(const Labels& labels) const {
  for (const auto& [key, value] : match_labels) {
    auto it = labels.find(key);
    if (it == labels.end() || it->second != value) return false;
  }
  for (const Requirement& r : match_expressions) {
    auto it = labels.find(r.key);
    bool has = it != labels.end();
    bool in_values =
        has && std::find(r.values.begin(), r.values.end(), it->second) != r.values.end();
    switch (r.op) {
      case Op::kIn:
        if (!in_values) return false;
        break;
      case Op::kNotIn:
        if (in_values) return false;
        break;
      case Op::kExists:
        if (!has) return false;
        break;
      case Op::kDoesNotExist:
        if (has) return false;
        break;
    }
  }
  return true;
}

}  // namespace nicflow::flowtables
