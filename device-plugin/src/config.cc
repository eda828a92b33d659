#include "nicflow/device_plugin/config.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace nicflow::device_plugin {
namespace {

using nlohmann::json;

// Maximum VF index the PCI SR-IOV capability can express (NumVFs is 16 bits).
constexpr int kMaxVfIndex = 65535;

const char* JsonTypeName(const json& value) { return value.type_name(); }

absl::Status Invalid(absl::string_view path, absl::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat("config ", path, ": ", message));
}

std::string Lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

bool IsHexId(absl::string_view text) {
  return text.size() == 4 &&
         std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isxdigit(c); });
}

// "dddd:bb:dd.f" with hex digits.
bool IsPciAddress(absl::string_view text) {
  static constexpr absl::string_view kPattern = "hhhh:hh:hh.h";
  if (text.size() != kPattern.size()) return false;
  for (size_t i = 0; i < text.size(); ++i) {
    const bool hex = std::isxdigit(static_cast<unsigned char>(text[i])) != 0;
    if (kPattern[i] == 'h' ? !hex : text[i] != kPattern[i]) return false;
  }
  return true;
}

bool IsResourceName(absl::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(),
                                      [](unsigned char c) { return std::isalnum(c) || c == '_'; });
}

// DNS-1123 subdomain, as Kubernetes requires of an extended resource's domain.
bool IsDnsSubdomain(absl::string_view text) {
  if (text.empty() || text.size() > 253) return false;
  for (absl::string_view label : absl::StrSplit(text, '.')) {
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
      return false;
    }
    for (unsigned char c : label) {
      if (!(std::islower(c) || std::isdigit(c) || c == '-')) return false;
    }
  }
  return true;
}

absl::StatusOr<std::vector<std::string>> StringList(const json& value, const std::string& path) {
  if (!value.is_array()) {
    return Invalid(path, absl::StrCat("expected an array of strings, got ", JsonTypeName(value)));
  }
  std::vector<std::string> out;
  for (size_t i = 0; i < value.size(); ++i) {
    if (!value[i].is_string()) {
      return Invalid(absl::StrCat(path, "[", i, "]"),
                     absl::StrCat("expected a string, got ", JsonTypeName(value[i])));
    }
    out.push_back(value[i].get<std::string>());
  }
  return out;
}

absl::StatusOr<bool> Bool(const json& value, const std::string& path) {
  if (!value.is_boolean()) {
    return Invalid(path, absl::StrCat("expected true or false, got ", JsonTypeName(value)));
  }
  return value.get<bool>();
}

absl::StatusOr<std::string> String(const json& value, const std::string& path) {
  if (!value.is_string()) {
    return Invalid(path, absl::StrCat("expected a string, got ", JsonTypeName(value)));
  }
  return value.get<std::string>();
}

