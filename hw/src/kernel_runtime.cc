// KernelRuntime: OpenCL device selection, program build/load, buffers and launches.
#include "nicflow/hw/kernel_runtime.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <deque>
#include <fstream>
#include <iterator>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cl_handles.h"
#include "nicflow/flowtables/status.h"
#include "nicflow/hw/image_format.h"

namespace nicflow::hw {
namespace {

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}
bool Contains(const std::string& hay, const std::string& needle) {
  return needle.empty() || Lower(hay).find(Lower(needle)) != std::string::npos;
}

std::string PlatformString(cl_platform_id p, cl_platform_info what) {
  size_t n = 0;
  if (clGetPlatformInfo(p, what, 0, nullptr, &n) != CL_SUCCESS || n == 0) return "";
  std::string s(n, '\0');
  clGetPlatformInfo(p, what, n, s.data(), nullptr);
  s.resize(std::strlen(s.c_str()));
  return s;
}
std::string DeviceString(cl_device_id d, cl_device_info what) {
  size_t n = 0;
  if (clGetDeviceInfo(d, what, 0, nullptr, &n) != CL_SUCCESS || n == 0) return "";
  std::string s(n, '\0');
  clGetDeviceInfo(d, what, n, s.data(), nullptr);
  s.resize(std::strlen(s.c_str()));
  return s;
}

struct Found {
  cl_platform_id platform = nullptr;
  cl_device_id device = nullptr;
  DeviceInfo info;
};

absl::StatusOr<std::vector<Found>> Enumerate() {
  cl_uint np = 0;
  if (clGetPlatformIDs(0, nullptr, &np) != CL_SUCCESS || np == 0) {
    return absl::UnavailableError(
        "OpenCL: no platform found (is an ICD such as pocl-opencl-icd or XRT installed?)");
  }
  std::vector<cl_platform_id> ps(np);
  clGetPlatformIDs(np, ps.data(), nullptr);
  std::vector<Found> out;
  for (cl_platform_id p : ps) {
    cl_uint nd = 0;
    if (clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, 0, nullptr, &nd) != CL_SUCCESS) continue;
    std::vector<cl_device_id> ds(nd);
    clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, nd, ds.data(), nullptr);
    for (cl_device_id d : ds) {
      Found f{p,
              d,
              {PlatformString(p, CL_PLATFORM_NAME), DeviceString(d, CL_DEVICE_NAME),
               DeviceString(d, CL_DEVICE_VERSION), true}};
      out.push_back(std::move(f));
    }
  }
  return out;
}

absl::Status ClCheck(cl_int err, std::string_view what) {
  if (err == CL_SUCCESS) return absl::OkStatus();
  return absl::InternalError(absl::StrCat("OpenCL: ", Sv(what), ": ", ClErrorName(err)));
}

}  // namespace

std::string ClErrorName(cl_int err) {
  const char* name = "unknown error";
  switch (err) {
    case CL_DEVICE_NOT_FOUND:
      name = "CL_DEVICE_NOT_FOUND";
      break;
    case CL_DEVICE_NOT_AVAILABLE:
      name = "CL_DEVICE_NOT_AVAILABLE";
      break;
    case CL_COMPILER_NOT_AVAILABLE:
      name = "CL_COMPILER_NOT_AVAILABLE";
      break;
    case CL_MEM_OBJECT_ALLOCATION_FAILURE:
      name = "CL_MEM_OBJECT_ALLOCATION_FAILURE";
      break;
    case CL_OUT_OF_RESOURCES:
      name = "CL_OUT_OF_RESOURCES";
      break;
    case CL_OUT_OF_HOST_MEMORY:
      name = "CL_OUT_OF_HOST_MEMORY";
      break;
    case CL_BUILD_PROGRAM_FAILURE:
      name = "CL_BUILD_PROGRAM_FAILURE";
      break;
    case CL_INVALID_VALUE:
      name = "CL_INVALID_VALUE";
      break;
    case CL_INVALID_BINARY:
      name = "CL_INVALID_BINARY";
      break;
    case CL_INVALID_BUFFER_SIZE:
      name = "CL_INVALID_BUFFER_SIZE";
      break;
    case CL_INVALID_KERNEL_NAME:
      name = "CL_INVALID_KERNEL_NAME";
      break;
    case CL_INVALID_KERNEL_ARGS:
      name = "CL_INVALID_KERNEL_ARGS";
      break;
    case CL_INVALID_WORK_GROUP_SIZE:
      name = "CL_INVALID_WORK_GROUP_SIZE";
      break;
    case CL_INVALID_MEM_OBJECT:
      name = "CL_INVALID_MEM_OBJECT";
      break;
    case CL_INVALID_COMMAND_QUEUE:
      name = "CL_INVALID_COMMAND_QUEUE";
      break;
    default:
      break;
  }
  return absl::StrCat(name, " (", err, ")");
}

