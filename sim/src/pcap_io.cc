#include "nicflow/sim/pcap_io.h"

#include <pcap/pcap.h>

#include "absl/strings/str_cat.h"

namespace nicflow::sim {

struct PcapWriter::Handles {
  pcap_t* pcap = nullptr;
  pcap_dumper_t* dumper = nullptr;
  ~Handles() {
    if (dumper) pcap_dump_close(dumper);
    if (pcap) pcap_close(pcap);
  }
};

PcapWriter::PcapWriter(std::unique_ptr<Handles> h, std::string path)
    : h_(std::move(h)), path_(std::move(path)) {}
PcapWriter::~PcapWriter() = default;

absl::StatusOr<std::unique_ptr<PcapWriter>> PcapWriter::Open(const std::string& path) {
  auto h = std::make_unique<Handles>();
  h->pcap = pcap_open_dead(DLT_EN10MB, 65535);
  if (!h->pcap) return absl::InternalError("pcap_open_dead failed");
  h->dumper = pcap_dump_open(h->pcap, path.c_str());
  if (!h->dumper) {
    return absl::UnavailableError(absl::StrCat("pcap ", path, ": ", pcap_geterr(h->pcap)));
  }
  return std::unique_ptr<PcapWriter>(new PcapWriter(std::move(h), path));
}

void PcapWriter::Write(std::span<const uint8_t> frame, uint64_t ts_ns) {
  if (!h_ || !h_->dumper) return;
  pcap_pkthdr hdr{};
  hdr.ts.tv_sec = static_cast<time_t>(ts_ns / 1'000'000'000ull);
  hdr.ts.tv_usec = static_cast<suseconds_t>(ts_ns % 1'000'000'000ull / 1000);
  hdr.caplen = hdr.len = static_cast<bpf_u_int32>(frame.size());
  pcap_dump(reinterpret_cast<u_char*>(h_->dumper), &hdr, frame.data());
}

absl::Status PcapWriter::Close() {
  if (!h_) return absl::OkStatus();
  const bool flushed = h_->dumper == nullptr || pcap_dump_flush(h_->dumper) == 0;
  h_.reset();
  if (!flushed) return absl::DataLossError(absl::StrCat("pcap ", path_, ": write failed"));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<PcapFrame>> ReadPcap(const std::string& path) {
  char err[PCAP_ERRBUF_SIZE] = {};
  std::unique_ptr<pcap_t, decltype(&pcap_close)> p(pcap_open_offline(path.c_str(), err),
                                                   &pcap_close);
  if (!p) return absl::InvalidArgumentError(absl::StrCat("pcap ", path, ": ", err));
  if (pcap_datalink(p.get()) != DLT_EN10MB) {
    return absl::InvalidArgumentError(
        absl::StrCat("pcap ", path, ": link type ", pcap_datalink(p.get()), " is not Ethernet"));
  }
  std::vector<PcapFrame> out;
  pcap_pkthdr* hdr = nullptr;
  const u_char* data = nullptr;
  int rc;
  while ((rc = pcap_next_ex(p.get(), &hdr, &data)) == 1) {
    PcapFrame f;
    f.data.assign(data, data + hdr->caplen);
    f.ts_ns = static_cast<uint64_t>(hdr->ts.tv_sec) * 1'000'000'000ull +
              static_cast<uint64_t>(hdr->ts.tv_usec) * 1000ull;
    out.push_back(std::move(f));
  }
  if (rc == PCAP_ERROR) {
    return absl::DataLossError(absl::StrCat("pcap ", path, ": ", pcap_geterr(p.get())));
  }
  return out;
}

absl::Status WritePcap(const std::string& path, std::span<const PcapFrame> frames) {
  absl::StatusOr<std::unique_ptr<PcapWriter>> w = PcapWriter::Open(path);
  if (!w.ok()) return w.status();
  for (const PcapFrame& f : frames) (*w)->Write(f.data, f.ts_ns);
  return (*w)->Close();
}

absl::StatusOr<PcapRunStats> RunPcap(SimNic& nic, const std::string& in_path,
                                     const std::string& out_path, PortId in_port) {
  absl::StatusOr<std::vector<PcapFrame>> in = ReadPcap(in_path);
  if (!in.ok()) return in.status();
  absl::StatusOr<std::unique_ptr<PcapWriter>> out = PcapWriter::Open(out_path);
  if (!out.ok()) return out.status();
  PcapRunStats st;
  constexpr size_t kBurst = 64;
  PacketBatch batch(kBurst, 9216 + 64);
  for (size_t i = 0; i < in->size(); i += kBurst) {
    batch.Clear();
    const size_t n = std::min(kBurst, in->size() - i);
    std::vector<uint64_t> ts;
    for (size_t k = 0; k < n; ++k) {
      const PcapFrame& f = (*in)[i + k];
      ++st.read;
      if (batch.Add(f.data, in_port)) {
        ts.push_back(f.ts_ns);
      } else {
        ++st.dropped;  // larger than a jumbo frame: a NIC would not receive it either
      }
    }
    nic.ProcessBatch(batch);
    for (size_t k = 0; k < batch.size(); ++k) {
      switch (batch.result(k).verdict) {
        case Verdict::kForward:
          ++st.forwarded;
          break;
        case Verdict::kReject:
          ++st.rejected;
          break;
        case Verdict::kPunt:
          ++st.punted;
          continue;
        case Verdict::kDrop:
          ++st.dropped;
          continue;
      }
      (*out)->Write(batch.frame(k), ts[k]);
      ++st.written;
    }
  }
  if (absl::Status s = (*out)->Close(); !s.ok()) return s;
  return st;
}

}  // namespace nicflow::sim
