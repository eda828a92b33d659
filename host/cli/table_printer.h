// Column-aligned text tables for human output.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace nicflow::cli {

class TablePrinter {
 public:
  explicit TablePrinter(std::vector<std::string> headers) : headers_(std::move(headers)) {}
  void AddRow(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  /// Prints with two spaces between columns; the last column is not padded.
  void Print(std::ostream& out, const std::string& indent = "") const;

 private:
  std::vector<std::string> headers_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace nicflow::cli