absl::StatusOr<std::vector<DeviceInfo>> ListDevices() {
  NICFLOW_ASSIGN_OR_RETURN(auto found, Enumerate());
  std::vector<DeviceInfo> out;
  for (const Found& f : found) out.push_back(f.info);
  return out;
}

std::span<const uint32_t> BatchOutput::result(size_t i) const {
  return {results.data() + i * NF_R_WORDS, NF_R_WORDS};
}

struct KernelRuntime::Impl {
  DeviceInfo info;
  cl_device_id device = nullptr;
  ClContext context;
  ClQueue queue;
  ClProgram program;
  ClKernel kernel;
  ClKernel scatter;  // nf_ct_scatter; null when a prebuilt binary lacks it
  ClMem image[2], ctrl, ct, counters, frames_in, frames_out, desc, results, ct_log;
  size_t image_words = 0, ct_words = 0, counter_words = 0;
  size_t frames_cap = 0, packets_cap = 0, ct_log_cap = 0;
  size_t work_group = 1;  // the kernel's maximum work-group size on the device
  uint32_t active = 0;
  std::vector<uint32_t> desc_host;
  // The commit log: records [at, n, n words] of connection-table writes not yet submitted.
  std::vector<uint32_t> ct_log_host;
  // Host words of queued non-blocking transfers; freed once the queue has drained past them.
  std::deque<std::vector<uint32_t>> staging;
  // Drained staging buffers, kept for the next logs: a batch of new connections logs ~400 KB,
  // and a fresh vector each batch would be a fresh mmap and its page faults.
  std::vector<std::vector<uint32_t>> spare;

  void Drained() {
    for (auto& v : staging) {
      v.clear();
      spare.push_back(std::move(v));
    }
    staging.clear();
  }
  std::vector<uint8_t> frames_host;

  absl::StatusOr<ClMem> Buffer(size_t bytes, cl_mem_flags flags) {
    cl_int err = CL_SUCCESS;
    cl_mem m = clCreateBuffer(context.get(), flags, std::max<size_t>(bytes, 4), nullptr, &err);
    NICFLOW_RETURN_IF_ERROR(ClCheck(err, absl::StrCat("clCreateBuffer(", bytes, " bytes)")));
    return ClMem(m);
  }
  absl::Status Write(const ClMem& m, size_t offset_bytes, const void* p, size_t bytes) {
    if (bytes == 0) return absl::OkStatus();
    return ClCheck(clEnqueueWriteBuffer(queue.get(), m.get(), CL_TRUE, offset_bytes, bytes, p, 0,
                                        nullptr, nullptr),
                   "clEnqueueWriteBuffer");
  }
  absl::Status Read(const ClMem& m, size_t offset_bytes, void* p, size_t bytes) {
    if (bytes == 0) return absl::OkStatus();
    return ClCheck(clEnqueueReadBuffer(queue.get(), m.get(), CL_TRUE, offset_bytes, bytes, p, 0,
                                       nullptr, nullptr),
                   "clEnqueueReadBuffer");
  }
  absl::Status Zero(const ClMem& m, size_t bytes) {
    const uint32_t zero = 0;
    return ClCheck(clEnqueueFillBuffer(queue.get(), m.get(), &zero, sizeof zero, 0, bytes, 0,
                                       nullptr, nullptr),
                   "clEnqueueFillBuffer");
  }
  absl::Status BuildProgram(const DeviceSelector& sel);
  absl::Status EnsureBatchCapacity(size_t packets, size_t bytes);
  absl::Status SubmitCtLog();
};

