#include "nicflow/flowtables/program_json.h"

#include <algorithm>
#include <charconv>

#include "absl/strings/str_cat.h"
#include "nicflow/flowtables/status.h"

namespace nicflow::flowtables {

using nlohmann::json;

namespace {

bool IsIpField(Field f) {
  return f == Field::kIpv4Src || f == Field::kIpv4Dst || f == Field::kIpv6Src ||
         f == Field::kIpv6Dst;
}

std::string ValueText(Field f, U128 v) {
  if (IsIpField(f)) return FieldValueToString(f, v);
  return v.ToHex();
}

absl::StatusOr<U128> ParseValue(Field f, const json& j, std::string_view path) {
  if (!j.is_string()) {
    return absl::InvalidArgumentError(absl::StrCat(Sv(path), ": expected a string"));
  }
  const std::string& s = j.get_ref<const std::string&>();
  if (IsIpField(f)) {
    auto ip = IpAddr::Parse(s);
    if (!ip.ok() || (ip->width_bits() != GetFieldInfo(f).width_bits)) {
      return absl::InvalidArgumentError(absl::StrCat(Sv(path), ": bad address \"", s, "\""));
    }
    return U128::FromIp(*ip);
  }
  if (s.size() < 3 || s.size() > 34 || s[0] != '0' || s[1] != 'x') {
    return absl::InvalidArgumentError(absl::StrCat(Sv(path), ": bad hex value \"", s, "\""));
  }
  std::string_view digits(s.data() + 2, s.size() - 2);
  U128 v;
  size_t lo_len = std::min<size_t>(16, digits.size());
  std::string_view hi_digits = digits.substr(0, digits.size() - lo_len);
  std::string_view lo_digits = digits.substr(digits.size() - lo_len);
  auto parse = [](std::string_view d, uint64_t& out) {
    if (d.empty()) return true;
    auto [ptr, ec] = std::from_chars(d.data(), d.data() + d.size(), out, 16);
    return ec == std::errc() && ptr == d.data() + d.size();
  };
  if (!parse(hi_digits, v.hi) || !parse(lo_digits, v.lo)) {
    return absl::InvalidArgumentError(absl::StrCat(Sv(path), ": bad hex value \"", s, "\""));
  }
  return v;
}

}  // namespace

json OriginToJson(const Origin& o) {
  return json{{"kind", o.kind}, {"namespace", o.ns}, {"name", o.name}, {"detail", o.detail}};
}

json MatchToJson(const FieldMatch& m) {
  json j{{"field", GetFieldInfo(m.field).name}};
  std::visit(
      [&](const auto& mv) {
        using T = std::decay_t<decltype(mv)>;
        if constexpr (std::is_same_v<T, ExactMatch>) {
          j["exact"] = ValueText(m.field, mv.value);
        } else if constexpr (std::is_same_v<T, TernaryMatch>) {
          j["ternary"] = {{"value", ValueText(m.field, mv.value)}, {"mask", mv.mask.ToHex()}};
        } else if constexpr (std::is_same_v<T, LpmMatch>) {
          j["lpm"] = {{"value", ValueText(m.field, mv.value)}, {"prefix_len", mv.prefix_len_bits}};
        } else {
          j["range"] = {{"lo", ValueText(m.field, mv.lo)}, {"hi", ValueText(m.field, mv.hi)}};
        }
      },
      m.value);
  return j;
}

json ActionToJson(const Action& a, const Program& p) {
  json j{{"type", ActionKindName(KindOf(a))}};
  std::visit(
      [&](const auto& act) {
        using T = std::decay_t<decltype(act)>;
        if constexpr (std::is_same_v<T, OutputAction>) {
          j["port"] = act.port.ToString();
        } else if constexpr (std::is_same_v<T, GotoAction>) {
          j["table"] =
              act.table < p.tables.size() ? p.tables[act.table].name : std::to_string(act.table);
        } else if constexpr (std::is_same_v<T, SetFieldAction>) {
          j["field"] = GetFieldInfo(act.field).name;
          j["value"] = ValueText(act.field, act.value);
          j["mask"] = act.mask.ToHex();
        } else if constexpr (std::is_same_v<T, DnatAction>) {
          j["addr"] = act.addr.ToString();
          j["port"] = act.port;
        } else if constexpr (std::is_same_v<T, SnatAction>) {
          j["addr"] = act.addr.ToString();
          j["port_lo"] = act.port_lo;
          j["port_hi"] = act.port_hi;
        } else if constexpr (std::is_same_v<T, GroupAction>) {
          j["group"] = act.group;
        } else if constexpr (std::is_same_v<T, CtLookupAction> ||
                             std::is_same_v<T, CtCommitAction>) {
          j["zone"] = act.zone;
        }
      },
      a);
  return j;
}

namespace {

json ActionsToJson(const std::vector<Action>& as, const Program& p) {
  json arr = json::array();
  for (const Action& a : as) arr.push_back(ActionToJson(a, p));
  return arr;
}

}  // namespace

json EntryToJson(const Entry& e, const Program& p) {
  json match = json::array();
  for (const FieldMatch& m : e.match) match.push_back(MatchToJson(m));
  return json{{"priority", e.priority},
              {"match", std::move(match)},
              {"actions", ActionsToJson(e.actions, p)},
              {"origin", OriginToJson(e.origin)}};
}

json GroupToJson(const SelectGroup& g, const Program& p) {
  json hash = json::array();
  for (Field f : g.hash_fields) hash.push_back(GetFieldInfo(f).name);
  json buckets = json::array();
  for (const Bucket& b : g.buckets) {
    buckets.push_back(
        {{"weight", b.weight}, {"label", b.label}, {"actions", ActionsToJson(b.actions, p)}});
  }
  json j{{"name", g.name},
         {"hash_fields", std::move(hash)},
         {"buckets", std::move(buckets)},
         {"origin", OriginToJson(g.origin)}};
  if (g.affinity_timeout_s) j["affinity_timeout_s"] = *g.affinity_timeout_s;
  return j;
}

json ProgramToJson(const Program& p) {
  json tables = json::array();
  for (const TableSchema& t : p.tables) {
    json keys = json::array();
    for (const KeyField& k : t.keys) {
      keys.push_back({{"field", GetFieldInfo(k.field).name}, {"match", MatchKindName(k.kind)}});
    }
    json entries = json::array();
    for (const Entry& e : p.entries[t.id]) entries.push_back(EntryToJson(e, p));
    tables.push_back({{"id", t.id},
                      {"name", t.name},
                      {"doc", t.doc},
                      {"keys", std::move(keys)},
                      {"default_actions", ActionsToJson(t.default_actions, p)},
                      {"entries", std::move(entries)}});
  }
  json groups = json::array();
  for (const SelectGroup& g : p.groups) groups.push_back(GroupToJson(g, p));
  json ports = json::array();
  for (const PortDecl& d : p.ports) {
    json ips = json::array();
    for (const IpAddr& ip : d.ips) ips.push_back(ip.ToString());
    json port{{"port", d.ref.ToString()}, {"ips", std::move(ips)}};
    if (!d.vf_pci.empty()) port["vf"] = d.vf_pci;
    ports.push_back(std::move(port));
  }
  return json{
      {"tables", std::move(tables)}, {"groups", std::move(groups)}, {"ports", std::move(ports)}};
}

// ---------------------------------------------------------------------------------------------
// Parsing back

namespace {

class JsonReader {
 public:
  explicit JsonReader(const std::vector<std::string>* table_names) : table_names_(table_names) {}

