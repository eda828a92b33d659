// The PodResources client against a fake kubelet on a unix socket, and VF resolution against a
// fake sysfs tree shaped like the kernel's (physfn and virtfnN links, net/ directories).
#include "nicflow/k8s/pod_resources.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "fake_pod_resources.h"

namespace nicflow::k8s {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            absl::StrCat("nicflow-podres-", ::getpid(), "-",
                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// sysfs with PF 0000:3b:00.0 (ens1f0) and VFs .2 (virtfn0, ens1f0v0 still in the host) and .3
// (virtfn1, its netdev moved into a pod).
void MakeSysfs(const fs::path& root) {
  fs::path devs = root / "bus/pci/devices";
  fs::create_directories(devs / "0000:3b:00.0/net/ens1f0");
  fs::create_directories(devs / "0000:3b:00.2/net/ens1f0v0");
  fs::create_directories(devs / "0000:3b:00.3");
  fs::create_directory_symlink("../0000:3b:00.2", devs / "0000:3b:00.0/virtfn0");
  fs::create_directory_symlink("../0000:3b:00.3", devs / "0000:3b:00.0/virtfn1");
  fs::create_directory_symlink("../0000:3b:00.0", devs / "0000:3b:00.2/physfn");
  fs::create_directory_symlink("../0000:3b:00.0", devs / "0000:3b:00.3/physfn");
}

v1::ListPodResourcesResponse KubeletAnswer() {
  v1::ListPodResourcesResponse r;
  auto* web = r.add_pod_resources();
  web->set_name("web-0");
  web->set_namespace_("shop");
  auto* c = web->add_containers();
  c->set_name("web");
  auto* d = c->add_devices();
  d->set_resource_name("nicflow.io/vf");
  d->add_device_ids("0000:3b:00.3");
  d->mutable_topology()->add_nodes()->set_id(1);
  auto* gpu = c->add_devices();
  gpu->set_resource_name("nvidia.com/gpu");
  gpu->add_device_ids("GPU-8f1c");
  auto* db = r.add_pod_resources();
  db->set_name("db-0");
  db->set_namespace_("shop");
  auto* dc = db->add_containers();
  dc->set_name("pg");
  auto* dd = dc->add_devices();
  dd->set_resource_name("nicflow.io/vf");
  dd->add_device_ids("0000:3b:00.2");
  return r;
}

TEST(PodResources, ListsDevicesFromTheKubeletAndResolvesVfs) {
  TempDir dir;
  std::string socket = (dir.path() / "kubelet.sock").string();
  auto fake = testing::FakePodResources::Start(socket);
  ASSERT_TRUE(fake.ok()) << fake.status();
  (*fake)->SetResponse(KubeletAnswer());
  auto client = PodResourcesClient::Create(socket);
  ASSERT_TRUE(client.ok()) << client.status();
  auto devices = (*client)->List();
  ASSERT_TRUE(devices.ok()) << devices.status();
  ASSERT_EQ(devices->size(), 3u);
  EXPECT_EQ((*devices)[0].pod, "web-0");
  EXPECT_EQ((*devices)[0].resource_name, "nicflow.io/vf");
  EXPECT_THAT((*devices)[0].numa_nodes, ElementsAre(1));
  EXPECT_EQ((*devices)[1].resource_name, "nvidia.com/gpu");

  MakeSysfs(dir.path() / "sys");
  VfResolveOptions options;
  options.sysfs_root = (dir.path() / "sys").string();
  VfResolution r = ResolvePodVfs(*devices, options);
  EXPECT_TRUE(r.problems.empty());
  ASSERT_EQ(r.vfs.size(), 2u);  // the GPU is not ours
  EXPECT_EQ(r.vfs[0].pod, "db-0");
  EXPECT_EQ(r.vfs[0].pci_address, "0000:3b:00.2");
  EXPECT_EQ(r.vfs[0].vf_index, 0);
  EXPECT_EQ(r.vfs[0].netdev, "ens1f0v0");
  EXPECT_EQ(r.vfs[1].pod, "web-0");
  EXPECT_EQ(r.vfs[1].container, "web");
  EXPECT_EQ(r.vfs[1].pf_pci_address, "0000:3b:00.0");
  EXPECT_EQ(r.vfs[1].pf_netdev, "ens1f0");
  EXPECT_EQ(r.vfs[1].vf_index, 1);
  EXPECT_EQ(r.vfs[1].netdev, "");
  EXPECT_EQ((*fake)->list_calls(), 1);
}

TEST(PodResources, UnresolvableDevicesAreReportedByName) {
  TempDir dir;
  MakeSysfs(dir.path());
  std::vector<PodDevice> devices = {
      {"shop", "a", "c", "nicflow.io/vf", "vf-7", {}},
      {"shop", "b", "c", "nicflow.io/vf", "0000:5e:00.4", {}},
      {"shop", "c", "c", "example.com/vf", "0000:3b:00.2", {}},
  };
  VfResolveOptions options;
  options.sysfs_root = dir.path().string();
  options.resources = {"nicflow.io/vf", "example.com/"};
  VfResolution r = ResolvePodVfs(devices, options);
  ASSERT_EQ(r.problems.size(), 2u);
  EXPECT_THAT(r.problems[0], HasSubstr("pod shop/a container c: nicflow.io/vf device \"vf-7\""));
  EXPECT_THAT(r.problems[0], HasSubstr("not a PCI address"));
  EXPECT_THAT(r.problems[1], HasSubstr("\"0000:5e:00.4\": no such PCI device"));
  ASSERT_EQ(r.vfs.size(), 1u);
  EXPECT_EQ(r.vfs[0].pod, "c");
}

TEST(PodResources, UnreachableKubeletNamesTheSocket) {
  TempDir dir;
  std::string socket = (dir.path() / "absent.sock").string();
  auto client = PodResourcesClient::Create(socket, std::chrono::milliseconds(300));
  ASSERT_TRUE(client.ok());
  auto devices = (*client)->List();
  ASSERT_FALSE(devices.ok());
  EXPECT_THAT(std::string(devices.status().message()), HasSubstr(socket));
  EXPECT_EQ(PodResourcesClient::Create("relative.sock").status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace nicflow::k8s