// One transfer and one scatter launch for all the records logged since the last submit, instead
// of an OpenCL write per record (each ~4 us of PoCL queue overhead, five per new connection).
// Non-blocking: the in-order queue puts it before any later launch, read or write.
absl::Status KernelRuntime::Impl::SubmitCtLog() {
  if (ct_log_host.empty()) return absl::OkStatus();
  std::vector<uint32_t>& log = staging.emplace_back(std::move(ct_log_host));
  ct_log_host.clear();
  if (!spare.empty()) {
    ct_log_host.swap(spare.back());
    spare.pop_back();
  }
  if (!scatter) {  // a binary without nf_ct_scatter: one write per record
    for (size_t p = 0; p < log.size(); p += 2 + log[p + 1]) {
      NICFLOW_RETURN_IF_ERROR(ClCheck(
          clEnqueueWriteBuffer(queue.get(), ct.get(), CL_FALSE, size_t{log[p]} * 4,
                               size_t{log[p + 1]} * 4, log.data() + p + 2, 0, nullptr, nullptr),
          "clEnqueueWriteBuffer(ct)"));
    }
    return absl::OkStatus();
  }
  if (log.size() > ct_log_cap) {
    ct_log_cap = std::max<size_t>(log.size(), 16 * 1024);
    NICFLOW_ASSIGN_OR_RETURN(ct_log, Buffer(ct_log_cap * 4, CL_MEM_READ_ONLY));
  }
  NICFLOW_RETURN_IF_ERROR(
      ClCheck(clEnqueueWriteBuffer(queue.get(), ct_log.get(), CL_FALSE, 0, log.size() * 4,
                                   log.data(), 0, nullptr, nullptr),
              "clEnqueueWriteBuffer(ct log)"));
  const cl_mem ct_mem = ct.get(), log_mem = ct_log.get();
  const cl_uint log_words = static_cast<cl_uint>(log.size());
  const cl_uint table_words = static_cast<cl_uint>(ct_words);
  cl_kernel k = scatter.get();
  NICFLOW_RETURN_IF_ERROR(ClCheck(clSetKernelArg(k, 0, sizeof ct_mem, &ct_mem), "clSetKernelArg"));
  NICFLOW_RETURN_IF_ERROR(
      ClCheck(clSetKernelArg(k, 1, sizeof log_mem, &log_mem), "clSetKernelArg"));
  NICFLOW_RETURN_IF_ERROR(
      ClCheck(clSetKernelArg(k, 2, sizeof log_words, &log_words), "clSetKernelArg"));
  NICFLOW_RETURN_IF_ERROR(
      ClCheck(clSetKernelArg(k, 3, sizeof table_words, &table_words), "clSetKernelArg"));
  const size_t one = 1;
  return ClCheck(
      clEnqueueNDRangeKernel(queue.get(), k, 1, nullptr, &one, &one, 0, nullptr, nullptr),
      "clEnqueueNDRangeKernel(nf_ct_scatter)");
}

