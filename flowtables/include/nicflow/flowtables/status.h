// The one error type of nicflow is absl::Status / absl::StatusOr (gRPC brings abseil anyway).
//
// Debian 12's abseil is built with ABSL_OPTION_USE_STD_STRING_VIEW 0, so absl::string_view is a
// distinct type from std::string_view: absl::StrCat does not take a std::string_view, and
// Status::message() returns absl::string_view. Sv() converts both ways without copying.
#pragma once

#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace nicflow {

inline absl::string_view Sv(std::string_view s) { return {s.data(), s.size()}; }
inline std::string_view Sv(absl::string_view s) { return {s.data(), s.size()}; }

}  // namespace nicflow

/// Returns the status of `expr` from the enclosing function when it is not OK.
#define NICFLOW_RETURN_IF_ERROR(expr)                             \
  do {                                                            \
    if (::absl::Status nicflow_st_ = (expr); !nicflow_st_.ok()) { \
      return nicflow_st_;                                         \
    }                                                             \
  } while (false)

#define NICFLOW_CONCAT_INNER_(a, b) a##b
#define NICFLOW_CONCAT_(a, b) NICFLOW_CONCAT_INNER_(a, b)

/// `NICFLOW_ASSIGN_OR_RETURN(auto x, F());` declares x from F()'s value or returns its status.
#define NICFLOW_ASSIGN_OR_RETURN(lhs, expr) \
  NICFLOW_ASSIGN_OR_RETURN_IMPL_(NICFLOW_CONCAT_(nicflow_so_, __LINE__), lhs, expr)
#define NICFLOW_ASSIGN_OR_RETURN_IMPL_(so, lhs, expr) \
  auto so = (expr);                                   \
  if (!so.ok()) return std::move(so).status();        \
  lhs = std::move(so).value()
