// FpgaDevice: the Device backed by the FPGA match-action kernel (nicflow::hw::FpgaPipeline) on an
// OpenCL device -- PoCL on the CPU here, an Alveo through XRT's OpenCL platform with --xclbin.
//
// Capabilities come from the table image's geometry: every table has a TCAM of
// `tcam_rows_per_table` rows (any entry fits there), plus an exact-match hash unit and an LPM unit
// that take the entries they can; placement therefore sees the TCAM size as the guaranteed
// wildcard capacity and TCAM + half the hash slots (hash chains fill before every slot does) for
// exact tables. Range matches wider than 32 bits are the one thing the kernel cannot express;
// Apply() answers Unimplemented for them.
//
// Read-back returns the program the image encodes (the host mirror of device memory, which the
// driver writes and never lets diverge); counters are read from device memory.
//
// Thread-safety: one thread at a time, as every Device.
#pragma once

#if __has_include("nicflow/hw/fpga_pipeline.h")
#define NICFLOW_HOST_HAVE_FPGA 1

#include <memory>
#include <string>

#include "nicflow/host/device.h"
#include "nicflow/hw/fpga_pipeline.h"

namespace nicflow::host {

/// Capabilities of an FPGA image of geometry `g`.
Capabilities CapabilitiesFromGeometry(const hw::ImageGeometry& g);

class FpgaDevice final : public Device {
 public:
  /// Opens the OpenCL device `options.selector` names and builds (or loads) the kernel. Errors:
  /// NotFound listing the devices present; InvalidArgument with the kernel build log.
  static absl::StatusOr<std::unique_ptr<FpgaDevice>> Open(hw::FpgaOptions options);

  std::string_view name() const override { return name_; }
  const Capabilities& capabilities() const override { return caps_; }
  absl::Status Install(const flowtables::Program& p) override;
  absl::Status Apply(const flowtables::Delta& d) override;
  absl::Status DeclarePorts(const std::vector<flowtables::PortDecl>& ports) override;
  absl::StatusOr<flowtables::Program> ReadBack() const override;
  absl::StatusOr<EntryCounter> GetEntryCounter(std::string_view entry_key) const override;
  absl::StatusOr<TableCounter> GetTableCounter(flowtables::TableId table) const override;

  /// The datapath (packets, traces, conntrack).
  hw::FpgaPipeline& pipeline() { return *pipeline_; }

 private:
  explicit FpgaDevice(std::unique_ptr<hw::FpgaPipeline> p, Capabilities caps);
  std::unique_ptr<hw::FpgaPipeline> pipeline_;
  std::string name_;
  Capabilities caps_;
  std::vector<flowtables::PortDecl> ports_;
};

}  // namespace nicflow::host

#endif  // __has_include("nicflow/hw/fpga_pipeline.h")