absl::Status KernelRuntime::Impl::BuildProgram(const DeviceSelector& sel) {
  cl_int err = CL_SUCCESS;
  cl_program p = nullptr;
  if (!sel.xclbin.empty()) {
    std::ifstream in(sel.xclbin, std::ios::binary);
    if (!in) return absl::UnavailableError(absl::StrCat("xclbin ", sel.xclbin, ": cannot read"));
    std::vector<unsigned char> bin((std::istreambuf_iterator<char>(in)),
                                   std::istreambuf_iterator<char>());
    const unsigned char* data = bin.data();
    const size_t size = bin.size();
    cl_int bin_status = CL_SUCCESS;
    p = clCreateProgramWithBinary(context.get(), 1, &device, &size, &data, &bin_status, &err);
    if (err != CL_SUCCESS || bin_status != CL_SUCCESS) {
      return absl::InvalidArgumentError(absl::StrCat(
          "xclbin ", sel.xclbin, ": ", ClErrorName(err != CL_SUCCESS ? err : bin_status),
          " (built for another device or shell?)"));
    }
    info.from_source = false;
  } else {
    const std::string_view src = MatchActionKernelSource();
    const char* text = src.data();
    const size_t len = src.size();
    p = clCreateProgramWithSource(context.get(), 1, &text, &len, &err);
    NICFLOW_RETURN_IF_ERROR(ClCheck(err, "clCreateProgramWithSource"));
  }
  program = ClProgram(p);
  const std::string opts = absl::StrCat("-cl-std=CL1.2 ", sel.build_options);
  err = clBuildProgram(program.get(), 1, &device, opts.c_str(), nullptr, nullptr);
  if (err != CL_SUCCESS) {
    size_t n = 0;
    clGetProgramBuildInfo(program.get(), device, CL_PROGRAM_BUILD_LOG, 0, nullptr, &n);
    std::string log(n, '\0');
    clGetProgramBuildInfo(program.get(), device, CL_PROGRAM_BUILD_LOG, n, log.data(), nullptr);
    return absl::InvalidArgumentError(absl::StrCat("OpenCL: building match_action.cl for ",
                                                   info.device, " failed: ", ClErrorName(err), "\n",
                                                   log));
  }
  kernel = ClKernel(clCreateKernel(program.get(), "nf_match_action", &err));
  NICFLOW_RETURN_IF_ERROR(ClCheck(err, "clCreateKernel(nf_match_action)"));
  // Optional: an xclbin built before the commit log existed has only nf_match_action.
  cl_kernel scatter_kernel = clCreateKernel(program.get(), "nf_ct_scatter", &err);
  if (err == CL_SUCCESS) scatter = ClKernel(scatter_kernel);
  if (!sel.ct_scatter_kernel) scatter = ClKernel();
  return ClCheck(clGetKernelWorkGroupInfo(kernel.get(), device, CL_KERNEL_WORK_GROUP_SIZE,
                                          sizeof work_group, &work_group, nullptr),
                 "clGetKernelWorkGroupInfo");
}

absl::StatusOr<std::unique_ptr<KernelRuntime>> KernelRuntime::Open(const DeviceSelector& sel) {
  NICFLOW_ASSIGN_OR_RETURN(auto found, Enumerate());
  const Found* pick = nullptr;
  for (const Found& f : found) {
    if (Contains(f.info.platform, sel.platform) && Contains(f.info.device, sel.device)) {
      pick = &f;
      break;
    }
  }
  if (pick == nullptr) {
    std::vector<std::string> names;
    for (const Found& f : found)
      names.push_back(absl::StrCat("'", f.info.platform, "' / '", f.info.device, "'"));
    return absl::NotFoundError(absl::StrCat(
        "OpenCL: no device matches platform '", sel.platform, "' device '", sel.device,
        "'; available (platform / device): ", names.empty() ? "none" : absl::StrJoin(names, ", ")));
  }
  auto impl = std::make_unique<Impl>();
  impl->info = pick->info;
  impl->device = pick->device;
  cl_int err = CL_SUCCESS;
  const cl_context_properties props[] = {
      CL_CONTEXT_PLATFORM, reinterpret_cast<cl_context_properties>(pick->platform), 0};
  impl->context = ClContext(clCreateContext(props, 1, &impl->device, nullptr, nullptr, &err));
  NICFLOW_RETURN_IF_ERROR(ClCheck(err, "clCreateContext"));
  impl->queue = ClQueue(clCreateCommandQueue(impl->context.get(), impl->device, 0, &err));
  NICFLOW_RETURN_IF_ERROR(ClCheck(err, "clCreateCommandQueue"));
  NICFLOW_RETURN_IF_ERROR(impl->BuildProgram(sel));
  return std::unique_ptr<KernelRuntime>(new KernelRuntime(std::move(impl)));
}

