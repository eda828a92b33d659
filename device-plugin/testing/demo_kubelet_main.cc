// nicflow-dp-demo-kubelet: the test kubelet as a command, to try the plugin without a cluster
// and to capture the outputs shown in docs/device-plugin.md.
//
//   nicflow-dp-demo-kubelet --make-sysfs DIR          build a fake tree (2 ConnectX PFs with
//                                                      RDMA VFs, 1 E810 PF with vfio-pci VFs)
//   nicflow-dp-demo-kubelet --kubelet-dir DIR --resource NAME [--allocate ID[,ID]]
//                          [--prefer N] [--watch-seconds S]
//       serve kubelet.sock, wait for NAME to register, print its device list(s), then
//       optionally ask GetPreferredAllocation for N devices and Allocate the given IDs.
#include <cstdio>
#include <iostream>
#include <thread>

#include "CLI/CLI.hpp"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "fake_kubelet.h"
#include "fake_sysfs.h"
#include "google/protobuf/util/json_util.h"

namespace {

namespace dpt = nicflow::device_plugin::testing;
using namespace std::chrono_literals;

void MakeSysfs(const std::string& dir) {
  dpt::FakeSysfs sysfs(dir);
  for (int i = 0; i < 2; ++i) {
    dpt::FakePf pf;
    pf.address = i == 0 ? "0000:3b:00.0" : "0000:3b:00.1";
    pf.netdev = "ens1f" + std::to_string(i);
    pf.pf_device = "101d";
    pf.vf_device = "101e";
    pf.numa_node = 0;
    pf.num_vfs = 2;
    pf.rdma = true;
    sysfs.AddPf(pf);
  }
  dpt::FakePf e810;
  e810.address = "0000:af:00.0";
  e810.vendor = "8086";
  e810.pf_device = "1593";
  e810.vf_device = "1889";
  e810.pf_driver = "ice";
  e810.vf_driver = "vfio-pci";
  e810.netdev = "ens7f0";
  e810.numa_node = 1;
  e810.num_vfs = 2;
  e810.vf_netdevs = false;
  e810.first_iommu_group = 140;
  sysfs.AddPf(e810);
  std::printf("fake sysfs with 3 PFs and 6 VFs in %s\n", dir.c_str());
}

void PrintDevices(const dpt::DeviceList& devices) {
  for (const auto& device : devices) {
    std::printf("  %s  %-9s numa=%s\n", device.id().c_str(), device.health().c_str(),
                device.has_topology() && device.topology().nodes_size() > 0
                    ? std::to_string(device.topology().nodes(0).id()).c_str()
                    : "-");
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"test kubelet for nicflow-device-plugin"};
  std::string make_sysfs, kubelet_dir, resource, allocate;
  int prefer = 0, watch_seconds = 0;
  app.add_option("--make-sysfs", make_sysfs, "build a fake sysfs tree here and exit");
  app.add_option("--kubelet-dir", kubelet_dir, "directory for kubelet.sock");
  app.add_option("--resource", resource, "resource to wait for, e.g. nicflow.io/vf");
  app.add_option("--allocate", allocate, "comma-separated device IDs to Allocate");
  app.add_option("--prefer", prefer, "ask GetPreferredAllocation for this many devices");
  app.add_option("--watch-seconds", watch_seconds, "keep printing device list updates");
  CLI11_PARSE(app, argc, argv);
  if (!make_sysfs.empty()) {
    MakeSysfs(make_sysfs);
    return 0;
  }
  dpt::FakeKubelet kubelet(kubelet_dir);
  if (!kubelet.Start().ok()) return 1;
  std::printf("kubelet.sock listening in %s; waiting for %s\n", kubelet_dir.c_str(),
              resource.c_str());
  if (!kubelet.WaitForRegistrations(resource, 1, 60s)) return 1;
  const auto request = kubelet.registrations().back();
  std::printf("Register: version=%s endpoint=%s resource=%s preferred_allocation=%d\n",
              request.version().c_str(), request.endpoint().c_str(),
              request.resource_name().c_str(),
              request.options().get_preferred_allocation_available());
  auto devices = kubelet.WaitForDevices(
      resource, [](const auto&) { return true; }, 10s);
  if (!devices) return 1;
  std::printf("ListAndWatch:\n");
  PrintDevices(*devices);
  std::vector<std::string> ids;
  for (const auto& device : *devices) ids.push_back(device.id());
  if (prefer > 0) {
    auto preferred = kubelet.GetPreferredAllocation(resource, ids, {}, prefer);
    if (!preferred.ok()) return 1;
    std::printf("GetPreferredAllocation(%d): %s\n", prefer, absl::StrJoin(*preferred, ",").c_str());
  }
  if (!allocate.empty()) {
    const std::vector<std::string> wanted = absl::StrSplit(allocate, ',');
    auto response = kubelet.Allocate(resource, {wanted});
    if (!response.ok()) {
      std::printf("Allocate failed: %s\n", std::string(response.status().ToString()).c_str());
    } else {
      std::string json;
      google::protobuf::util::JsonPrintOptions options;
      options.add_whitespace = true;
      (void)google::protobuf::util::MessageToJsonString(*response, &json, options);
      std::printf("Allocate:\n%s", json.c_str());
    }
  }
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(watch_seconds);
  int seen = kubelet.Updates(resource);
  while (std::chrono::steady_clock::now() < end) {
    std::this_thread::sleep_for(50ms);
    if (kubelet.Updates(resource) > seen) {
      seen = kubelet.Updates(resource);
      std::printf("ListAndWatch update:\n");
      PrintDevices(kubelet.Devices(resource));
      std::fflush(stdout);
    }
  }
  kubelet.Stop();
  return 0;
}