// Applies `check` to each entry; `what` describes a valid entry for the message.
template <typename Check>
absl::Status CheckEach(const std::vector<std::string>& values, const std::string& path,
                       absl::string_view what, Check check) {
  for (size_t i = 0; i < values.size(); ++i) {
    if (!check(values[i])) {
      return Invalid(absl::StrCat(path, "[", i, "]"),
                     absl::StrCat("invalid value \"", values[i], "\" (want ", what, ")"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<VfRange> ParseVfRange(absl::string_view text) {
  VfRange range;
  const std::vector<absl::string_view> bounds = absl::StrSplit(text, '-');
  if (bounds.size() == 1 && absl::SimpleAtoi(bounds[0], &range.first)) {
    range.last = range.first;
  } else if (bounds.size() != 2 || !absl::SimpleAtoi(bounds[0], &range.first) ||
             !absl::SimpleAtoi(bounds[1], &range.last)) {
    return absl::InvalidArgumentError("not a number or N-M");
  }
  if (range.first < 0 || range.last > kMaxVfIndex || range.first > range.last) {
    return absl::InvalidArgumentError("bounds out of order or range");
  }
  return range;
}

// Selector keys: how each is read into a Selector. Returning a Status keeps one code path for
// type errors and value errors.
using SelectorField = absl::Status (*)(const json&, const std::string&, Selector&);

absl::Status ReadHexIds(const json& value, const std::string& path, std::vector<std::string>& out) {
  auto list = StringList(value, path);
  if (!list.ok()) return list.status();
  if (auto status = CheckEach(*list, path, "4 hex digits such as \"15b3\"", IsHexId);
      !status.ok()) {
    return status;
  }
  for (std::string& id : *list) out.push_back(Lower(id));
  return absl::OkStatus();
}

absl::Status ReadPciAddresses(const json& value, const std::string& path,
                              std::vector<std::string>& out) {
  auto list = StringList(value, path);
  if (!list.ok()) return list.status();
  if (auto status = CheckEach(*list, path, "a PCI address such as \"0000:3b:00.2\"", IsPciAddress);
      !status.ok()) {
    return status;
  }
  for (std::string& address : *list) out.push_back(Lower(address));
  return absl::OkStatus();
}

absl::Status ReadNonEmptyStrings(const json& value, const std::string& path,
                                 std::vector<std::string>& out) {
  auto list = StringList(value, path);
  if (!list.ok()) return list.status();
  if (auto status = CheckEach(*list, path, "a non-empty name",
                              [](const std::string& s) { return !s.empty(); });
      !status.ok()) {
    return status;
  }
  out = std::move(*list);
  return absl::OkStatus();
}

absl::Status ReadPfNames(const json& value, const std::string& path, Selector& selector) {
  auto list = StringList(value, path);
  if (!list.ok()) return list.status();
  for (size_t i = 0; i < list->size(); ++i) {
    auto parsed = ParsePfName((*list)[i]);
    if (!parsed.ok()) return Invalid(absl::StrCat(path, "[", i, "]"), parsed.status().message());
    selector.pf_names.push_back(std::move(*parsed));
  }
  return absl::OkStatus();
}

absl::Status ReadLinkTypes(const json& value, const std::string& path, Selector& selector) {
  auto list = StringList(value, path);
  if (!list.ok()) return list.status();
  for (std::string& type : *list) type = Lower(type);
  if (auto status =
          CheckEach(*list, path, "\"ether\" or \"infiniband\"",
                    [](const std::string& t) { return t == "ether" || t == "infiniband"; });
      !status.ok()) {
    return status;
  }
  selector.link_types = std::move(*list);
  return absl::OkStatus();
}

absl::Status ReadAcpiIndexes(const json& value, const std::string& path, Selector& selector) {
  auto list = StringList(value, path);
  if (!list.ok()) return list.status();
  int number = 0;
  if (auto status = CheckEach(*list, path, "a decimal number",
                              [&](const std::string& s) { return absl::SimpleAtoi(s, &number); });
      !status.ok()) {
    return status;
  }
  selector.acpi_indexes = std::move(*list);
  return absl::OkStatus();
}

absl::Status Unsupported(const json&, const std::string& path, Selector&) {
  return absl::UnimplementedError(
      absl::StrCat("config ", path, ": not supported by nicflow-device-plugin"));
}

const std::map<std::string, SelectorField, std::less<>>& SelectorFields() {
  static const std::map<std::string, SelectorField, std::less<>> fields{
      {"vendors", [](const json& v, const std::string& p,
                     Selector& s) { return ReadHexIds(v, p, s.vendors); }},
      {"devices", [](const json& v, const std::string& p,
                     Selector& s) { return ReadHexIds(v, p, s.devices); }},
      {"drivers", [](const json& v, const std::string& p,
                     Selector& s) { return ReadNonEmptyStrings(v, p, s.drivers); }},
      {"pciAddresses", [](const json& v, const std::string& p,
                          Selector& s) { return ReadPciAddresses(v, p, s.pci_addresses); }},
      {"rootDevices", [](const json& v, const std::string& p,
                         Selector& s) { return ReadPciAddresses(v, p, s.root_devices); }},
      {"pfNames", ReadPfNames},
      {"linkTypes", ReadLinkTypes},
      {"acpiIndexes", ReadAcpiIndexes},
      {"isRdma",
       [](const json& v, const std::string& p, Selector& s) {
         auto b = Bool(v, p);
         if (b.ok()) s.is_rdma = *b;
         return b.status();
       }},
      {"needVhostNet",
       [](const json& v, const std::string& p, Selector& s) {
         auto b = Bool(v, p);
         if (b.ok()) s.need_vhost_net = *b;
         return b.status();
       }},
      {"ddpProfiles", Unsupported},
      {"vdpaType", Unsupported},
      {"auxTypes", Unsupported},
  };
  return fields;
}

std::string KnownKeys(const std::vector<std::string>& keys) { return absl::StrJoin(keys, ", "); }

template <typename Map>
std::vector<std::string> KeysOf(const Map& map) {
  std::vector<std::string> keys;
  for (const auto& entry : map) keys.push_back(entry.first);
  return keys;
}

// Selectors that only make sense for network functions.
bool IsNetOnly(absl::string_view key) {
  return key == "pfNames" || key == "linkTypes" || key == "isRdma" || key == "needVhostNet" ||
         key == "acpiIndexes";
}

absl::StatusOr<Selector> ParseSelector(const json& value, const std::string& path,
                                       DeviceType type) {
  if (!value.is_object()) {
    return Invalid(path, absl::StrCat("expected an object, got ", JsonTypeName(value)));
  }
  Selector selector;
  const auto& fields = SelectorFields();
  for (const auto& [key, field_value] : value.items()) {
    const auto field = fields.find(key);
    if (field == fields.end()) {
      return Invalid(path, absl::StrCat("unknown selector \"", key,
                                        "\" (known: ", KnownKeys(KeysOf(fields)), ")"));
    }
    if (type == DeviceType::kAccelerator && IsNetOnly(key)) {
      return Invalid(absl::StrCat(path, ".", key),
                     "only applies to deviceType \"netDevice\", not \"accelerator\"");
    }
    if (auto status = field->second(field_value, absl::StrCat(path, ".", key), selector);
        !status.ok()) {
      return status;
    }
  }
  return selector;
}

absl::StatusOr<std::vector<Selector>> ParseSelectors(const json& value, const std::string& path,
                                                     DeviceType type) {
  std::vector<Selector> selectors;
  if (!value.is_array()) {
    auto one = ParseSelector(value, path, type);
    if (!one.ok()) return one.status();
    selectors.push_back(std::move(*one));
    return selectors;
  }
  for (size_t i = 0; i < value.size(); ++i) {
    auto one = ParseSelector(value[i], absl::StrCat(path, "[", i, "]"), type);
    if (!one.ok()) return one.status();
    selectors.push_back(std::move(*one));
  }
  return selectors;
}
}  // namespace

absl::StatusOr<PfNameSelector> ParsePfName(std::string_view pf_name_entry) {
  const absl::string_view entry(pf_name_entry.data(), pf_name_entry.size());
  PfNameSelector selector;
  const auto hash = entry.find('#');
  selector.pf_name = std::string(entry.substr(0, hash));
  const auto bad = [&] {
    return absl::InvalidArgumentError(absl::StrCat("invalid VF range \"", entry, "\""));
  };
  if (selector.pf_name.empty() || selector.pf_name.size() > 15 ||
      selector.pf_name.find_first_of("/ ") != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("invalid interface name \"", entry, "\""));
  }
  if (hash == absl::string_view::npos) return selector;
  for (absl::string_view part : absl::StrSplit(entry.substr(hash + 1), ',')) {
    auto range = ParseVfRange(part);
    if (!range.ok()) return bad();
    selector.vf_ranges.push_back(*range);
  }
  return selector;
}

namespace {

constexpr absl::string_view kResourceKeys[] = {
    "resourceName",    "resourcePrefix",   "deviceType",   "selectors",
    "excludeTopology", "allocationPolicy", "preStartCheck"};

absl::Status CheckResourceKeys(const json& value, const std::string& path) {
  for (const auto& [key, unused] : value.items()) {
    if (std::find(std::begin(kResourceKeys), std::end(kResourceKeys), key) !=
        std::end(kResourceKeys)) {
      continue;
    }
    return Invalid(path, absl::StrCat("unknown field \"", key,
                                      "\" (known: ", absl::StrJoin(kResourceKeys, ", "), ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<DeviceType> ParseDeviceType(const json& value, const std::string& path) {
  auto text = String(value, path);
  if (!text.ok()) return text.status();
  if (*text == "netDevice") return DeviceType::kNetDevice;
  if (*text == "accelerator") return DeviceType::kAccelerator;
  if (*text == "auxNetDevice") {
    return absl::UnimplementedError(absl::StrCat("config ", path,
                                                 ": \"auxNetDevice\" is not supported by "
                                                 "nicflow-device-plugin (VFs only)"));
  }
  return Invalid(path, absl::StrCat("unknown device type \"", *text,
                                    "\" (want \"netDevice\" or \"accelerator\")"));
}

absl::StatusOr<AllocationPolicy> ParsePolicy(const json& value, const std::string& path) {
  auto text = String(value, path);
  if (!text.ok()) return text.status();
  if (*text == "spread") return AllocationPolicy::kSpread;
  if (*text == "pack") return AllocationPolicy::kPack;
  return Invalid(path, absl::StrCat("unknown allocation policy \"", *text,
                                    "\" (want \"spread\" or \"pack\")"));
}

absl::Status ParseNames(const json& value, const std::string& path,
                        absl::string_view default_prefix, ResourceConfig& resource) {
  if (!value.contains("resourceName")) return Invalid(path, "missing \"resourceName\"");
  auto name = String(value["resourceName"], path + ".resourceName");
  if (!name.ok()) return name.status();
  if (!IsResourceName(*name)) {
    return Invalid(path + ".resourceName",
                   absl::StrCat("invalid resource name \"", *name, "\" (want [A-Za-z0-9_]+)"));
  }
  resource.resource_name = *name;
  resource.resource_prefix = std::string(default_prefix);
  if (value.contains("resourcePrefix")) {
    auto prefix = String(value["resourcePrefix"], path + ".resourcePrefix");
    if (!prefix.ok()) return prefix.status();
    if (!IsDnsSubdomain(*prefix)) {
      return Invalid(path + ".resourcePrefix",
                     absl::StrCat("invalid resource prefix \"", *prefix,
                                  "\" (want a DNS subdomain such as \"nicflow.io\")"));
    }
    resource.resource_prefix = *prefix;
  }
  return absl::OkStatus();
}

absl::Status ParseOptions(const json& value, const std::string& path, ResourceConfig& resource) {
  if (value.contains("excludeTopology")) {
    auto flag = Bool(value["excludeTopology"], path + ".excludeTopology");
    if (!flag.ok()) return flag.status();
    resource.exclude_topology = *flag;
  }
  if (value.contains("preStartCheck")) {
    auto flag = Bool(value["preStartCheck"], path + ".preStartCheck");
    if (!flag.ok()) return flag.status();
    resource.pre_start_check = *flag;
  }
  if (value.contains("allocationPolicy")) {
    auto policy = ParsePolicy(value["allocationPolicy"], path + ".allocationPolicy");
    if (!policy.ok()) return policy.status();
    resource.allocation_policy = *policy;
  }
  return absl::OkStatus();
}

absl::StatusOr<ResourceConfig> ParseResource(const json& value, const std::string& path,
                                             absl::string_view default_prefix) {
  if (!value.is_object()) {
    return Invalid(path, absl::StrCat("expected an object, got ", JsonTypeName(value)));
  }
  ResourceConfig resource;
  if (auto status = CheckResourceKeys(value, path); !status.ok()) return status;
  if (auto status = ParseNames(value, path, default_prefix, resource); !status.ok()) return status;
  if (value.contains("deviceType")) {
    auto type = ParseDeviceType(value["deviceType"], path + ".deviceType");
    if (!type.ok()) return type.status();
    resource.device_type = *type;
  }
  if (value.contains("selectors")) {
    auto selectors = ParseSelectors(value["selectors"], path + ".selectors", resource.device_type);
    if (!selectors.ok()) return selectors.status();
    resource.selectors = std::move(*selectors);
  } else {
    resource.selectors.emplace_back();  // no selectors: every VF of the device type
  }
  if (auto status = ParseOptions(value, path, resource); !status.ok()) return status;
  return resource;
}

absl::StatusOr<json> ParseJson(std::string_view text) {
  try {
    return json::parse(text.begin(), text.end());
  } catch (const json::parse_error& error) {
    // nlohmann's message starts with "[json.exception.parse_error.101] parse error at line 1,
    // column 5: ..."; keep the part after the tag.
    std::string message = error.what();
    if (const auto tag_end = message.find("] "); tag_end != std::string::npos) {
      message.erase(0, tag_end + 2);
    }
    return absl::InvalidArgumentError(absl::StrCat("config: invalid JSON: ", message));
  }
}

}  // namespace

absl::StatusOr<PluginConfig> ParseConfig(std::string_view json_text,
                                         std::string_view default_prefix_view) {
  const absl::string_view default_prefix(default_prefix_view.data(), default_prefix_view.size());
  auto document = ParseJson(json_text);
  if (!document.ok()) return document.status();
  if (!document->is_object()) {
    return Invalid("(top level)", absl::StrCat("expected an object with \"resourceList\", got ",
                                               JsonTypeName(*document)));
  }
  for (const auto& [key, unused] : document->items()) {
    if (key != "resourceList") {
      return Invalid("(top level)",
                     absl::StrCat("unknown field \"", key, "\" (known: resourceList)"));
    }
  }
  if (!document->contains("resourceList"))
    return Invalid("(top level)", "missing \"resourceList\"");
  const json& list = (*document)["resourceList"];
  if (!list.is_array()) {
    return Invalid("resourceList", absl::StrCat("expected an array, got ", JsonTypeName(list)));
  }
  PluginConfig config;
  std::map<std::string, size_t> seen;
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string path = absl::StrCat("resourceList[", i, "]");
    auto resource = ParseResource(list[i], path, default_prefix);
    if (!resource.ok()) return resource.status();
    const auto [it, inserted] = seen.emplace(resource->FullName(), i);
    if (!inserted) {
      return Invalid(path + ".resourceName",
                     absl::StrCat("duplicate resource \"", resource->FullName(),
                                  "\" (also resourceList[", it->second, "])"));
    }
    config.resources.push_back(std::move(*resource));
  }
  return config;
}

absl::StatusOr<PluginConfig> LoadConfigFile(const std::filesystem::path& path,
                                            std::string_view default_prefix) {
  std::ifstream in(path);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat("config ", path.string(), ": cannot open: ", std::strerror(errno)));
  }
  std::stringstream text;
  text << in.rdbuf();
  auto config = ParseConfig(text.str(), default_prefix);
  if (!config.ok()) {
    return absl::Status(config.status().code(),
                        absl::StrCat(path.string(), ": ", config.status().message()));
  }
  return config;
}

}  // namespace nicflow::device_plugin