KernelRuntime::KernelRuntime(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
KernelRuntime::~KernelRuntime() {
  if (impl_ && impl_->queue) clFinish(impl_->queue.get());
}

const DeviceInfo& KernelRuntime::info() const { return impl_->info; }
uint32_t KernelRuntime::active_copy() const { return impl_->active; }

absl::Status KernelRuntime::LoadImage(std::span<const uint32_t> image, uint32_t ct_words,
                                      uint32_t counter_words) {
  Impl& m = *impl_;
  NICFLOW_RETURN_IF_ERROR(m.SubmitCtLog());  // logged writes go to the table they were made for
  const size_t bytes = image.size_bytes();
  for (int c = 0; c < 2; ++c) {
    NICFLOW_ASSIGN_OR_RETURN(m.image[c], m.Buffer(bytes, CL_MEM_READ_ONLY));
    NICFLOW_RETURN_IF_ERROR(m.Write(m.image[c], 0, image.data(), bytes));
  }
  NICFLOW_ASSIGN_OR_RETURN(m.ctrl, m.Buffer(4, CL_MEM_READ_ONLY));
  // The connection table outlives a reinstall of the program (connections keep their NAT).
  if (!m.ct || m.ct_words != ct_words) {
    NICFLOW_ASSIGN_OR_RETURN(m.ct, m.Buffer(size_t{ct_words} * 4, CL_MEM_READ_WRITE));
    NICFLOW_RETURN_IF_ERROR(m.Zero(m.ct, size_t{ct_words} * 4));
  }
  NICFLOW_ASSIGN_OR_RETURN(m.counters, m.Buffer(size_t{counter_words} * 4, CL_MEM_READ_WRITE));
  NICFLOW_RETURN_IF_ERROR(m.Zero(m.counters, size_t{counter_words} * 4));
  m.active = 0;
  NICFLOW_RETURN_IF_ERROR(m.Write(m.ctrl, 0, &m.active, 4));
  m.image_words = image.size();
  m.ct_words = ct_words;
  m.counter_words = counter_words;
  return ClCheck(clFinish(m.queue.get()), "clFinish");
}

absl::Status KernelRuntime::UpdateImage(std::span<const uint32_t> image,
                                        std::span<const WordRange> dirty) {
  Impl& m = *impl_;
  if (image.size() != m.image_words) {
    return absl::FailedPreconditionError("fpga: image size changed; LoadImage() it instead");
  }
  const uint32_t shadow = m.active ^ 1u;
  for (const WordRange& r : dirty) {
    NICFLOW_RETURN_IF_ERROR(m.Write(m.image[shadow], size_t{r.begin} * 4, image.data() + r.begin,
                                    size_t{r.end - r.begin} * 4));
  }
  // The flip: batches launched from now on read the updated copy.
  NICFLOW_RETURN_IF_ERROR(m.Write(m.ctrl, 0, &shadow, 4));
  NICFLOW_RETURN_IF_ERROR(ClCheck(clFinish(m.queue.get()), "clFinish"));
  m.active = shadow;
  // Catch the old copy up, so the next update starts from two equal copies.
  for (const WordRange& r : dirty) {
    NICFLOW_RETURN_IF_ERROR(m.Write(m.image[shadow ^ 1u], size_t{r.begin} * 4,
                                    image.data() + r.begin, size_t{r.end - r.begin} * 4));
  }
  return absl::OkStatus();
}

absl::Status KernelRuntime::WriteCt(uint32_t at, std::span<const uint32_t> words) {
  if (at + words.size() > impl_->ct_words) return absl::OutOfRangeError("fpga: ct write past end");
  NICFLOW_RETURN_IF_ERROR(impl_->SubmitCtLog());  // logged writes come first
  return impl_->Write(impl_->ct, size_t{at} * 4, words.data(), words.size_bytes());
}
absl::Status KernelRuntime::WriteCtAsync(uint32_t at, std::span<const uint32_t> words) {
  Impl& m = *impl_;
  if (at + words.size() > m.ct_words) return absl::OutOfRangeError("fpga: ct write past end");
  m.ct_log_host.push_back(at);
  m.ct_log_host.push_back(static_cast<uint32_t>(words.size()));
  m.ct_log_host.insert(m.ct_log_host.end(), words.begin(), words.end());
  return absl::OkStatus();
}

absl::Status KernelRuntime::SubmitCt() { return impl_->SubmitCtLog(); }

absl::Status KernelRuntime::FlushCt() {
  Impl& m = *impl_;
  NICFLOW_RETURN_IF_ERROR(m.SubmitCtLog());
  if (m.staging.empty()) return absl::OkStatus();
  NICFLOW_RETURN_IF_ERROR(ClCheck(clFinish(m.queue.get()), "clFinish"));
  m.Drained();
  return absl::OkStatus();
}

absl::Status KernelRuntime::ReadCt(uint32_t at, std::span<uint32_t> out) {
  if (at + out.size() > impl_->ct_words) return absl::OutOfRangeError("fpga: ct read past end");
  NICFLOW_RETURN_IF_ERROR(impl_->SubmitCtLog());
  return impl_->Read(impl_->ct, size_t{at} * 4, out.data(), out.size_bytes());
}
absl::Status KernelRuntime::WriteCounters(uint32_t at, std::span<const uint32_t> words) {
  if (at + words.size() > impl_->counter_words) return absl::OutOfRangeError("fpga: counters");
  return impl_->Write(impl_->counters, size_t{at} * 4, words.data(), words.size_bytes());
}
absl::Status KernelRuntime::ReadCounters(std::span<uint32_t> out) {
  const size_t n = std::min(out.size(), impl_->counter_words);
  return impl_->Read(impl_->counters, 0, out.data(), n * 4);
}
absl::Status KernelRuntime::ReadImageCopy(uint32_t copy, std::span<uint32_t> out) {
  const size_t n = std::min(out.size(), impl_->image_words);
  return impl_->Read(impl_->image[copy & 1u], 0, out.data(), n * 4);
}

absl::Status KernelRuntime::Impl::EnsureBatchCapacity(size_t packets, size_t bytes) {
  if (packets > packets_cap) {
    packets_cap = std::max<size_t>(packets, 64);
    NICFLOW_ASSIGN_OR_RETURN(desc, Buffer(packets_cap * NF_PKT_DESC_WORDS * 4, CL_MEM_READ_ONLY));
    NICFLOW_ASSIGN_OR_RETURN(results, Buffer(packets_cap * NF_R_WORDS * 4, CL_MEM_WRITE_ONLY));
  }
  if (bytes > frames_cap) {
    frames_cap = std::max<size_t>(bytes, 64 * 1024);
    NICFLOW_ASSIGN_OR_RETURN(frames_in, Buffer(frames_cap, CL_MEM_READ_ONLY));
    NICFLOW_ASSIGN_OR_RETURN(frames_out, Buffer(frames_cap, CL_MEM_WRITE_ONLY));
  }
  return absl::OkStatus();
}

absl::Status KernelRuntime::Run(std::span<const BatchFrame> frames, uint64_t now_ns,
                                BatchOutput& out) {
  Impl& m = *impl_;
  if (!m.image[0]) return absl::FailedPreconditionError("fpga: no image loaded");
  const size_t n = frames.size();
  out.results.resize(n * NF_R_WORDS);
  out.offsets.resize(n);
  if (n == 0) return absl::OkStatus();
  m.desc_host.resize(n * NF_PKT_DESC_WORDS);
  size_t bytes = 0;
  for (size_t i = 0; i < n; ++i) {
    if (frames[i].frame.size() > NF_MAX_FRAME_BYTES) {
      return absl::InvalidArgumentError(absl::StrCat("fpga: frame ", i, " of ",
                                                     frames[i].frame.size(), " bytes exceeds ",
                                                     NF_MAX_FRAME_BYTES));
    }
    out.offsets[i] = static_cast<uint32_t>(bytes);
    m.desc_host[i * NF_PKT_DESC_WORDS] = static_cast<uint32_t>(bytes);
    m.desc_host[i * NF_PKT_DESC_WORDS + 1] = static_cast<uint32_t>(frames[i].frame.size());
    m.desc_host[i * NF_PKT_DESC_WORDS + 2] = frames[i].in_port;
    m.desc_host[i * NF_PKT_DESC_WORDS + 3] = frames[i].port_class;
    bytes += (frames[i].frame.size() + 63) & ~size_t{63};
  }
  m.frames_host.resize(bytes);
  for (size_t i = 0; i < n; ++i) {
    if (frames[i].frame.empty()) continue;  // a zero-length frame has no data() to copy
    std::memcpy(m.frames_host.data() + out.offsets[i], frames[i].frame.data(),
                frames[i].frame.size());
  }
  NICFLOW_RETURN_IF_ERROR(m.EnsureBatchCapacity(n, bytes));
  // The previous round's connection-table writes land before this batch looks anything up.
  NICFLOW_RETURN_IF_ERROR(m.SubmitCtLog());
  // Non-blocking transfers: the queue is in order and the final read waits for all of them.
  NICFLOW_RETURN_IF_ERROR(ClCheck(
      clEnqueueWriteBuffer(m.queue.get(), m.desc.get(), CL_FALSE, 0, n * NF_PKT_DESC_WORDS * 4,
                           m.desc_host.data(), 0, nullptr, nullptr),
      "clEnqueueWriteBuffer(desc)"));
  NICFLOW_RETURN_IF_ERROR(
      ClCheck(clEnqueueWriteBuffer(m.queue.get(), m.frames_in.get(), CL_FALSE, 0, bytes,
                                   m.frames_host.data(), 0, nullptr, nullptr),
              "clEnqueueWriteBuffer(frames)"));
  const cl_uint count = static_cast<cl_uint>(n);
  const cl_uint now_lo = static_cast<cl_uint>(now_ns);
  const cl_uint now_hi = static_cast<cl_uint>(now_ns >> 32);
  cl_kernel k = m.kernel.get();
  const cl_mem args[] = {m.image[0].get(),   m.image[1].get(), m.ctrl.get(),
                         m.ct.get(),         m.counters.get(), m.frames_in.get(),
                         m.frames_out.get(), m.desc.get(),     m.results.get()};
  for (cl_uint i = 0; i < 9; ++i) {
    NICFLOW_RETURN_IF_ERROR(
        ClCheck(clSetKernelArg(k, i, sizeof(cl_mem), &args[i]), "clSetKernelArg"));
  }
  NICFLOW_RETURN_IF_ERROR(ClCheck(clSetKernelArg(k, 9, sizeof count, &count), "clSetKernelArg"));
  NICFLOW_RETURN_IF_ERROR(ClCheck(clSetKernelArg(k, 10, sizeof now_lo, &now_lo), "clSetKernelArg"));
  NICFLOW_RETURN_IF_ERROR(ClCheck(clSetKernelArg(k, 11, sizeof now_hi, &now_hi), "clSetKernelArg"));
  // Work-groups of up to 64 packets (the kernel ignores ids past `count`): fewer, larger
  // groups amortise a CPU device's per-group scheduling.
  const size_t local = std::min<size_t>(m.work_group, 64);
  const size_t global = (n + local - 1) / local * local;
  NICFLOW_RETURN_IF_ERROR(ClCheck(
      clEnqueueNDRangeKernel(m.queue.get(), k, 1, nullptr, &global, &local, 0, nullptr, nullptr),
      "clEnqueueNDRangeKernel"));
  out.frames.resize(bytes);
  NICFLOW_RETURN_IF_ERROR(
      ClCheck(clEnqueueReadBuffer(m.queue.get(), m.results.get(), CL_FALSE, 0, n * NF_R_WORDS * 4,
                                  out.results.data(), 0, nullptr, nullptr),
              "clEnqueueReadBuffer(results)"));
  NICFLOW_RETURN_IF_ERROR(m.Read(m.frames_out, 0, out.frames.data(), bytes));
  m.Drained();  // the blocking read drained the in-order queue
  return absl::OkStatus();
}

}  // namespace nicflow::hw
