#include "nicflow/host/reconciler.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "nicflow/flowtables/status.h"

namespace nicflow::host {

namespace {

using flowtables::DeltaOp;
using Kind = flowtables::DeltaOp::Kind;

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

bool SameSchemas(const flowtables::Program& a, const flowtables::Program& b) {
  if (a.tables.size() != b.tables.size()) return false;
  for (size_t i = 0; i < a.tables.size(); ++i) {
    const auto& x = a.tables[i];
    const auto& y = b.tables[i];
    if (x.id != y.id || x.name != y.name || x.keys != y.keys ||
        x.default_actions != y.default_actions) {
      return false;
    }
  }
  return true;
}

// Identities of what a program holds, so inverses of many ops cost one pass.
struct ProgramIndex {
  absl::flat_hash_map<std::string, const flowtables::Entry*> entries;
  absl::flat_hash_map<std::string, const flowtables::SelectGroup*> groups;

  explicit ProgramIndex(const flowtables::Program& p) {
    for (const auto& table : p.entries) {
      for (const auto& e : table) entries.emplace(flowtables::EntryKey(e), &e);
    }
    for (const auto& g : p.groups) groups.emplace(g.name, &g);
  }
};

absl::StatusOr<DeltaOp> Inverse(const ProgramIndex& before, const DeltaOp& op) {
  DeltaOp inv;
  switch (op.kind) {
    case Kind::kAddGroup:
      return DeltaOp{Kind::kDeleteGroup, {}, op.group};
    case Kind::kDeleteGroup:
      return DeltaOp{Kind::kAddGroup, {}, op.group};
    case Kind::kAddEntry:
      return DeltaOp{Kind::kDeleteEntry, op.entry, {}};
    case Kind::kDeleteEntry:
      return DeltaOp{Kind::kAddEntry, op.entry, {}};
    case Kind::kModifyGroup: {
      auto it = before.groups.find(op.group.name);
      if (it == before.groups.end()) {
        return absl::FailedPreconditionError(
            absl::StrCat("inverse of modify group ", op.group.name, ": group not installed"));
      }
      return DeltaOp{Kind::kModifyGroup, {}, *it->second};
    }
    case Kind::kModifyEntry: {
      std::string key = flowtables::EntryKey(op.entry);
      auto it = before.entries.find(key);
      if (it == before.entries.end()) {
        return absl::FailedPreconditionError(
            absl::StrCat("inverse of modify entry table ", op.entry.table, " ",
                         flowtables::EntryText(op.entry), ": entry not installed"));
      }
      return DeltaOp{Kind::kModifyEntry, *it->second, {}};
    }
  }
  return absl::InternalError("unknown delta op kind");
}

void CountOps(const flowtables::Delta& d, ConvergeReport& r) {
  for (const DeltaOp& op : d.ops) {
    switch (op.kind) {
      case Kind::kAddGroup:
        ++r.groups_added;
        break;
      case Kind::kModifyGroup:
        ++r.groups_modified;
        break;
      case Kind::kDeleteGroup:
        ++r.groups_deleted;
        break;
      case Kind::kAddEntry:
        ++r.entries_added;
        break;
      case Kind::kModifyEntry:
        ++r.entries_modified;
        break;
      case Kind::kDeleteEntry:
        ++r.entries_deleted;
        break;
    }
  }
}

// Ports of both programs, so VFs an old entry still outputs to stay declared during the delta.
std::vector<flowtables::PortDecl> UnionPorts(const flowtables::Program& a,
                                             const flowtables::Program& b) {
  std::vector<flowtables::PortDecl> out = b.ports;
  for (const auto& p : a.ports) {
    bool found = false;
    for (const auto& q : out) found = found || q.ref == p.ref;
    if (!found) out.push_back(p);
  }
  return out;
}

// Whether two port lists declare different pod ports (a pod added or removed, its IPs or its VF
// changed). Order does not matter: a device reads its ports back in its own order. Host and
// uplink declarations are left out: devices normalise them (the simulator reads back only those
// with addresses).
bool PodPortsDiffer(const std::vector<flowtables::PortDecl>& a,
                    const std::vector<flowtables::PortDecl>& b) {
  auto pods = [](const std::vector<flowtables::PortDecl>& v) {
    std::vector<const flowtables::PortDecl*> out;
    for (const auto& p : v) {
      if (p.ref.kind == flowtables::PortRef::Kind::kPod) out.push_back(&p);
    }
    return out;
  };
  std::vector<const flowtables::PortDecl*> pa = pods(a), pb = pods(b);
  if (pa.size() != pb.size()) return true;
  for (const flowtables::PortDecl* p : pa) {
    if (std::none_of(pb.begin(), pb.end(), [p](const auto* q) { return *q == *p; })) return true;
  }
  return false;
}

}  // namespace

absl::StatusOr<DeltaOp> InverseOp(const flowtables::Program& before, const DeltaOp& op) {
  return Inverse(ProgramIndex(before), op);
}

std::string DeltaOpToString(const DeltaOp& op) {
  std::string kind(flowtables::DeltaOpKindName(op.kind));
  if (op.kind == Kind::kAddGroup || op.kind == Kind::kModifyGroup ||
      op.kind == Kind::kDeleteGroup) {
    return absl::StrCat(kind, " ", op.group.name);
  }
  return absl::StrCat(kind, " table ", op.entry.table, " ", flowtables::EntryText(op.entry));
}

Reconciler::Reconciler(Device& device, ReconcilerOptions options)
    : device_(device), options_(std::move(options)) {}

absl::StatusOr<ConvergeReport> Reconciler::Converge(const flowtables::Program& desired) {
  return Converge(flowtables::Program(desired));
}

absl::StatusOr<ConvergeReport> Reconciler::Converge(flowtables::Program&& desired) {
  const int64_t start = NowNs();
  report_ = ConvergeReport{};
  report_.device = std::string(device_.name());
  if (!installed_) {
    auto read = device_.ReadBack();
    if (!read.ok()) {
      return absl::FailedPreconditionError(absl::StrCat(
          Sv(device_.name()), ": cannot read back installed state: ", read.status().message()));
    }
    installed_ = *std::move(read);
    report_.read_back = true;
  }
  report_.read_ns = NowNs() - start;

  absl::Status st;
  if (!SameSchemas(*installed_, desired)) {
    report_.reinstalled = true;
    report_.ops_total = desired.EntryCount() + desired.groups.size();
    st = device_.Install(desired);
    if (st.ok()) report_.ops_applied = report_.ops_total;
  } else {
    const int64_t diff_start = NowNs();
    NICFLOW_ASSIGN_OR_RETURN(flowtables::Delta delta, flowtables::Diff(*installed_, desired));
    report_.diff_ns = NowNs() - diff_start;
    report_.ops_total = delta.ops.size();
    CountOps(delta, report_);
    report_.ports_changed = PodPortsDiffer(installed_->ports, desired.ports);
    if (!delta.empty() || report_.ports_changed ||
        installed_->ports.size() != desired.ports.size()) {
      st = device_.DeclarePorts(UnionPorts(*installed_, desired));
      if (st.ok()) st = ApplyDelta(*installed_, delta);
      if (st.ok()) st = device_.DeclarePorts(desired.ports);
    }
    report_.apply_ns = NowNs() - diff_start - report_.diff_ns;
  }
  if (st.ok() && options_.verify) {
    auto back = device_.ReadBack();
    if (!back.ok()) {
      st = back.status();
    } else if (auto d = flowtables::Diff(*back, desired); !d.ok() || !d->empty()) {
      st = absl::InternalError(
          absl::StrCat(Sv(device_.name()), ": read-back differs from the program just applied"));
      installed_.reset();
    }
  }
  report_.total_ns = NowNs() - start;
  if (!st.ok()) {
    report_.failed = true;
    report_.error = std::string(Sv(st.message()));
    return st;
  }
  if (installed_) installed_ = std::move(desired);
  return report_;
}

absl::StatusOr<ConvergeReport> Reconciler::ConvergeDelta(
    const flowtables::Delta& delta, const std::vector<flowtables::PortDecl>& ports) {
  const int64_t start = NowNs();
  report_ = ConvergeReport{};
  report_.device = std::string(device_.name());
  if (!installed_) {
    return absl::FailedPreconditionError(absl::StrCat(
        Sv(device_.name()), ": installed state unknown; converge to the full program first"));
  }
  report_.ops_total = delta.ops.size();
  CountOps(delta, report_);
  absl::Status st;
  report_.ports_changed = PodPortsDiffer(installed_->ports, ports);
  if (!delta.empty() || report_.ports_changed || installed_->ports.size() != ports.size()) {
    flowtables::Program port_view;  // UnionPorts looks at ports only
    port_view.ports = ports;
    st = device_.DeclarePorts(UnionPorts(*installed_, port_view));
    if (st.ok()) st = ApplyDelta(*installed_, delta);
    if (st.ok()) st = device_.DeclarePorts(ports);
  }
  // The device took the delta; bring the cache along in place (no whole-program copy). A delta
  // that the device accepted but that does not fit the cache means the cache was wrong: drop it
  // so the next Converge reads the device back.
  if (st.ok() && installed_) {
    if (absl::Status fits = flowtables::ApplyDeltaInPlace(*installed_, delta); !fits.ok()) {
      installed_.reset();
      st = absl::InternalError(absl::StrCat(Sv(device_.name()),
                                            ": the device accepted a delta that does not fit the "
                                            "installed program; will read back: ",
                                            fits.message()));
    } else {
      installed_->ports = ports;
    }
  }
  report_.apply_ns = NowNs() - start;
  report_.total_ns = report_.apply_ns;
  if (!st.ok()) {
    report_.failed = true;
    report_.error = std::string(Sv(st.message()));
    return st;
  }
  return report_;
}

absl::Status Reconciler::ApplyDelta(const flowtables::Program& from,
                                    const flowtables::Delta& delta) {
  const size_t n = delta.ops.size();
  size_t batch = options_.mode == ReconcilerOptions::Mode::kPerOp ? 1 : options_.batch_ops;
  if (batch == 0) batch = n;
  size_t applied = 0;
  while (applied < n) {
    const size_t end = std::min(n, applied + batch);
    flowtables::Delta chunk;
    if (batch == n) {
      chunk = delta;  // the common case: one transaction, no slicing
    } else {
      chunk.ops.assign(delta.ops.begin() + applied, delta.ops.begin() + end);
    }
    ++report_.transactions;
    absl::Status st = device_.Apply(chunk);
    if (!st.ok()) {
      // The device rejected the transaction as a whole; name the first op of it (a one-op
      // transaction in kPerOp mode names the culprit exactly).
      absl::Status err(st.code(),
                       absl::StrFormat("%s: op %d/%d %s: %s", Sv(device_.name()), applied + 1, n,
                                       DeltaOpToString(delta.ops[applied]), Sv(st.message())));
      report_.ops_applied = applied;
      if (absl::Status rb = Rollback(from, delta, applied); !rb.ok()) {
        installed_.reset();
        return absl::InternalError(
            absl::StrCat(err.message(), "; rollback failed, device state unknown: ", rb.message()));
      }
      return err;
    }
    applied = end;
    report_.ops_applied = applied;
    if (options_.on_applied) options_.on_applied(applied);
  }
  return absl::OkStatus();
}

absl::Status Reconciler::Rollback(const flowtables::Program& from, const flowtables::Delta& delta,
                                  size_t applied) {
  if (applied == 0) return absl::OkStatus();
  ProgramIndex index(from);
  flowtables::Delta undo;
  undo.ops.reserve(applied);
  for (size_t i = applied; i-- > 0;) {
    NICFLOW_ASSIGN_OR_RETURN(DeltaOp inv, Inverse(index, delta.ops[i]));
    undo.ops.push_back(std::move(inv));
  }
  // One transaction when the device takes them; op by op otherwise (the inverse ops are in
  // make-before-break order, so a partial undo is still a consistent program).
  absl::Status st = device_.Apply(undo);
  if (!st.ok() && options_.mode == ReconcilerOptions::Mode::kPerOp) {
    for (const DeltaOp& op : undo.ops) {
      NICFLOW_RETURN_IF_ERROR(device_.Apply(flowtables::Delta{{op}}));
    }
    st = absl::OkStatus();
  }
  if (st.ok()) report_.ops_rolled_back = applied;
  return st;
}

std::string ConvergeReport::ToText() const {
  std::string out = absl::StrFormat(
      "%s: %s%d ops (groups +%d ~%d -%d, entries +%d ~%d -%d) in %d transaction(s), %.3f ms",
      device, reinstalled ? "reinstalled, " : "", ops_total, groups_added, groups_modified,
      groups_deleted, entries_added, entries_modified, entries_deleted, transactions,
      static_cast<double>(total_ns) / 1e6);
  if (read_back) absl::StrAppend(&out, "; read back installed state first");
  if (failed) {
    absl::StrAppend(&out, "; FAILED after ", ops_applied, " ops, rolled back ", ops_rolled_back,
                    ": ", error);
  }
  return out;
}

nlohmann::json ConvergeReport::ToJson() const {
  return nlohmann::json{
      {"device", device},
      {"read_back", read_back},
      {"reinstalled", reinstalled},
      {"ops_total", ops_total},
      {"ops_applied", ops_applied},
      {"ops_rolled_back", ops_rolled_back},
      {"transactions", transactions},
      {"groups",
       {{"added", groups_added}, {"modified", groups_modified}, {"deleted", groups_deleted}}},
      {"entries",
       {{"added", entries_added}, {"modified", entries_modified}, {"deleted", entries_deleted}}},
      {"ports_changed", ports_changed},
      {"failed", failed},
      {"error", error},
      {"time_ns", {{"read", read_ns}, {"diff", diff_ns}, {"apply", apply_ns}, {"total", total_ns}}},
  };
}

}  // namespace nicflow::host
