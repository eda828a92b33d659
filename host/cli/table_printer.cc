#include "table_printer.h"

#include <algorithm>

namespace nicflow::cli {

void TablePrinter::Print(std::ostream& out, const std::string& indent) const {
  std::vector<size_t> widths(headers_.size(), 0);
  auto widen = [&](const std::vector<std::string>& row) {
    for (size_t i = 0; i < row.size() && i < widths.size(); ++i) {
      widths[i] = std::max(widths[i], row[i].size());
    }
  };
  widen(headers_);
  for (const auto& r : rows_) widen(r);
  auto print_row = [&](const std::vector<std::string>& row) {
    out << indent;
    for (size_t i = 0; i < row.size(); ++i) {
      out << row[i];
      if (i + 1 < row.size()) out << std::string(widths[i] - row[i].size() + 2, ' ');
    }
    out << "\n";
  };
  print_row(headers_);
  for (const auto& r : rows_) print_row(r);
}

}  // namespace nicflow::cli
