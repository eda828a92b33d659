// Private to flowtables: the builder the compiler stages write entries through.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nicflow/flowtables/ir.h"
#include "nicflow/flowtables/pipeline.h"

namespace nicflow::flowtables {

/// Match helpers: pick the IPv4 or IPv6 field from the address family.
FieldMatch MatchSrcPrefix(const IpPrefix& p);  ///< LPM on ipv4_src / ipv6_src
FieldMatch MatchDstPrefix(const IpPrefix& p);  ///< LPM on ipv4_dst / ipv6_dst
FieldMatch MatchExact(Field f, uint64_t v);
FieldMatch MatchTernary(Field f, uint64_t value, uint64_t mask);
FieldMatch MatchRange(Field f, uint64_t lo, uint64_t hi);
SetFieldAction SetBits(Field f, uint64_t value, uint64_t mask);  ///< masked write
Field SrcField(IpFamily f);
Field DstField(IpFamily f);

/// Collects the program's entries, groups and ports; Finish() canonicalizes and validates.
class ProgramBuilder {
 public:
  ProgramBuilder();  ///< starts with StandardTableSchemas()

  /// Adds an entry; the match is canonicalized. Duplicate identities are reported by Finish().
  void AddEntry(TableId table, int32_t priority, std::vector<FieldMatch> match,
                std::vector<Action> actions, Origin origin);
  void AddGroup(SelectGroup group);
  void AddPort(PortDecl port);
  /// Replaces a table's default actions (the schema's are a safe drop).
  void SetDefaultActions(TableId table, std::vector<Action> actions);

  /// The entries, groups and ports added so far, unsorted and unvalidated (for compiling a part of
  /// a program, incremental.h).
  Program TakeStaged() && { return std::move(program_); }

  /// Sorts entries (priority descending, then identity) and groups (by name), validates.
  absl::StatusOr<Program> Finish() &&;

 private:
  Program program_;
};

}  // namespace nicflow::flowtables
