// Measures the nicflow-device-plugin binary as the kubelet sees it:
//   * Allocate and GetPreferredAllocation latency (p50/p99/max) over the unix socket;
//   * time from a health change in sysfs to the ListAndWatch update, for changes inotify sees
//     (fake trees, driver bind/unbind, VF add/remove) and for those only the poll timer sees
//     (carrier changes on real sysfs);
//   * resident memory and idle CPU of the plugin process with 256 VFs;
//   * the cost of one discovery pass over 256 VFs.
// Usage: device_plugin_bench [--vfs N] [--allocs N] [--health-rounds N] [--binary PATH]
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <numeric>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "fake_kubelet.h"
#include "fake_sysfs.h"
#include "nicflow/device_plugin/sysfs_scanner.h"

extern char** environ;

namespace {

namespace fs = std::filesystem;
namespace dp = nicflow::device_plugin;
namespace dpt = nicflow::device_plugin::testing;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr char kResource[] = "nicflow.io/vf";

struct Options {
  int vfs = 256;
  int allocs = 5000;
  int health_rounds = 30;
  int poll_ms = 500;
  bool only_allocate = false;
  std::string binary = NICFLOW_DEVICE_PLUGIN_BINARY;
};

double Micros(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

struct Summary {
  double p50 = 0, p99 = 0, max = 0, mean = 0;
};

Summary Summarize(std::vector<double> samples) {
  std::sort(samples.begin(), samples.end());
  const auto at = [&](double q) {
    return samples[std::min(samples.size() - 1, static_cast<size_t>(q * samples.size()))];
  };
  return {at(0.50), at(0.99), samples.back(),
          std::accumulate(samples.begin(), samples.end(), 0.0) / samples.size()};
}

// Four PFs on two NUMA nodes: two ConnectX with RDMA, two E810 with vfio-pci VFs.
std::vector<dpt::FakePf> Layout(int total_vfs) {
  std::vector<dpt::FakePf> pfs;
  const char* addresses[] = {"0000:3b:00.0", "0000:3b:00.1", "0000:af:00.0", "0000:af:00.1"};
  for (int i = 0; i < 4; ++i) {
    dpt::FakePf pf;
    pf.address = addresses[i];
    pf.netdev = (i < 2 ? "ens1f" : "ens7f") + std::to_string(i % 2);
    pf.numa_node = i < 2 ? 0 : 1;
    pf.total_vfs = pf.num_vfs = total_vfs / 4;
    if (i < 2) {
      pf.rdma = true;
    } else {
      pf.vendor = "8086";
      pf.pf_device = "1593";
      pf.vf_device = "1889";
      pf.pf_driver = "ice";
      pf.vf_driver = "vfio-pci";
      pf.vf_netdevs = false;
      pf.first_iommu_group = 100 + i * 100;
    }
    pfs.push_back(pf);
  }
  return pfs;
}

class PluginProcess {
 public:
  PluginProcess(const std::string& binary, const std::vector<std::string>& args) {
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(binary.c_str()));
    for (const auto& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);
    if (posix_spawn(&pid_, binary.c_str(), nullptr, nullptr, argv.data(), environ) != 0) {
      std::perror("posix_spawn");
      std::exit(1);
    }
  }
  ~PluginProcess() {
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
  pid_t pid() const { return pid_; }

  // Field of /proc/<pid>/status in kB (VmRSS, VmHWM).
  long StatusKb(const std::string& field) const {
    std::ifstream in("/proc/" + std::to_string(pid_) + "/status");
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind(field + ":", 0) == 0) return std::stol(line.substr(field.size() + 1));
    }
    return -1;
  }
  // utime + stime in clock ticks.
  long CpuTicks() const {
    std::ifstream in("/proc/" + std::to_string(pid_) + "/stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::istringstream fields(stat.substr(stat.rfind(')') + 2));
    std::string field;
    long utime = 0, stime = 0;
    for (int i = 3; fields >> field; ++i) {
      if (i == 14) utime = std::stol(field);
      if (i == 15) {
        stime = std::stol(field);
        break;
      }
    }
    return utime + stime;
  }

 private:
  pid_t pid_ = -1;
};

bool AllHealth(const dpt::DeviceList& devices, size_t count, const std::string& health,
               const std::string& prefix = "") {
  if (devices.size() != count) return false;
  for (const auto& device : devices) {
    if (device.id().rfind(prefix, 0) == 0 && device.health() != health) return false;
  }
  return true;
}

bool BenchAllocate(dpt::FakeKubelet& kubelet, const std::vector<std::string>& ids, int rounds) {
  std::vector<double> one, four, preferred, ping;
  for (int i = 0; i < rounds; ++i) {
    auto ping_start = Clock::now();
    if (!kubelet.PingOptions(kResource).ok()) return false;
    ping.push_back(Micros(Clock::now() - ping_start));
    const std::string& id = ids[i % ids.size()];
    auto start = Clock::now();
    if (!kubelet.Allocate(kResource, {{id}}).ok()) return false;
    one.push_back(Micros(Clock::now() - start));
    std::vector<std::string> batch;
    for (int k = 0; k < 4; ++k) batch.push_back(ids[(i * 4 + k * 17) % ids.size()]);
    std::sort(batch.begin(), batch.end());
    batch.erase(std::unique(batch.begin(), batch.end()), batch.end());
    start = Clock::now();
    if (!kubelet.Allocate(kResource, {batch}).ok()) return false;
    four.push_back(Micros(Clock::now() - start));
    start = Clock::now();
    if (!kubelet.GetPreferredAllocation(kResource, ids, {}, 4).ok()) return false;
    preferred.push_back(Micros(Clock::now() - start));
  }
  const auto print = [&](const char* what, const std::vector<double>& samples) {
    const Summary s = Summarize(samples);
    std::printf("%-44s p50 %7.1f us  p99 %7.1f us  max %7.1f us  (n=%zu)\n", what, s.p50, s.p99,
                s.max, samples.size());
  };
  print("baseline: GetDevicePluginOptions (no work)", ping);
  print("Allocate, 1 VF", one);
  print("Allocate, 4 VFs", four);
  print("GetPreferredAllocation, 4 of all VFs", preferred);
  return true;
}

// Time from a sysfs edit to the kubelet seeing the whole PF's VFs change health.
bool BenchHealth(dpt::FakeKubelet& kubelet, dpt::FakeSysfs& sysfs, size_t count, int rounds,
                 bool via_inotify, std::chrono::milliseconds timeout) {
  const std::string pf = "0000:af:00.0";
  const fs::path operstate = sysfs.root() / "devices/pci0000:00" / pf / "net/ens7f0/operstate";
  const fs::path alias = sysfs.root() / "operstate-alias";
  if (!via_inotify && !fs::exists(alias)) fs::create_hard_link(operstate, alias);
  const std::string vf_prefix = sysfs.VfAddress(pf, 0).substr(0, 8);
  std::vector<double> samples;
  for (int i = 0; i < rounds; ++i) {
    for (const char* state : {"down", "up"}) {
      const auto start = Clock::now();
      if (via_inotify) {
        sysfs.SetOperState(pf, state);
      } else {
        std::ofstream(alias, std::ios::in | std::ios::out | std::ios::trunc) << state << "\n";
      }
      const std::string want = std::strcmp(state, "down") == 0 ? "Unhealthy" : "Healthy";
      const auto seen = kubelet.WaitForDevices(
          kResource, [&](const dpt::DeviceList& d) { return AllHealth(d, count, want, vf_prefix); },
          timeout);
      if (!seen) {
        std::fprintf(stderr, "health change not seen within %lld ms\n",
                     static_cast<long long>(timeout.count()));
        return false;
      }
      samples.push_back(Micros(Clock::now() - start) / 1000.0);
    }
  }
  const Summary s = Summarize(samples);
  std::printf("%-44s p50 %7.1f ms  p99 %7.1f ms  max %7.1f ms  (n=%zu)\n",
              via_inotify ? "health change -> ListAndWatch (inotify)"
                          : "health change -> ListAndWatch (poll timer)",
              s.p50, s.p99, s.max, samples.size());
  return true;
}

// Time from a kubelet restart (its sockets deleted, kubelet.sock re-created) to the plugin's
// next registration, and from an sriov_numvfs change to the kubelet seeing one VF fewer, then
// the VF back.
bool BenchRestartAndNumVfs(dpt::FakeKubelet& kubelet, dpt::FakeSysfs& sysfs, size_t count,
                           int rounds) {
  std::vector<double> restart, numvfs;
  for (int i = 0; i < rounds; ++i) {
    const int before = static_cast<int>(kubelet.registrations().size());
    const auto start = Clock::now();
    if (!kubelet.Restart().ok() || !kubelet.WaitForRegistrations(kResource, before + 1, 5s)) {
      std::fprintf(stderr, "no re-registration within 5 s of a kubelet restart\n");
      return false;
    }
    restart.push_back(Micros(Clock::now() - start) / 1000.0);
    // The kubelet only asks for devices again once the new registration's stream is up.
    if (!kubelet.WaitForDevices(
            kResource, [&](const dpt::DeviceList& d) { return d.size() == count; }, 5s)) {
      return false;
    }
  }
  const std::string pf = "0000:af:00.0";
  const int vfs = std::stoi([&] {
    std::ifstream in(sysfs.root() / "devices/pci0000:00" / pf / "sriov_numvfs");
    std::string text;
    in >> text;
    return text;
  }());
  for (int i = 0; i < rounds; ++i) {
    for (const int n : {vfs - 1, vfs}) {
      const size_t want = count - static_cast<size_t>(vfs - n);
      const auto start = Clock::now();
      sysfs.SetNumVfs(pf, n);
      if (!kubelet.WaitForDevices(
              kResource, [&](const dpt::DeviceList& d) { return d.size() == want; }, 5s)) {
        std::fprintf(stderr, "sriov_numvfs change not seen within 5 s\n");
        return false;
      }
      numvfs.push_back(Micros(Clock::now() - start) / 1000.0);
    }
  }
  const auto print = [](const char* what, const std::vector<double>& samples) {
    const Summary s = Summarize(samples);
    std::printf("%-44s p50 %7.1f ms  p99 %7.1f ms  max %7.1f ms  (n=%zu)\n", what, s.p50, s.p99,
                s.max, samples.size());
  };
  print("kubelet restart -> registered again", restart);
  print("sriov_numvfs change -> ListAndWatch", numvfs);
  return true;
}

void BenchScan(const fs::path& root) {
  dp::SysfsScanner scanner(root, dp::MakeSysfsRdmaLocator());
  const auto cold_start = Clock::now();
  if (!scanner.Scan().ok()) return;
  std::printf("%-44s %7.1f ms\n", "first discovery pass (cold, reads everything)",
              Micros(Clock::now() - cold_start) / 1000.0);
  std::vector<double> samples;
  for (int i = 0; i < 50; ++i) {
    const auto start = Clock::now();
    if (!scanner.Scan().ok()) return;
    samples.push_back(Micros(Clock::now() - start));
  }
  const Summary s = Summarize(samples);
  std::printf("%-44s p50 %7.1f us  p99 %7.1f us  max %7.1f us  (n=%zu)\n",
              "discovery pass (warm cache)", s.p50, s.p99, s.max, samples.size());
}

Options ParseArgs(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--only-allocate") options.only_allocate = true;
  }
  for (int i = 1; i + 1 < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--vfs") options.vfs = std::stoi(argv[i + 1]);
    if (flag == "--allocs") options.allocs = std::stoi(argv[i + 1]);
    if (flag == "--health-rounds") options.health_rounds = std::stoi(argv[i + 1]);
    if (flag == "--binary") options.binary = argv[i + 1];
    if (flag == "--poll-ms") options.poll_ms = std::stoi(argv[i + 1]);
  }
  return options;
}

}  // namespace

