#include "program_builder.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace nicflow::flowtables {

Field SrcField(IpFamily f) { return f == IpFamily::kV4 ? Field::kIpv4Src : Field::kIpv6Src; }
Field DstField(IpFamily f) { return f == IpFamily::kV4 ? Field::kIpv4Dst : Field::kIpv6Dst; }

FieldMatch MatchSrcPrefix(const IpPrefix& p) {
  return {SrcField(p.family()), LpmMatch{U128::FromIp(p.addr), p.prefix_len_bits}};
}

FieldMatch MatchDstPrefix(const IpPrefix& p) {
  return {DstField(p.family()), LpmMatch{U128::FromIp(p.addr), p.prefix_len_bits}};
}

FieldMatch MatchExact(Field f, uint64_t v) { return {f, ExactMatch{U128::Of(v)}}; }

FieldMatch MatchTernary(Field f, uint64_t value, uint64_t mask) {
  return {f, TernaryMatch{U128::Of(value & mask), U128::Of(mask)}};
}

FieldMatch MatchRange(Field f, uint64_t lo, uint64_t hi) {
  return {f, RangeMatch{U128::Of(lo), U128::Of(hi)}};
}

SetFieldAction SetBits(Field f, uint64_t value, uint64_t mask) {
  return {f, U128::Of(value & mask), U128::Of(mask)};
}

ProgramBuilder::ProgramBuilder() {
  program_.tables = StandardTableSchemas();
  program_.entries.resize(program_.tables.size());
}

void ProgramBuilder::AddEntry(TableId table, int32_t priority, std::vector<FieldMatch> match,
                              std::vector<Action> actions, Origin origin) {
  Entry e{table, priority, std::move(match), std::move(actions), std::move(origin)};
  CanonicalizeMatch(e);
  program_.entries.at(table).push_back(std::move(e));
}

void ProgramBuilder::AddGroup(SelectGroup group) { program_.groups.push_back(std::move(group)); }

void ProgramBuilder::AddPort(PortDecl port) { program_.ports.push_back(std::move(port)); }

void ProgramBuilder::SetDefaultActions(TableId table, std::vector<Action> actions) {
  program_.tables.at(table).default_actions = std::move(actions);
}

absl::StatusOr<Program> ProgramBuilder::Finish() && {
  for (auto& table : program_.entries) {
    // Sorting by key once keeps equal programs byte-identical whatever the insertion order.
    std::vector<std::pair<std::string, Entry>> keyed;
    keyed.reserve(table.size());
    for (Entry& e : table) keyed.emplace_back(EntryKey(e), std::move(e));
    std::sort(keyed.begin(), keyed.end(), [](const auto& a, const auto& b) {
      if (a.second.priority != b.second.priority) return a.second.priority > b.second.priority;
      return a.first < b.first;
    });
    table.clear();
    for (auto& [key, e] : keyed) table.push_back(std::move(e));
  }
  std::sort(program_.groups.begin(), program_.groups.end(),
            [](const SelectGroup& a, const SelectGroup& b) { return a.name < b.name; });
  std::sort(program_.ports.begin(), program_.ports.end(), [](const PortDecl& a, const PortDecl& b) {
    return std::tie(a.ref.kind, a.ref.pod) < std::tie(b.ref.kind, b.ref.pod);
  });
  if (auto st = Validate(program_); !st.ok()) {
    return absl::InternalError(
        absl::StrCat("compiler produced an invalid program: ", st.message()));
  }
  return std::move(program_);
}

}  // namespace nicflow::flowtables
