// SimNic construction, ports, counters and fault injection.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "device_state.h"
#include "sv.h"

namespace nicflow::sim {

std::string_view VerdictName(Verdict v) {
  switch (v) {
    case Verdict::kForward:
      return "forward";
    case Verdict::kDrop:
      return "drop";
    case Verdict::kReject:
      return "reject";
    case Verdict::kPunt:
      return "punt";
  }
  return "unknown";
}

std::string_view DropReasonName(DropReason r) {
  static constexpr std::string_view kNames[] = {
      "none",    "parse_error", "no_program",     "drop_action", "fell_off",     "no_bucket",
      "ct_full", "ct_clash",    "snat_exhausted", "bad_rewrite", "reject_failed"};
  static_assert(std::size(kNames) == static_cast<size_t>(DropReason::kCount));
  return kNames[static_cast<size_t>(r)];
}

PacketBatch::PacketBatch(size_t capacity, size_t max_frame_bytes)
    : max_frame_(max_frame_bytes),
      data_(capacity * max_frame_bytes),
      len_(capacity),
      in_port_(capacity),
      results_(capacity),
      punts_(capacity) {}

bool PacketBatch::Add(std::span<const uint8_t> frame, PortId in_port) {
  if (size_ == in_port_.size() || frame.size() > max_frame_) return false;
  std::copy(frame.begin(), frame.end(), data_.begin() + static_cast<ptrdiff_t>(size_ * max_frame_));
  len_[size_] = static_cast<uint32_t>(frame.size());
  in_port_[size_] = in_port;
  results_[size_] = PacketResult{};
  ++size_;
  return true;
}

SimNic::SimNic(std::unique_ptr<State> s) : s_(std::move(s)) {}
SimNic::~SimNic() = default;

std::unique_ptr<SimNic> SimNic::Create(DeviceProfile profile, Options options) {
  auto s = std::make_unique<State>();
  s->profile = std::move(profile);
  if (options.clock) {
    s->clock = options.clock;
  } else {
    s->own_clock = std::make_unique<SteadyClock>();
    s->clock = s->own_clock.get();
  }
  uint32_t ct_cap =
      options.conntrack_capacity ? options.conntrack_capacity : s->profile.conntrack_capacity;
  if (ct_cap == 0) ct_cap = 65536;  // a device without CT offload still tracks in software
  s->ct = std::make_unique<Conntrack>(ct_cap, options.ct_timeouts);
  s->flow_cache = FlowCache(options.flow_cache_entries);
  s->scratch.resize(2048);
  s->affinity.reserve(65536);
  std::unique_ptr<SimNic> nic(new SimNic(std::move(s)));
  nic->s_->ports.push_back({kHostPort,
                            {flowtables::PortRef::Kind::kHost, ""},
                            flowtables::PortClass::kHost,
                            {},
                            "host"});
  nic->s_->ports.push_back({kUplinkPort,
                            {flowtables::PortRef::Kind::kUplink, ""},
                            flowtables::PortClass::kUplink,
                            {},
                            "uplink"});
  nic->s_->port_by_name = {{"host", kHostPort}, {"uplink", kUplinkPort}};
  nic->s_->port_counters.resize(2);
  return nic;
}

const DeviceProfile& SimNic::profile() const { return s_->profile; }
bool SimNic::has_program() const { return s_->has_program; }

void SimNic::InjectFault(uint64_t nth, absl::Status status) {
  s_->fault_at = s_->ops + std::max<uint64_t>(nth, 1);
  s_->fault_status = std::move(status);
}
void SimNic::ClearFaults() { s_->fault_at.reset(); }
uint64_t SimNic::operations() const { return s_->ops; }

const std::vector<PortInfo>& SimNic::ports() const { return s_->ports; }

std::optional<PortId> SimNic::FindPort(const flowtables::PortRef& ref) const {
  auto it = s_->port_by_name.find(ref.ToString());
  if (it == s_->port_by_name.end()) return std::nullopt;
  return it->second;
}

std::optional<PortId> SimNic::PortOwning(const IpAddr& ip) const {
  for (const PortInfo& p : s_->ports) {
    if (std::find(p.ips.begin(), p.ips.end(), ip) != p.ips.end()) return p.id;
  }
  return std::nullopt;
}

absl::StatusOr<PortId> SimNic::FindPortByName(std::string_view name) const {
  auto it = s_->port_by_name.find(Sv(name));
  if (it == s_->port_by_name.end()) {
    return absl::NotFoundError(absl::StrCat("port \"", Sv(name), "\" does not exist"));
  }
  return it->second;
}

absl::StatusOr<EntryCounters> SimNic::GetEntryCounters(std::string_view entry_key) const {
  auto it = s_->entry_by_key.find(Sv(entry_key));
  if (it == s_->entry_by_key.end()) {
    return absl::NotFoundError(absl::StrCat("no installed entry ", Sv(entry_key)));
  }
  return s_->entries[*it].counters;
}

absl::StatusOr<TableCounters> SimNic::GetTableCounters(flowtables::TableId table) const {
  if (table >= s_->tables.size()) {
    return absl::NotFoundError(absl::StrCat("table ", table, " does not exist"));
  }
  return s_->tables[table].counters;
}

absl::StatusOr<PortCounters> SimNic::GetPortCounters(PortId port) const {
  if (port >= s_->port_counters.size()) {
    return absl::NotFoundError(absl::StrCat("port ", port, " does not exist"));
  }
  return s_->port_counters[port];
}

const DeviceCounters& SimNic::counters() const { return s_->counters; }

void SimNic::ResetCounters() {
  State& s = *s_;
  s.counters = {};
  for (CTable& t : s.tables) t.counters = {};
  for (CEntry& e : s.entries) e.counters = {};
  for (PortCounters& p : s.port_counters) p = {};
}

const FlowCacheStats& SimNic::flow_cache_stats() const { return s_->flow_cache.stats; }

const Conntrack& SimNic::conntrack() const { return *s_->ct; }

size_t SimNic::ExpireConntrack() {
  State& s = *s_;
  const uint64_t now = s.clock->NowNs();
  absl::erase_if(s.affinity, [&](const auto& kv) {
    const CGroup& g = s.groups[kv.first.group];
    const uint64_t timeout = uint64_t{g.group.affinity_timeout_s.value_or(0)} * 1'000'000'000ull;
    return !g.live || kv.second.last_ns + timeout <= now;
  });
  return s.ct->Expire(now);
}

void SimNic::ClearConntrack() {
  s_->ct->Clear();
  s_->affinity.clear();
}

}  // namespace nicflow::sim
