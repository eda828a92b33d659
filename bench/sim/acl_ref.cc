#include "acl_ref.h"

#include <arpa/inet.h>
#include <rte_acl.h>
#include <rte_eal.h>
#include <rte_errno.h>

#include <algorithm>
#include <cstring>
#include <map>

#include "absl/strings/str_cat.h"
#include "nicflow/sim/classifier.h"

namespace nicflow::bench {
namespace {

namespace ft = flowtables;
constexpr int kMaxAclFields = 8;
RTE_ACL_RULE_DEF(AclRule, kMaxAclFields);

// Input layout: byte 0 holds the one 8-bit key (rte_acl wants a 1-byte first field), then one
// 4-byte big-endian slot per other key: 4 + 4 * (n - 1) bytes, padded to 4 + 4 * kMaxAclFields.
struct AclInput {
  uint8_t first = 0;
  uint8_t pad[3] = {};
  uint32_t slot[kMaxAclFields] = {};
};

}  // namespace

absl::Status InitDpdk() {
  static bool done = false;
  static int rc = 0;
  static std::string err;
  if (!done) {
    done = true;
    // --no-huge implies legacy memory, which --in-memory refuses; --no-shconf keeps the run
    // from touching /var/run/dpdk.
    const char* args[] = {"sim_bench", "--no-shconf", "--no-huge", "--no-pci",         "-l",
                          "0",         "-m",          "512",       "--log-level=error"};
    rc = rte_eal_init(static_cast<int>(std::size(args)), const_cast<char**>(args));
    if (rc < 0) err = rte_strerror(rte_errno);
  }
  if (rc < 0) return absl::UnavailableError(absl::StrCat("rte_eal_init: ", err));
  return absl::OkStatus();
}

struct AclClassifier::Impl {
  rte_acl_ctx* ctx = nullptr;
  std::vector<ft::KeyField> keys;
  int first = -1;            // key index stored in byte 0 (-1: a dummy)
  std::vector<int> slot_of;  // key index -> slot (-1 for `first`)
  std::vector<AclInput> inputs;
  std::vector<const uint8_t*> ptrs;
  size_t rules = 0;
  ~Impl() {
    if (ctx) rte_acl_free(ctx);
  }
};

AclClassifier::AclClassifier(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
AclClassifier::~AclClassifier() = default;

namespace {

// value/mask of a field match as rte_acl bitmask, or lo/hi as a range.
void FillField(const ft::FieldMatch* m, int width, bool range_field, rte_acl_field& f) {
  const uint64_t full = width >= 32 ? 0xffffffffull : ((1ull << width) - 1);
  if (range_field) {
    uint64_t lo = 0, hi = full;
    if (m) {
      if (const auto* r = std::get_if<ft::RangeMatch>(&m->value)) lo = r->lo.lo, hi = r->hi.lo;
    }
    f.value.u32 = static_cast<uint32_t>(lo);
    f.mask_range.u32 = static_cast<uint32_t>(hi);
    return;
  }
  uint64_t v = 0, k = 0;
  if (m) {
    if (const auto* e = std::get_if<ft::ExactMatch>(&m->value)) v = e->value.lo, k = full;
    if (const auto* t = std::get_if<ft::TernaryMatch>(&m->value)) v = t->value.lo, k = t->mask.lo;
    if (const auto* l = std::get_if<ft::LpmMatch>(&m->value)) {
      k = sim::PrefixMaskBits(width, l->prefix_len_bits).lo;
      v = l->value.lo & k;
    }
  }
  f.value.u32 = static_cast<uint32_t>(v);
  f.mask_range.u32 = static_cast<uint32_t>(k);
}

}  // namespace

absl::StatusOr<std::unique_ptr<AclClassifier>> AclClassifier::Build(
    const std::vector<ft::KeyField>& keys, const std::vector<ft::Entry>& entries) {
  auto impl = std::make_unique<Impl>();
  impl->keys = keys;
  if (keys.size() + 1 > kMaxAclFields) return absl::InvalidArgumentError("too many key fields");
  int slots = 0;
  for (size_t i = 0; i < keys.size(); ++i) {
    const int w = ft::GetFieldInfo(keys[i].field).width_bits;
    if (w > 32) return absl::InvalidArgumentError("rte_acl reference: key wider than 32 bits");
    if (w == 8 && impl->first < 0) {
      impl->first = static_cast<int>(i);
      impl->slot_of.push_back(-1);
    } else {
      impl->slot_of.push_back(slots++);
    }
  }
  rte_acl_config cfg{};
  cfg.num_categories = 1;
  cfg.num_fields = static_cast<uint32_t>(slots + 1);
  cfg.defs[0] = {RTE_ACL_FIELD_TYPE_BITMASK, 1, 0, 0, 0};
  for (size_t i = 0; i < keys.size(); ++i) {
    const int s = impl->slot_of[i];
    if (s < 0) continue;
    const uint8_t type = keys[i].kind == ft::MatchKind::kRange ? RTE_ACL_FIELD_TYPE_RANGE
                                                               : RTE_ACL_FIELD_TYPE_BITMASK;
    cfg.defs[s + 1] = {type, 4, static_cast<uint8_t>(s + 1), static_cast<uint8_t>(s + 1),
                       static_cast<uint32_t>(offsetof(AclInput, slot) + 4 * s)};
  }
  const std::string name = absl::StrCat("nicflow_bench_", reinterpret_cast<uintptr_t>(impl.get()));
  rte_acl_param param{name.c_str(), 0, RTE_ACL_RULE_SZ(kMaxAclFields),
                      static_cast<uint32_t>(entries.size())};
  impl->ctx = rte_acl_create(&param);
  if (!impl->ctx)
    return absl::InternalError(absl::StrCat("rte_acl_create: ", rte_strerror(rte_errno)));
  // rte_acl priorities must be in [1, 0x1fffffff]: map entry priorities to their rank.
  std::map<int32_t, int32_t> rank;
  for (const ft::Entry& e : entries) rank[e.priority] = 0;
  int32_t r = 1;
  for (auto& [prio, rk] : rank) rk = r++;
  std::vector<AclRule> rules(entries.size());
  for (size_t n = 0; n < entries.size(); ++n) {
    AclRule& rule = rules[n];
    rule.data = {1, rank[entries[n].priority], static_cast<uint32_t>(n + 1)};
    for (size_t i = 0; i < keys.size(); ++i) {
      const ft::FieldMatch* m = nullptr;
      for (const ft::FieldMatch& fm : entries[n].match) {
        if (fm.field == keys[i].field) m = &fm;
      }
      const int w = ft::GetFieldInfo(keys[i].field).width_bits;
      const int s = impl->slot_of[i];
      // The 1-byte first field (s == -1) reads the low byte of the union: little-endian hosts.
      FillField(m, w, keys[i].kind == ft::MatchKind::kRange, rule.field[s + 1]);
    }
    if (impl->first < 0) rule.field[0] = {};
  }
  if (rte_acl_add_rules(impl->ctx, reinterpret_cast<rte_acl_rule*>(rules.data()),
                        static_cast<uint32_t>(rules.size())) != 0) {
    return absl::InternalError("rte_acl_add_rules failed");
  }
  if (int rc = rte_acl_build(impl->ctx, &cfg); rc != 0) {
    return absl::InternalError(absl::StrCat("rte_acl_build: ", rte_strerror(-rc)));
  }
  impl->rules = entries.size();
  return std::unique_ptr<AclClassifier>(new AclClassifier(std::move(impl)));
}

void AclClassifier::Prepare(std::span<const sim::PacketFields> packets) {
  Impl& m = *impl_;
  m.inputs.assign(packets.size(), AclInput{});
  m.ptrs.clear();
  for (size_t p = 0; p < packets.size(); ++p) {
    for (size_t i = 0; i < m.keys.size(); ++i) {
      const uint32_t v = static_cast<uint32_t>(packets[p].get(m.keys[i].field).lo);
      if (m.slot_of[i] < 0) {
        m.inputs[p].first = static_cast<uint8_t>(v);
      } else {
        m.inputs[p].slot[m.slot_of[i]] = htonl(v);
      }
    }
    m.ptrs.push_back(reinterpret_cast<const uint8_t*>(&m.inputs[p]));
  }
}

void AclClassifier::Classify(std::span<uint32_t> out) {
  Impl& m = *impl_;
  const size_t n = std::min(out.size(), m.ptrs.size());
  for (size_t i = 0; i < n; i += 64) {
    const uint32_t burst = static_cast<uint32_t>(std::min<size_t>(64, n - i));
    rte_acl_classify(m.ctx, m.ptrs.data() + i, out.data() + i, burst, 1);
  }
  for (size_t i = 0; i < n; ++i) out[i] = out[i] == 0 ? sim::kNoRule : out[i] - 1;
}

std::string AclClassifier::Describe() const {
  return absl::StrCat("rte_acl: ", impl_->rules, " rules, ", impl_->keys.size(), " fields");
}

}  // namespace nicflow::bench
