#include "nicflow/hw/fpga_trace.h"

#include "absl/strings/str_cat.h"
#include "frame_util.h"
#include "nicflow/flowtables/status.h"
#include "nicflow/hw/image_format.h"

namespace nicflow::hw {
namespace {

namespace ft = flowtables;

std::string Endpoint(const ft::IpAddr& a, uint16_t port) {
  return a.is_v4() ? absl::StrCat(a.ToString(), ":", port)
                   : absl::StrCat("[", a.ToString(), "]:", port);
}

// Addresses and ports of a frame as it leaves (the parse the kernel already did is gone, so this
// reads the fixed IPv4/IPv6 positions after an optional VLAN tag).
void ReadEndpoints(std::span<const uint8_t> f, FpgaTraceReport& r) {
  if (f.size() < 14) return;
  size_t l3 = 14;
  uint16_t et = static_cast<uint16_t>(f[12] << 8 | f[13]);
  if (et == 0x8100 && f.size() >= 18) {
    et = static_cast<uint16_t>(f[16] << 8 | f[17]);
    l3 = 18;
  }
  const bool v6 = et == 0x86dd;
  const size_t ihl = v6 ? 40 : (f.size() > l3 ? (f[l3] & 0x0f) * 4u : 20);
  if (f.size() < l3 + ihl + 4) return;
  std::array<uint8_t, 16> s{}, d{};
  const size_t alen = v6 ? 16 : 4;
  std::copy_n(f.begin() + l3 + (v6 ? 8 : 12), alen, s.begin());
  std::copy_n(f.begin() + l3 + (v6 ? 24 : 16), alen, d.begin());
  auto addr = [&](const std::array<uint8_t, 16>& b) {
    return v6 ? ft::IpAddr::V6(b)
              : ft::IpAddr::V4(uint32_t{b[0]} << 24 | uint32_t{b[1]} << 16 | uint32_t{b[2]} << 8 |
                               b[3]);
  };
  const uint8_t* l4 = f.data() + l3 + ihl;
  r.src = Endpoint(addr(s), static_cast<uint16_t>(l4[0] << 8 | l4[1]));
  r.dst = Endpoint(addr(d), static_cast<uint16_t>(l4[2] << 8 | l4[3]));
}

const ft::Entry* FindEntry(const ft::Program& p, ft::TableId t, const std::string& key) {
  if (t >= p.entries.size()) return nullptr;
  for (const ft::Entry& e : p.entries[t]) {
    if (ft::EntryKey(e) == key) return &e;
  }
  return nullptr;
}

}  // namespace

absl::StatusOr<FpgaTraceReport> TraceFrame(FpgaPipeline& pipeline, std::span<const uint8_t> frame,
                                           uint32_t in_port, uint8_t port_class) {
  if (!pipeline.has_program()) return absl::FailedPreconditionError("fpga trace: no program");
  FpgaPacket pk;
  pk.frame.assign(frame.begin(), frame.end());
  pk.in_port = in_port;
  pk.port_class = port_class;
  NICFLOW_RETURN_IF_ERROR(pipeline.ProcessBatch({&pk, 1}));
  return ExplainPacket(pipeline, pk);
}

FpgaTraceReport ExplainPacket(const FpgaPipeline& pipeline, const FpgaPacket& pk) {
  const FpgaResult& res = pk.result;
  const ft::Program& prog = pipeline.installed();
  FpgaTraceReport r;
  r.verdict = res.verdict;
  r.ct_state = res.ct_state;
  r.meta_flags = res.meta_flags;
  r.parse_error = res.parse_error;
  r.translated = (res.flags & NF_RF_DNAT) != 0 || (res.ct_state & ft::kCtEst) != 0;
  r.masquerade = (res.flags & NF_RF_SNAT) != 0;
  if (res.out_port) r.out_port = res.out_port->ToString();
  for (const FpgaHit& h : res.hits) {
    FpgaTraceStep st;
    st.table = h.table < prog.tables.size() ? prog.tables[h.table].name : absl::StrCat(h.table);
    st.miss = !h.hit;
    if (h.hit) {
      const auto& owner = pipeline.image().OwnerOf(h.slot);
      if (const ft::Entry* e = FindEntry(prog, h.table, owner.entry_key)) {
        st.priority = e->priority;
        st.match = ft::MatchesToString(e->match);
        st.actions = ft::ActionsToString(e->actions, &prog);
        st.origin = e->origin.ToString();
      }
    } else if (h.table < prog.tables.size()) {
      st.actions = ft::ActionsToString(prog.tables[h.table].default_actions, &prog);
    }
    r.steps.push_back(std::move(st));
  }
  if (res.verdict == FpgaVerdict::kForward) ReadEndpoints(pk.frame, r);
  if (res.group) {
    r.group = res.group;
    r.bucket = res.bucket;
    if (const ft::SelectGroup* g = prog.FindGroup(*res.group)) {
      for (const ft::Bucket& b : g->buckets) {
        for (const ft::Action& a : b.actions) {
          if (const auto* d = std::get_if<ft::DnatAction>(&a)) {
            r.destinations.push_back(Endpoint(d->addr, d->port));
          }
        }
      }
    }
  }
  if (r.destinations.empty() && !r.dst.empty()) r.destinations.push_back(r.dst);
  return r;
}

absl::StatusOr<FpgaTraceReport> TraceProgram(const ft::Program& program, FpgaOptions options,
                                             std::span<const uint8_t> frame, uint32_t in_port,
                                             uint8_t port_class) {
  NICFLOW_ASSIGN_OR_RETURN(auto pipeline, FpgaPipeline::Create(std::move(options)));
  NICFLOW_RETURN_IF_ERROR(pipeline->Install(program));
  return TraceFrame(*pipeline, frame, in_port, port_class);
}

}  // namespace nicflow::hw
