// Small, allocation-light helpers for reading sysfs attributes. Private to the library.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace nicflow::device_plugin::sysfs {

/// Contents of a sysfs attribute with surrounding whitespace removed; nullopt if unreadable.
std::optional<std::string> ReadAttr(const std::filesystem::path& path);

/// Integer attribute (decimal); nullopt if unreadable or not a number.
std::optional<int> ReadIntAttr(const std::filesystem::path& path);

/// Hex id attribute such as "0x15b3\n" as "15b3"; nullopt if unreadable.
std::optional<std::string> ReadHexIdAttr(const std::filesystem::path& path);

/// Last path component of a symlink's target ("../../../bus/pci/drivers/vfio-pci" ->
/// "vfio-pci"); nullopt when `path` is not a symlink.
std::optional<std::string> ReadLinkBasename(const std::filesystem::path& path);

/// Names in a directory, sorted; empty if it cannot be listed.
std::vector<std::string> ListDir(const std::filesystem::path& dir);

/// A directory entry with the inode number readdir reports (for a symlink: the link's own).
struct DirEntry {
  std::string name;
  uint64_t inode = 0;
};

/// Entries of a directory with their inode numbers, sorted by name; empty if unlistable.
std::vector<DirEntry> ListDirWithInodes(const std::filesystem::path& dir);

/// True when `path` exists (following symlinks).
bool Exists(const std::filesystem::path& path);

}  // namespace nicflow::device_plugin::sysfs
