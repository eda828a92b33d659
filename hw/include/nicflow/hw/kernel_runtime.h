// KernelRuntime: the OpenCL side of the FPGA backend -- device selection, kernel build or binary
// load, device buffers (two image copies, control word, connection table, counters, batch I/O)
// and kernel launches.
//
// One runtime serves PoCL (the kernel source is compiled at run time with clBuildProgram), any
// other OpenCL device, and an Alveo through XRT's OpenCL platform (a prebuilt .xclbin loaded with
// clCreateProgramWithBinary). OpenCL types stay inside hw/src; this header is plain C++.
//
// Double buffering: UpdateImage() writes the changed ranges into the copy the kernel does not
// use, flips the control word the kernel reads at the start of each batch, then brings the other
// copy up to date. A batch therefore sees either the old image or the new one, never a mix.
//
// Thread-safety: none; one owner calls everything (the command queue is in order).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nicflow/hw/image.h"

namespace nicflow::hw {

/// Which device to open. Names match by case-insensitive substring; empty matches anything.
struct DeviceSelector {
  std::string platform;
  std::string device;
  std::string xclbin;         ///< prebuilt binary (Alveo); empty: build the kernel source
  std::string build_options;  ///< appended to "-cl-std=CL1.2"
  /// Scatter the commit log with the nf_ct_scatter kernel; false writes each record with its
  /// own transfer (what a prebuilt binary without that kernel gets; tests and the bench's
  /// before/after figure use it).
  bool ct_scatter_kernel = true;
};

struct DeviceInfo {
  std::string platform;
  std::string device;
  std::string version;
  bool from_source = true;  ///< false when loaded from an xclbin
};

/// Every OpenCL platform/device pair present. Errors: Unavailable when the ICD has no platform.
absl::StatusOr<std::vector<DeviceInfo>> ListDevices();

/// The kernel source as built: image_format.h followed by match_action.cl.
std::string_view MatchActionKernelSource();

/// One packet of a batch.
struct BatchFrame {
  std::span<const uint8_t> frame;
  uint32_t in_port = 0;
  uint8_t port_class = 0;
};

/// Kernel output for a batch: NF_R_WORDS words per packet and the frames as they leave.
struct BatchOutput {
  std::vector<uint32_t> results;
  std::vector<uint8_t> frames;  ///< concatenated, at `offsets`
  std::vector<uint32_t> offsets;
  std::span<const uint32_t> result(size_t i) const;
  std::span<const uint8_t> frame(size_t i, size_t len) const {
    return {frames.data() + offsets[i], len};
  }
};

class KernelRuntime {
 public:
  /// Opens the first device matching `sel` and builds or loads the kernel. Errors: NotFound
  /// listing the platforms and devices present; InvalidArgument with the build log when the
  /// kernel does not compile; Unavailable when the xclbin cannot be read.
  static absl::StatusOr<std::unique_ptr<KernelRuntime>> Open(const DeviceSelector& sel);
  ~KernelRuntime();

  const DeviceInfo& info() const;

  /// Allocates device buffers for an image of `image_words`, a connection table of `ct_words`
  /// and `counter_words` counters, and uploads `image` to both copies (zeroing the rest).
  absl::Status LoadImage(std::span<const uint32_t> image, uint32_t ct_words,
                         uint32_t counter_words);
  /// Double-buffered update with the ranges of `image` (the host mirror) that changed.
  absl::Status UpdateImage(std::span<const uint32_t> image, std::span<const WordRange> dirty);
  /// Writes words of the connection table (blocking), after any logged writes.
  absl::Status WriteCt(uint32_t at, std::span<const uint32_t> words);
  /// Logs a write of the connection table (the words are copied) in the commit log: the host
  /// side of a command ring. The log goes to the device as one transfer, scattered into the
  /// table by the nf_ct_scatter kernel, in log order, before the next kernel launch or
  /// connection-table read or write (SubmitCt() sends it earlier). Errors: OutOfRange past the
  /// table's end.
  absl::Status WriteCtAsync(uint32_t at, std::span<const uint32_t> words);
  /// Queues the commit log (one transfer and one scatter launch) without waiting.
  absl::Status SubmitCt();
  /// Queues the commit log and waits until every queued connection-table write has landed.
  absl::Status FlushCt();
  /// Reads words of the connection table (blocking), after any logged writes.
  absl::Status ReadCt(uint32_t at, std::span<uint32_t> out);
  absl::Status WriteCounters(uint32_t at, std::span<const uint32_t> words);
  absl::Status ReadCounters(std::span<uint32_t> out);
  /// Which image copy the kernel reads (0 or 1).
  uint32_t active_copy() const;
  /// Reads one image copy back (tests of the double buffer).
  absl::Status ReadImageCopy(uint32_t copy, std::span<uint32_t> out);

  /// Runs the kernel over `frames` (each at most NF_MAX_FRAME_BYTES). `now_ns` is the time
  /// conntrack and affinity use. Errors: InvalidArgument for an oversized frame, Internal for an
  /// OpenCL failure (with its code).
  absl::Status Run(std::span<const BatchFrame> frames, uint64_t now_ns, BatchOutput& out);

  struct Impl;

 private:
  explicit KernelRuntime(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace nicflow::hw
