// Private: Debian's abseil is built with its own string_view (ABSL_OPTION_USE_STD_STRING_VIEW 0),
// so std::string_view needs converting before it goes into absl::StrCat.
#pragma once

#include <string_view>

#include "absl/strings/string_view.h"

namespace nicflow::sim {

inline absl::string_view Sv(std::string_view s) { return {s.data(), s.size()}; }

}  // namespace nicflow::sim
