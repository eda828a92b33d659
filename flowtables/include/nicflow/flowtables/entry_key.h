// EntryKey (ir.h) into a caller's buffer, for code that keys many entries and should not allocate
// a string per entry (the simulator's entry index hashes and compares keys without storing them).
#pragma once

#include <string>

#include "nicflow/flowtables/ir.h"

namespace nicflow::flowtables {

/// Appends EntryKey(e) to `out`: the same bytes, so keys built either way compare equal.
void AppendEntryKey(const Entry& e, std::string& out);

}  // namespace nicflow::flowtables
