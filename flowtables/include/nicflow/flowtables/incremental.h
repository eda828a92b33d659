// The incremental compiler: one Kubernetes object changes -> the delta of the program.
//
// What it does
// ------------
// A node agent watches the API server and sees one object change at a time: an EndpointSlice
// gains an endpoint, a pod is relabelled, a policy is added. IncrementalCompiler keeps the last
// ClusterState and the Program compiled from it, takes one change (an object added, updated or
// deleted) and returns the Delta that turns the old program into the new one, with the program
// updated. The contract is exact: the delta equals Diff(old program, Compile(new state)) op for
// op, in the same make-before-break order (ir.h), and program() equals Compile(new state)'s
// program. Tests hold it to that oracle over random change sequences (incremental_test.cc).
//
// The naive design, and why not
// -----------------------------
// Compile the new state in full and Diff it against the old program. That is the oracle and the
// fallback, but at 10,000 Services it costs a full compile (hundreds of ms) plus a diff over every
// entry, for a change that touches one select group.
//
// Units
// -----
// The program is a disjoint union of *units*, each the output of compiling a small part of the
// state on its own, plus node-wide entries that depend on node facts only:
//
//   unit                  what it emits                          depends on
//   svc:<ns>/<name>       service entries and select groups      the Service, its EndpointSlices
//   pol:<ns>              the policy sets of the namespace's     the namespace's NetworkPolicies
//                         local pods: *_pod, *_peer, *_rule        and local pods; peer pods and
//                                                                  namespaces their selectors
//                                                                  reach
//   pol-bypass:<dir>      hairpin / host bypass entries          whether any set exists in <dir>
//   fwd:<ns>/<name>       a local pod's forward entries + port   the pod
//   hp:<address>          one masq_mark hairpin entry            local pods and local endpoints
//                                                                  holding the address
//
// For every unit the compiler records the identities (table, priority, EntryKey) of the entries
// and the names of the groups it produced. A change names the units it can affect:
//
//   EndpointSlice  svc of its Service (old and new service-name label); hp of its local endpoint
//                  addresses
//   Service        its svc unit
//   Pod            fwd and hp of the pod; pol of its namespace when it is local; pol of every
//                  namespace with a policy peer whose selectors admit the pod before or after the
//                  change (or with an egress named-port rule over all pods or an ipBlock, which
//                  resolve named ports against any pod)
//   NetworkPolicy  pol of its namespace (after checking the policy as the full compile does)
//   Namespace      pol of every namespace with a namespaceSelector peer matching its labels
//                  before or after the change
//
// Each affected unit is recompiled by the same stage code the full compile uses
// (CompileOneService, CompileNamespacePolicies, PodForwardEntries, HairpinMasqEntry), so there is
// one implementation of the semantics. Its new output is compared with its recorded identities,
// looked up in the program by binary search (tables are sorted by priority, then identity): new
// identities are adds, vanished ones deletes, equal ones with other actions or origin modifies.
// Cost: the affected units' compile plus O(changed entries x log(table size)) lookups and the
// vector moves of inserting or erasing (modifies are in place).
//
// When it falls back to a full compile + Diff
// -------------------------------------------
// Changes to Node, ServiceCIDR, KubeProxyConfiguration or the ip-masq-agent config (node facts:
// every unit depends on them) always recompile in full and rebuild the units. So does any change
// where a unit's result would depend on another unit it does not own, which the full compile
// resolves globally and order-dependently:
// * a Service whose frontend or clusterIP another Service holds (the full compile's claim order
//   decides which one fails or, with skip_bad_objects, is skipped);
// * two local pods, or a pod and the node, sharing an address (forward and policy entries);
// * two namespaces' policy sets whose tags collide (the full compile re-hashes in key order);
// * an entry identity or group name another unit already holds;
// * a compile with skip_bad_objects that skipped something (the skipped object's fate depends on
//   the others), and a node with no name (no pod is local).
// While such a state persists, every change of the kinds involved recompiles in full. The
// fallback is counted and its reason kept in stats().
//
// Errors and atomicity
// --------------------
// A change the full compile would reject (a bad Service, a malformed policy, a duplicate object)
// returns the same kind of error and leaves the compiler as it was: the state change is undone,
// the program untouched. Adding an object that exists, or updating / deleting one that does not,
// is InvalidArgument / NotFound naming the object.
//
// Not maintained: CompileResult::notes. Notes describe the last full compile (notes()).
//
// Thread-safety: none; one owner calls Apply. program() and state() are stable between calls.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <variant>

#include "absl/status/statusor.h"
#include "nicflow/flowtables/compiler.h"
#include "nicflow/flowtables/ir.h"
#include "nicflow/flowtables/model.h"

namespace nicflow::flowtables {

/// A Kubernetes object the incremental compiler takes as a change.
using ClusterObject = std::variant<Namespace, Pod, Service, EndpointSlice, NetworkPolicy, Node,
                                   ServiceCidr, ProxyConfig, MasqConfig>;

/// One object added, updated or deleted.
struct ObjectChange {
  enum class Kind : uint8_t { kAdded, kUpdated, kDeleted };
  Kind kind = Kind::kUpdated;
  /// The new object; for kDeleted only its identity (namespace and name) is read.
  ClusterObject object;
};

/// "updated EndpointSlice shop/web-abc", for messages.
std::string ObjectChangeName(const ObjectChange& change);

/// Applies `change` to `state` the way IncrementalCompiler does (so tests can build the oracle's
/// state): kAdded appends, kUpdated replaces in place, kDeleted moves the last object of the kind
/// into the deleted one's place. KubeProxyConfiguration and the masquerade config are singletons.
/// Errors: InvalidArgument when an added object exists already, NotFound when an updated or
/// deleted one does not; `state` is unchanged on error.
absl::Status ApplyChange(ClusterState& state, const ObjectChange& change);

struct IncrementalStats {
  uint64_t changes = 0;          ///< Apply calls that succeeded
  uint64_t incremental = 0;      ///< of them, answered from units
  uint64_t full_recompiles = 0;  ///< of them, answered by a full compile + Diff
  std::string last_fallback_reason;
};

class IncrementalCompiler {
 public:
  /// Compiles `state` in full and indexes the result. Errors: as Compile().
  static absl::StatusOr<std::unique_ptr<IncrementalCompiler>> Create(ClusterState state,
                                                                     CompileOptions options);
  ~IncrementalCompiler();
  IncrementalCompiler(const IncrementalCompiler&) = delete;
  IncrementalCompiler& operator=(const IncrementalCompiler&) = delete;

  /// Applies one change and returns the delta from the previous program to the new one (empty
  /// when the change does not alter the program). Errors: InvalidArgument / NotFound for a change
  /// that does not fit the state (see ApplyChange), otherwise what Compile() would return for the
  /// new state; on error nothing changes.
  absl::StatusOr<Delta> Apply(const ObjectChange& change);

  const Program& program() const;
  const ClusterState& state() const;
  const NodeFacts& node() const;
  /// Notes of the last full compile.
  const std::vector<std::string>& notes() const;
  const IncrementalStats& stats() const;

 private:
  struct Impl;
  explicit IncrementalCompiler(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace nicflow::flowtables
