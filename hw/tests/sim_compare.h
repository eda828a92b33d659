// Runs the same frames through the simulator and the FPGA pipeline and compares the results:
// verdict, output port, the frame as it leaves (or the REJECT reply), then every counter.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "fpga_fixture.h"
#include "nicflow/flowtables/ir.h"
#include "nicflow/sim/device.h"
#include "nicflow/sim/packet.h"

namespace nicflow::hw::testing {

struct Frame {
  std::string name;
  std::vector<uint8_t> bytes;
  sim::PortId in_port = sim::kUplinkPort;
};

/// Both backends with the same program and the same (manual) time.
class Pair {
 public:
  explicit Pair(const flowtables::Program& p) : fpga_(SharedPipeline()) {
    sim::SimNic::Options o;
    o.clock = &clock_;
    sim_ = sim::SimNic::Create(*sim::BuiltinProfile("unlimited"), o);
    EXPECT_TRUE(sim_->Install(p).ok());
    absl::Status st = fpga_.Install(p);
    EXPECT_TRUE(st.ok()) << st;
    EXPECT_TRUE(fpga_.ClearConntrack().ok());
    FakeNow() = clock_.NowNs();
  }
  sim::SimNic& sim() { return *sim_; }
  FpgaPipeline& fpga() { return fpga_; }
  void AdvanceS(uint64_t s) {
    clock_.AdvanceS(s);
    FakeNow() = clock_.NowNs();
  }

  uint8_t PortClass(sim::PortId id) const {
    const auto& ports = sim_->ports();
    return id < ports.size() ? static_cast<uint8_t>(ports[id].port_class) : 0;
  }

  /// The port a packet from `src` enters on: the port that owns the address, else the uplink.
  sim::PortId PortOf(const flowtables::IpAddr& src) const {
    for (const auto& port : sim_->ports()) {
      for (const auto& ip : port.ips) {
        if (ip == src) return port.id;
      }
    }
    return sim::kUplinkPort;
  }

  /// Runs `frames` through both (the FPGA in batches of `batch`); returns the simulator's frames
  /// as they left, for follow-up packets. Mismatches are test failures naming the frame.
  std::vector<Frame> Compare(const std::vector<Frame>& frames, size_t batch = 64,
                             std::vector<FpgaResult>* results = nullptr) {
    std::vector<Frame> left;
    for (size_t start = 0; start < frames.size(); start += batch) {
      const size_t n = std::min(batch, frames.size() - start);
      std::vector<FpgaPacket> fp(n);
      for (size_t i = 0; i < n; ++i) {
        const Frame& f = frames[start + i];
        fp[i].frame = f.bytes;
        fp[i].in_port = f.in_port;
        fp[i].port_class = PortClass(f.in_port);
      }
      absl::Status st = fpga_.ProcessBatch(fp);
      EXPECT_TRUE(st.ok()) << st;
      for (size_t i = 0; i < n; ++i) {
        const Frame& f = frames[start + i];
        std::vector<uint8_t> buf(2048, 0);
        std::copy(f.bytes.begin(), f.bytes.end(), buf.begin());
        size_t len = f.bytes.size();
        const sim::PacketResult r = sim_->ProcessFrame(buf, len, f.in_port);
        buf.resize(len);
        const FpgaResult& h = fp[i].result;
        if (results != nullptr) results->push_back(h);
        SCOPED_TRACE(f.name);
        EXPECT_EQ(sim::VerdictName(r.verdict), FpgaVerdictName(h.verdict))
            << "sim reason " << sim::DropReasonName(r.reason) << ", fpga flags 0x" << std::hex
            << h.flags;
        EXPECT_EQ(static_cast<int>(r.parse_error), h.parse_error);
        if (r.verdict == sim::Verdict::kForward) {
          EXPECT_EQ(sim_->ports()[r.out_port].name,
                    h.out_port ? h.out_port->ToString() : std::string("(none)"));
        }
        if (r.verdict == sim::Verdict::kForward || r.verdict == sim::Verdict::kReject) {
          EXPECT_EQ(buf, fp[i].frame) << "frames differ";
        }
        if (r.verdict == sim::Verdict::kForward) {
          left.push_back({f.name, buf, r.out_port});
        }
      }
    }
    return left;
  }