  absl::StatusOr<Field> ReadField(const json& j, const std::string& path) const {
    if (!j.is_string()) return Err(path, "expected a field name");
    auto f = FieldFromName(j.get<std::string>());
    if (!f) return Err(path, absl::StrCat("unknown field \"", j.get<std::string>(), "\""));
    return *f;
  }

  absl::StatusOr<FieldMatch> ReadMatch(const json& j, const std::string& path) const {
    if (!j.is_object()) return Err(path, "expected an object");
    NICFLOW_ASSIGN_OR_RETURN(Field f, ReadField(j.value("field", json()), path + ".field"));
    FieldMatch m{f, ExactMatch{}};
    if (j.contains("exact")) {
      NICFLOW_ASSIGN_OR_RETURN(U128 v, ParseValue(f, j["exact"], path + ".exact"));
      m.value = ExactMatch{v};
    } else if (j.contains("ternary") && j["ternary"].is_object()) {
      const json& t = j["ternary"];
      NICFLOW_ASSIGN_OR_RETURN(U128 v, ParseValue(f, t.value("value", json()), path + ".value"));
      NICFLOW_ASSIGN_OR_RETURN(
          U128 mk, ParseValue(Field::kMetaFlags, t.value("mask", json()), path + ".mask"));
      m.value = TernaryMatch{v, mk};
    } else if (j.contains("lpm") && j["lpm"].is_object()) {
      const json& l = j["lpm"];
      NICFLOW_ASSIGN_OR_RETURN(U128 v, ParseValue(f, l.value("value", json()), path + ".value"));
      if (!l.contains("prefix_len") || !l["prefix_len"].is_number_integer()) {
        return Err(path + ".prefix_len", "expected an integer");
      }
      m.value = LpmMatch{v, l["prefix_len"].get<int>()};
    } else if (j.contains("range") && j["range"].is_object()) {
      const json& r = j["range"];
      NICFLOW_ASSIGN_OR_RETURN(U128 lo, ParseValue(f, r.value("lo", json()), path + ".lo"));
      NICFLOW_ASSIGN_OR_RETURN(U128 hi, ParseValue(f, r.value("hi", json()), path + ".hi"));
      m.value = RangeMatch{lo, hi};
    } else {
      return Err(path, "expected one of exact, ternary, lpm, range");
    }
    return m;
  }