int main(int argc, char** argv) {
  const Options options = ParseArgs(argc, argv);
  const fs::path base = fs::exists("/dev/shm") ? "/dev/shm" : fs::temp_directory_path();
  const fs::path root = base / ("nicflow-dp-bench-" + std::to_string(::getpid()));
  fs::create_directories(root / "device-plugins");
  dpt::FakeSysfs sysfs(root / "sys");
  for (const auto& pf : Layout(options.vfs)) sysfs.AddPf(pf);
  std::ofstream(root / "config.json")
      << R"({"resourceList": [{"resourceName": "vf", "selectors": {"vendors": ["15b3", "8086"]}}]})";

  dpt::FakeKubelet kubelet(root / "device-plugins");
  if (!kubelet.Start().ok()) return 1;
  const auto started = Clock::now();
  auto plugin = std::make_unique<PluginProcess>(
      options.binary,
      std::vector<std::string>{"--config", (root / "config.json").string(), "--kubelet-dir",
                               (root / "device-plugins").string(), "--sysfs-root",
                               (root / "sys").string(), "--log-level", "error",
                               "--poll-interval-ms", std::to_string(options.poll_ms)});
  const size_t count = static_cast<size_t>(options.vfs);
  const auto listed = kubelet.WaitForDevices(
      kResource, [&](const dpt::DeviceList& d) { return AllHealth(d, count, "Healthy"); }, 10s);
  if (!listed) {
    std::fprintf(stderr, "plugin did not advertise %zu VFs\n", count);
    plugin.reset();
    fs::remove_all(root);
    return 1;
  }
  std::printf("nicflow-device-plugin, %d VFs on 4 PFs (2 ConnectX+RDMA, 2 E810 vfio-pci)\n",
              options.vfs);
  std::printf("%-44s %7.1f ms\n", "start -> registered -> first device list",
              Micros(Clock::now() - started) / 1000.0);
  std::vector<std::string> ids;
  for (const auto& device : *listed) ids.push_back(device.id());

  const auto poll_timeout = std::chrono::milliseconds(options.poll_ms * 2 + 1000);
  if (options.only_allocate) {
    const bool ok = BenchAllocate(kubelet, ids, options.allocs);
    plugin.reset();
    fs::remove_all(root);
    return ok ? 0 : 1;
  }
  if (!BenchAllocate(kubelet, ids, options.allocs) ||
      !BenchHealth(kubelet, sysfs, count, options.health_rounds, /*via_inotify=*/true, 5s) ||
      !BenchHealth(kubelet, sysfs, count, std::max(5, options.health_rounds / 3),
                   /*via_inotify=*/false, poll_timeout) ||
      !BenchRestartAndNumVfs(kubelet, sysfs, count, std::max(5, options.health_rounds / 3))) {
    plugin.reset();
    fs::remove_all(root);
    return 1;
  }

  const long ticks_before = plugin->CpuTicks();
  std::this_thread::sleep_for(5s);
  const double idle_cpu = 100.0 * (plugin->CpuTicks() - ticks_before) / sysconf(_SC_CLK_TCK) / 5.0;
  std::printf("%-44s %7.2f %% of one core\n", "idle CPU (5 s window)", idle_cpu);
  std::printf("%-44s %7.1f MiB (peak %.1f MiB)\n", "plugin RSS", plugin->StatusKb("VmRSS") / 1024.0,
              plugin->StatusKb("VmHWM") / 1024.0);
  BenchScan(root / "sys");
  plugin.reset();  // SIGTERM and wait before the tree goes away
  kubelet.Stop();
  fs::remove_all(root);
  return 0;
}
