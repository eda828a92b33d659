// Private to flowtables: prefix arithmetic for NetworkPolicy peers.
//
// The peer tables of the policy pipeline are LPM tables: one lookup on the peer address finds the
// longest matching prefix, whose entry writes the bits of every rule the address belongs to.
// ComputePrefixBits turns a list of "this CIDR (minus these excepts) belongs to these rule bits"
// items into the entries of such a table, so that the longest match always carries the exact
// union. See policy_compiler.cc for where it fits.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "nicflow/flowtables/ip.h"

namespace nicflow::flowtables {

/// An address range that belongs to some rules: `cidr` minus every `except` prefix.
struct PrefixBitsItem {
  IpPrefix cidr;
  std::vector<IpPrefix> except;
  uint32_t bits = 0;  ///< the rule bits an address in the range carries
};

/// One LPM entry: an address whose longest matching prefix is `prefix` carries `bits`.
struct PrefixBits {
  IpPrefix prefix;
  uint32_t bits = 0;
  /// Index of the item the entry is named after: the first contributing item whose cidr is the
  /// prefix, else the first contributing one, else (an except) the first one excepting it.
  int item = 0;
  friend bool operator==(const PrefixBits&, const PrefixBits&) = default;
};

/// The LPM entries that give every address the OR of the bits of every item containing it
/// (inside `cidr`, outside each `except`); addresses in no item carry 0 (the table's miss).
/// Entries equal to what their longest enclosing entry (or the miss) already gives are left out.
/// Result sorted by prefix. Cost: O(n * L) hash lookups for n distinct prefixes and L distinct
/// prefix lengths.
std::vector<PrefixBits> ComputePrefixBits(std::span<const PrefixBitsItem> items);

}  // namespace nicflow::flowtables
