// Helpers shared by the loader and scenario tests.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "nicflow/flowtables/loader.h"
#include "nicflow/flowtables/status.h"

namespace nicflow::flowtables::testing {

inline absl::StatusOr<ClusterState> Load(std::string_view text, const LoadOptions& options = {},
                                         std::string_view name = "test.yaml") {
  ClusterState state;
  absl::Status st = LoadText(text, name, options, state);
  if (!st.ok()) return st;
  return state;
}

/// The error message of loading `text`, or "OK" when it loads.
inline std::string LoadError(std::string_view text, const LoadOptions& options = {},
                             std::string_view name = "test.yaml") {
  absl::StatusOr<ClusterState> s = Load(text, options, name);
  return s.ok() ? "OK" : std::string(Sv(s.status().message()));
}

/// A temporary directory removed with the object.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "nicflow-loader-XXXXXX").string();
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::string Write(const std::string& name, std::string_view text) const {
    std::filesystem::path p = path_ / name;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
    return p.string();
  }

 private:
  std::filesystem::path path_;
};

inline std::string SourceDir() { return NICFLOW_SOURCE_DIR; }

}  // namespace nicflow::flowtables::testing