  absl::StatusOr<Action> ReadAction(const json& j, const std::string& path) const;

  absl::StatusOr<std::vector<Action>> ReadActions(const json& j, const std::string& path) const {
    if (!j.is_array()) return Err(path, "expected an array");
    std::vector<Action> out;
    for (size_t i = 0; i < j.size(); ++i) {
      NICFLOW_ASSIGN_OR_RETURN(Action a, ReadAction(j[i], absl::StrCat(path, "[", i, "]")));
      out.push_back(std::move(a));
    }
    return out;
  }

  static absl::Status Err(const std::string& path, std::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", Sv(why)));
  }

 private:
  const std::vector<std::string>* table_names_;
};

absl::StatusOr<PortRef> ParsePortRef(const std::string& s) {
  if (s == "host") return PortRef{PortRef::Kind::kHost, ""};
  if (s == "uplink") return PortRef{PortRef::Kind::kUplink, ""};
  if (s.rfind("vf:", 0) == 0 && s.size() > 3) return PortRef{PortRef::Kind::kPod, s.substr(3)};
  return absl::InvalidArgumentError(absl::StrCat("unknown port \"", s, "\""));
}

absl::StatusOr<IpAddr> ReadIp(const json& j, const std::string& path) {
  if (!j.is_string()) return JsonReader::Err(path, "expected an address");
  auto ip = IpAddr::Parse(j.get<std::string>());
  if (!ip.ok()) return JsonReader::Err(path, Sv(ip.status().message()));
  return *ip;
}

template <typename T>
absl::StatusOr<T> ReadUint(const json& j, const std::string& path, uint64_t max) {
  if (!j.is_number_unsigned() || j.get<uint64_t>() > max) {
    return JsonReader::Err(path, absl::StrCat("expected an integer 0-", max));
  }
  return static_cast<T>(j.get<uint64_t>());
}

absl::StatusOr<Action> JsonReader::ReadAction(const json& j, const std::string& path) const {
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string()) {
    return Err(path, "expected an object with a type");
  }
  const std::string type = j["type"].get<std::string>();
  if (type == "drop") return DropAction{};
  if (type == "reject") return RejectAction{};
  if (type == "punt") return PuntAction{};
  if (type == "output") {
    auto port = ParsePortRef(j.value("port", std::string()));
    if (!port.ok()) return Err(path + ".port", Sv(port.status().message()));
    return OutputAction{*port};
  }
  if (type == "goto") {
    std::string name = j.value("table", std::string());
    for (size_t i = 0; i < table_names_->size(); ++i) {
      if ((*table_names_)[i] == name) return GotoAction{static_cast<TableId>(i)};
    }
    return Err(path + ".table", absl::StrCat("unknown table \"", name, "\""));
  }
  if (type == "set_field") {
    NICFLOW_ASSIGN_OR_RETURN(Field f, ReadField(j.value("field", json()), path + ".field"));
    NICFLOW_ASSIGN_OR_RETURN(U128 v, ParseValue(f, j.value("value", json()), path + ".value"));
    NICFLOW_ASSIGN_OR_RETURN(
        U128 m, ParseValue(Field::kMetaFlags, j.value("mask", json()), path + ".mask"));
    return SetFieldAction{f, v, m};
  }
  if (type == "dnat") {
    NICFLOW_ASSIGN_OR_RETURN(IpAddr a, ReadIp(j.value("addr", json()), path + ".addr"));
    NICFLOW_ASSIGN_OR_RETURN(uint16_t port,
                             ReadUint<uint16_t>(j.value("port", json(0)), path + ".port", 65535));
    return DnatAction{a, port};
  }
  if (type == "snat") {
    NICFLOW_ASSIGN_OR_RETURN(IpAddr a, ReadIp(j.value("addr", json()), path + ".addr"));
    NICFLOW_ASSIGN_OR_RETURN(
        uint16_t lo, ReadUint<uint16_t>(j.value("port_lo", json(1024)), path + ".port_lo", 65535));
    NICFLOW_ASSIGN_OR_RETURN(
        uint16_t hi, ReadUint<uint16_t>(j.value("port_hi", json(65535)), path + ".port_hi", 65535));
    return SnatAction{a, lo, hi};
  }
  if (type == "group") {
    if (!j.contains("group") || !j["group"].is_string()) return Err(path, "group name missing");
    return GroupAction{j["group"].get<std::string>()};
  }
  if (type == "ct_lookup" || type == "ct_commit") {
    NICFLOW_ASSIGN_OR_RETURN(uint16_t zone,
                             ReadUint<uint16_t>(j.value("zone", json(0)), path + ".zone", 65535));
    if (type == "ct_lookup") return CtLookupAction{zone};
    return CtCommitAction{zone};
  }
  return Err(path + ".type", absl::StrCat("unknown action \"", type, "\""));
}

absl::StatusOr<Origin> ReadOrigin(const json& j) {
  if (!j.is_object()) return Origin{};
  return Origin{j.value("kind", ""), j.value("namespace", ""), j.value("name", ""),
                j.value("detail", "")};
}

absl::StatusOr<SelectGroup> ReadGroup(const JsonReader& r, const json& j, const std::string& path) {
  if (!j.is_object() || !j.contains("name") || !j["name"].is_string()) {
    return JsonReader::Err(path, "expected an object with a name");
  }
  SelectGroup g;
  g.name = j["name"].get<std::string>();
  for (const json& f : j.value("hash_fields", json::array())) {
    NICFLOW_ASSIGN_OR_RETURN(Field field, r.ReadField(f, path + ".hash_fields"));
    g.hash_fields.push_back(field);
  }
  if (j.contains("affinity_timeout_s")) {
    NICFLOW_ASSIGN_OR_RETURN(
        g.affinity_timeout_s,
        ReadUint<uint32_t>(j["affinity_timeout_s"], path + ".affinity_timeout_s", UINT32_MAX));
  }
  const json& buckets = j.value("buckets", json::array());
  for (size_t i = 0; i < buckets.size(); ++i) {
    std::string bpath = absl::StrCat(path, ".buckets[", i, "]");
    Bucket b;
    NICFLOW_ASSIGN_OR_RETURN(b.weight, ReadUint<uint32_t>(buckets[i].value("weight", json(1)),
                                                          bpath + ".weight", UINT32_MAX));
    b.label = buckets[i].value("label", "");
    NICFLOW_ASSIGN_OR_RETURN(
        b.actions, r.ReadActions(buckets[i].value("actions", json::array()), bpath + ".actions"));
    g.buckets.push_back(std::move(b));
  }
  NICFLOW_ASSIGN_OR_RETURN(g.origin, ReadOrigin(j.value("origin", json())));
  return g;
}

absl::StatusOr<Entry> ReadEntry(const JsonReader& r, const json& j, TableId table,
                                const std::string& path) {
  Entry e;
  e.table = table;
  if (!j.is_object() || !j.value("priority", json()).is_number_integer()) {
    return JsonReader::Err(path, "expected an object with an integer priority");
  }
  e.priority = j["priority"].get<int32_t>();
  const json& ms = j.value("match", json::array());
  for (size_t m = 0; m < ms.size(); ++m) {
    NICFLOW_ASSIGN_OR_RETURN(FieldMatch fm,
                             r.ReadMatch(ms[m], absl::StrCat(path, ".match[", m, "]")));
    e.match.push_back(std::move(fm));
  }
  NICFLOW_ASSIGN_OR_RETURN(e.actions,
                           r.ReadActions(j.value("actions", json::array()), path + ".actions"));
  NICFLOW_ASSIGN_OR_RETURN(e.origin, ReadOrigin(j.value("origin", json())));
  CanonicalizeMatch(e);
  return e;
}

absl::Status ReadTable(const JsonReader& r, const json& t, TableId id, Program& p) {
  std::string path = absl::StrCat("tables[", id, "]");
  TableSchema s;
  s.id = id;
  s.name = t.value("name", "");
  s.doc = t.value("doc", "");
  for (const json& k : t.value("keys", json::array())) {
    NICFLOW_ASSIGN_OR_RETURN(Field f, r.ReadField(k.value("field", json()), path + ".keys"));
    std::string kind = k.value("match", "");
    KeyField key{f, MatchKind::kExact};
    if (kind == "ternary")
      key.kind = MatchKind::kTernary;
    else if (kind == "lpm")
      key.kind = MatchKind::kLpm;
    else if (kind == "range")
      key.kind = MatchKind::kRange;
    else if (kind != "exact")
      return JsonReader::Err(path + ".keys", "bad match kind " + kind);
    s.keys.push_back(key);
  }
  NICFLOW_ASSIGN_OR_RETURN(
      s.default_actions,
      r.ReadActions(t.value("default_actions", json::array()), path + ".default_actions"));
  p.tables.push_back(std::move(s));
  std::vector<Entry> entries;
  const json& es = t.value("entries", json::array());
  for (size_t i = 0; i < es.size(); ++i) {
    NICFLOW_ASSIGN_OR_RETURN(Entry e,
                             ReadEntry(r, es[i], id, absl::StrCat(path, ".entries[", i, "]")));
    entries.push_back(std::move(e));
  }
  p.entries.push_back(std::move(entries));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Program> ProgramFromJson(const json& j) {
  if (!j.is_object() || !j.contains("tables") || !j["tables"].is_array()) {
    return absl::InvalidArgumentError("program: expected an object with a tables array");
  }
  std::vector<std::string> names;
  for (const json& t : j["tables"]) names.push_back(t.is_object() ? t.value("name", "") : "");
  JsonReader r(&names);
  Program p;
  for (size_t i = 0; i < j["tables"].size(); ++i) {
    NICFLOW_RETURN_IF_ERROR(ReadTable(r, j["tables"][i], static_cast<TableId>(i), p));
  }
  const json& groups = j.value("groups", json::array());
  for (size_t i = 0; i < groups.size(); ++i) {
    NICFLOW_ASSIGN_OR_RETURN(SelectGroup g,
                             ReadGroup(r, groups[i], absl::StrCat("groups[", i, "]")));
    p.groups.push_back(std::move(g));
  }
  for (const json& d : j.value("ports", json::array())) {
    auto ref = ParsePortRef(d.value("port", ""));
    if (!ref.ok()) return ref.status();
    PortDecl decl{*ref, {}, d.value("vf", "")};
    for (const json& ip : d.value("ips", json::array())) {
      NICFLOW_ASSIGN_OR_RETURN(IpAddr a, ReadIp(ip, "ports.ips"));
      decl.ips.push_back(a);
    }
    p.ports.push_back(std::move(decl));
  }
  NICFLOW_RETURN_IF_ERROR(Validate(p));
  return p;
}

json DeltaToJson(const Delta& d, const Program& p) {
  json ops = json::array();
  for (const DeltaOp& op : d.ops) {
    json o{{"op", DeltaOpKindName(op.kind)}};
    switch (op.kind) {
      case DeltaOp::Kind::kAddGroup:
      case DeltaOp::Kind::kModifyGroup:
      case DeltaOp::Kind::kDeleteGroup:
        o["group"] = GroupToJson(op.group, p);
        break;
      default:
        o["table"] = op.entry.table < p.tables.size() ? p.tables[op.entry.table].name
                                                      : std::to_string(op.entry.table);
        o["entry"] = EntryToJson(op.entry, p);
        break;
    }
    ops.push_back(std::move(o));
  }
  return json{{"ops", std::move(ops)}};
}

absl::StatusOr<Delta> DeltaFromJson(const json& j, const std::vector<TableSchema>& tables) {
  if (!j.is_object() || !j.contains("ops") || !j["ops"].is_array()) {
    return absl::InvalidArgumentError("delta: expected an object with an ops array");
  }
  std::vector<std::string> names;
  for (const TableSchema& t : tables) names.push_back(t.name);
  JsonReader r(&names);
  static constexpr DeltaOp::Kind kKinds[] = {
      DeltaOp::Kind::kAddGroup,    DeltaOp::Kind::kModifyGroup, DeltaOp::Kind::kAddEntry,
      DeltaOp::Kind::kModifyEntry, DeltaOp::Kind::kDeleteEntry, DeltaOp::Kind::kDeleteGroup};
  Delta d;
  for (size_t i = 0; i < j["ops"].size(); ++i) {
    const json& o = j["ops"][i];
    std::string path = absl::StrCat("ops[", i, "]");
    std::string kind = o.is_object() ? o.value("op", "") : "";
    const DeltaOp::Kind* k =
        std::find_if(std::begin(kKinds), std::end(kKinds),
                     [&](DeltaOp::Kind c) { return DeltaOpKindName(c) == kind; });
    if (k == std::end(kKinds)) return JsonReader::Err(path + ".op", "unknown op \"" + kind + "\"");
    DeltaOp op;
    op.kind = *k;
    if (o.contains("group")) {
      NICFLOW_ASSIGN_OR_RETURN(op.group, ReadGroup(r, o["group"], path + ".group"));
    } else {
      std::string table = o.value("table", "");
      auto t = std::find(names.begin(), names.end(), table);
      if (t == names.end()) {
        return JsonReader::Err(path + ".table", "unknown table \"" + table + "\"");
      }
      NICFLOW_ASSIGN_OR_RETURN(
          op.entry, ReadEntry(r, o.value("entry", json()), static_cast<TableId>(t - names.begin()),
                              path + ".entry"));
    }
    d.ops.push_back(std::move(op));
  }
  return d;
}

}  // namespace nicflow::flowtables