  /// Every entry's and table's counters agree.
  void CompareCounters() {
    const flowtables::Program& p = sim_->installed();
    for (const auto& table : p.entries) {
      for (const auto& e : table) {
        const std::string key = flowtables::EntryKey(e);
        auto s = sim_->GetEntryCounters(key);
        auto h = fpga_.GetEntryCounters(key);
        ASSERT_TRUE(s.ok() && h.ok()) << key;
        EXPECT_EQ(s->packets, h->packets) << key;
        EXPECT_EQ(s->bytes, h->bytes) << key;
      }
    }
    for (flowtables::TableId t = 0; t < p.tables.size(); ++t) {
      auto s = sim_->GetTableCounters(t);
      auto h = fpga_.GetTableCounters(t);
      ASSERT_TRUE(s.ok() && h.ok());
      EXPECT_EQ(s->hits, h->hits) << p.tables[t].name;
      EXPECT_EQ(s->misses, h->misses) << p.tables[t].name;
      EXPECT_EQ(s->bytes, h->bytes) << p.tables[t].name;
    }
    // Device totals: packets in, and each packet's final verdict.
    const sim::DeviceCounters& s = sim_->counters();
    auto h = fpga_.GetDeviceCounters();
    ASSERT_TRUE(h.ok()) << h.status();
    uint64_t parse_errors = 0;
    for (uint64_t n : s.parse_errors) parse_errors += n;
    EXPECT_EQ(s.rx_packets, h->rx);
    EXPECT_EQ(parse_errors, h->parse_errors);
    EXPECT_EQ(s.forwarded, h->forwarded);
    EXPECT_EQ(s.dropped, h->dropped);
    EXPECT_EQ(s.rejected, h->rejected);
    EXPECT_EQ(s.punted, h->punted);
    EXPECT_EQ(s.punted, h->punts);
    EXPECT_EQ(h->rx, h->forwarded + h->dropped + h->rejected + h->punted);
  }

 private:
  sim::ManualClock clock_;
  std::unique_ptr<sim::SimNic> sim_;
  FpgaPipeline& fpga_;
};

/// A frame built by the simulator's packet builder.
inline Frame MakeFrame(std::string name, const sim::PacketSpec& spec, sim::PortId in_port) {
  auto bytes = sim::BuildPacket(spec);
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  return {std::move(name), bytes.ok() ? *bytes : std::vector<uint8_t>{}, in_port};
}

/// The reply to a frame as it left: addresses and ports swapped, TCP SYN+ACK.
inline Frame ReplyTo(const Frame& left) {
  sim::ParsedPacket p;
  EXPECT_EQ(sim::ParsePacket(left.bytes, p), sim::ParseError::kNone);
  sim::PacketSpec s;
  s.proto = p.l4_proto;
  s.src = sim::DstAddr(p);
  s.dst = sim::SrcAddr(p);
  s.src_port = static_cast<uint16_t>(p.fields.get(flowtables::Field::kL4Dst).lo);
  s.dst_port = static_cast<uint16_t>(p.fields.get(flowtables::Field::kL4Src).lo);
  s.tcp_flags = sim::kTcpSyn | sim::kTcpAck;
  s.sctp_chunk = 2;  // INIT ACK
  if (s.proto == sim::kProtoIcmp || s.proto == sim::kProtoIcmpv6) {
    s.icmp_type = 0;
    s.src_port = p.icmp_id;
  }
  return MakeFrame("reply to " + left.name, s, left.in_port);
}

}  // namespace nicflow::hw::testing
