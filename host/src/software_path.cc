#include "nicflow/host/software_path.h"

#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "nicflow/flowtables/status.h"
#include "nicflow/sim/profile.h"

namespace nicflow::host {

namespace {

namespace ft = ::nicflow::flowtables;

ft::SetFieldAction Set(ft::Field f, uint64_t v) {
  return ft::SetFieldAction{f, ft::U128::Of(v), ft::U128::Ones(ft::GetFieldInfo(f).width_bits)};
}

std::unique_ptr<sim::SimNic> NewNic() {
  sim::SimNic::Options o;
  o.conntrack_capacity = 4096;  // traces and slow-path packets, not a connection table
  return sim::SimNic::Create(*sim::BuiltinProfile("unlimited"), o);
}

}  // namespace

SoftwarePath::SoftwarePath(ft::Program program) : program_(std::move(program)) {}

absl::StatusOr<sim::SimNic*> SoftwarePath::Plain() { return NicFor(0, PuntRegisters{}); }

absl::StatusOr<sim::SimNic*> SoftwarePath::NicFor(ft::TableId table, const PuntRegisters& regs) {
  auto key = std::make_tuple(table, regs);
  if (auto it = nics_.find(key); it != nics_.end()) return it->second.get();
  if (table >= program_.tables.size()) {
    return absl::InvalidArgumentError(absl::StrCat("software path: no table ", table));
  }
  ft::Program p = program_;
  if (table != 0) {
    ft::Entry resume;
    resume.table = 0;
    resume.priority = std::numeric_limits<int32_t>::max();
    resume.actions = {
        Set(ft::Field::kMetaFlags, regs.meta_flags), Set(ft::Field::kMetaSrcSet, regs.src_set),
        Set(ft::Field::kMetaDstSet, regs.dst_set),   Set(ft::Field::kMetaPeerBits, regs.peer_bits),
        Set(ft::Field::kCtState, regs.ct_state),     ft::GotoAction{table}};
    resume.origin = {"nicflow", "", "software-path",
                     absl::StrCat("resume at table ", program_.tables[table].name)};
    p.entries[0].insert(p.entries[0].begin(), std::move(resume));
  }
  auto nic = NewNic();
  NICFLOW_RETURN_IF_ERROR(nic->Install(p));
  sim::SimNic* raw = nic.get();
  nics_.emplace(key, std::move(nic));
  return raw;
}

absl::StatusOr<sim::TraceResult> SoftwarePath::Resume(ft::TableId table, const PuntRegisters& regs,
                                                      const sim::TraceRequest& packet) {
  NICFLOW_ASSIGN_OR_RETURN(sim::SimNic * nic, NicFor(table, regs));
  NICFLOW_ASSIGN_OR_RETURN(sim::TraceResult r, nic->Trace(packet));
  if (table != 0) {
    for (auto& path : r.paths) {
      if (!path.steps.empty() && path.steps.front().table_id == 0) {
        path.steps.erase(path.steps.begin());  // the resume entry is ours, not the program's
      }
    }
  }
  return r;
}

}  // namespace nicflow::host
