// Pod <-> VF binding in the agent: a kubelet stand-in serving PodResources v1 on a unix socket,
// a fake sysfs, and the ports the device is told about.
#include "nicflow/agent/pod_binding.h"

#include <gtest/gtest.h>

#include <mutex>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "agent_test_util.h"
#include "nicflow/agent/agent.h"
#include "nicflow/host/sim_device.h"
#include "nicflow/sim/profile.h"

#ifdef NICFLOW_HAVE_K8S
#include "fake_pod_resources.h"
#endif

namespace nicflow::agent {
namespace {

using testing::TempDir;

// A simulated device that remembers the ports it was last told about.
class RecordingDevice final : public host::Device {
 public:
  RecordingDevice() : sim_(*sim::BuiltinProfile("unlimited")) {}
  std::string_view name() const override { return sim_.name(); }
  const host::Capabilities& capabilities() const override { return sim_.capabilities(); }
  absl::Status Install(const flowtables::Program& p) override {
    Record(p.ports);
    return sim_.Install(p);
  }
  absl::Status Apply(const flowtables::Delta& d) override { return sim_.Apply(d); }
  absl::Status DeclarePorts(const std::vector<flowtables::PortDecl>& ports) override {
    Record(ports);
    return sim_.DeclarePorts(ports);
  }
  absl::StatusOr<flowtables::Program> ReadBack() const override { return sim_.ReadBack(); }
  absl::StatusOr<host::EntryCounter> GetEntryCounter(std::string_view key) const override {
    return sim_.GetEntryCounter(key);
  }
  absl::StatusOr<host::TableCounter> GetTableCounter(flowtables::TableId t) const override {
    return sim_.GetTableCounter(t);
  }
  /// The VF the device was last told pod port `pod` sits on; "-" when not declared.
  std::string VfOf(const std::string& pod) const {
    std::lock_guard lock(mu_);
    for (const flowtables::PortDecl& d : ports_) {
      if (d.ref.ToString() == "vf:" + pod) return d.vf_pci;
    }
    return "-";
  }

 private:
  void Record(const std::vector<flowtables::PortDecl>& ports) {
    std::lock_guard lock(mu_);
    ports_ = ports;
  }
  host::SimDevice sim_;
  mutable std::mutex mu_;
  std::vector<flowtables::PortDecl> ports_;
};

// The VF of `pod`'s port in the program the agent installed (dump-flows -o json).
std::string InstalledVf(const Agent& agent, const std::string& pod) {
  auto dump = agent.DumpFlowsJson("");
  if (!dump.ok()) return "?";
  for (const auto& p : (*dump)["ports"]) {
    if (p["port"] == "vf:" + pod) return p.value("vf", "");
  }
  return "-";
}

TEST(PodBinder, ConfigReadsTheSocketPeriodSysfsAndRteFlowVfPorts) {
  auto c = ParseConfig(R"(
backend: {type: rteflow, vf_ports: {"0000:3b:00.2": 1, "0000:3b:00.3": 2}}
inputs: {manifests: /m, pod_resources_socket: /k.sock, pod_resources_interval_s: 5,
         sysfs_root: /host/sys}
)",
                       "nicflowd.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->inputs.pod_resources_socket, "/k.sock");
  EXPECT_EQ(c->inputs.pod_resources_interval_s, 5u);
  EXPECT_EQ(c->inputs.sysfs_root, "/host/sys");
  EXPECT_EQ(c->backend.vf_ports,
            (std::map<std::string, uint16_t>{{"0000:3b:00.2", 1}, {"0000:3b:00.3", 2}}));
  auto bad = ParseConfig(
      "backend: {vf_ports: {\"0000:3b:00.2\": 70000}}\ninputs: {manifests: /m}\n", "c.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(),
            "c.yaml: backend.vf_ports.0000:3b:00.2: expected an integer 0-65535, got \"70000\"");
}

TEST(PodBinder, WithoutTheKubeletSocketKeepsWorkingAndSaysWhy) {
  TempDir dir;
  AgentConfig c = testing::ShopConfig(dir);
  c.inputs.pod_resources_socket = dir.Sub("no-kubelet.sock");
  auto device = std::make_unique<RecordingDevice>();
  Backend b;
  b.device = std::move(device);
  Agent agent(c, std::move(b));
  ASSERT_TRUE(agent.Sync("start").ok());
  nlohmann::json st = agent.StatusJson();
  EXPECT_TRUE(st["healthy"].get<bool>());
  EXPECT_EQ(st["pod_resources"]["state"], "unavailable");
  EXPECT_NE(st["pod_resources"]["message"].get<std::string>().find("does not exist"),
            std::string::npos)
      << st["pod_resources"];
  EXPECT_EQ(st["pod_resources"]["list_errors"], 1);
  EXPECT_EQ(InstalledVf(agent, "shop/web-1"), "");
  EXPECT_NE(agent.MetricsText().find("nicflow_pod_resources_errors_total 1"), std::string::npos);
  EXPECT_NE(agent.MetricsText().find("nicflow_pod_vf_bindings 0"), std::string::npos);
}

#ifdef NICFLOW_HAVE_K8S

namespace fs = std::filesystem;

// PF 0000:3b:00.0 with VFs .2, .3, .4 (virtfn0..2).
void MakeSysfs(const fs::path& root) {
  fs::path devs = root / "bus/pci/devices";
  fs::create_directories(devs / "0000:3b:00.0/net/ens1f0");
  for (int i = 0; i < 3; ++i) {
    std::string vf = absl::StrCat("0000:3b:00.", i + 2);
    fs::create_directories(devs / vf);
    fs::create_directory_symlink("../" + vf, devs / absl::StrCat("0000:3b:00.0/virtfn", i));
    fs::create_directory_symlink("../0000:3b:00.0", devs / vf / "physfn");
  }
}

::v1::ListPodResourcesResponse Kubelet(const std::string& web_vf, const std::string& cart_vf) {
  ::v1::ListPodResourcesResponse r;
  for (auto [name, container, vf] :
       {std::tuple{"web-1", "web", web_vf}, std::tuple{"cart-1", "cart", cart_vf}}) {
    auto* pod = r.add_pod_resources();
    pod->set_name(name);
    pod->set_namespace_("shop");
    auto* c = pod->add_containers();
    c->set_name(container);
    auto* d = c->add_devices();
    d->set_resource_name("nicflow.io/vf");
    d->add_device_ids(vf);
  }
  return r;
}

TEST(PodBinder, BindsPodPortsToTheirVfsAndFollowsAPodMovedToAnotherVf) {
  TempDir dir;
  MakeSysfs(dir.Sub("sys"));
  std::string socket = dir.Sub("kubelet.sock");
  auto kubelet = k8s::testing::FakePodResources::Start(socket);
  ASSERT_TRUE(kubelet.ok()) << kubelet.status();
  (*kubelet)->SetResponse(Kubelet("0000:3b:00.2", "0000:3b:00.3"));

  AgentConfig c = testing::ShopConfig(dir);
  c.inputs.pod_resources_socket = socket;
  c.inputs.sysfs_root = dir.Sub("sys");
  c.inputs.pod_resources_interval_s = 1;
  auto device = std::make_unique<RecordingDevice>();
  RecordingDevice* recorded = device.get();
  Backend b;
  b.device = std::move(device);
  Agent agent(c, std::move(b));
  ASSERT_TRUE(agent.Start().ok());

  EXPECT_EQ(InstalledVf(agent, "shop/web-1"), "0000:3b:00.2");
  EXPECT_EQ(InstalledVf(agent, "shop/cart-1"), "0000:3b:00.3");
  EXPECT_EQ(recorded->VfOf("shop/web-1"), "0000:3b:00.2");
  EXPECT_EQ(recorded->VfOf("shop/cart-1"), "0000:3b:00.3");
  EXPECT_EQ(InstalledVf(agent, "monitoring/prom-0"), "") << "a pod the kubelet gave no VF";
  nlohmann::json pr = agent.StatusJson()["pod_resources"];
  EXPECT_EQ(pr["state"], "ok") << pr;
  ASSERT_EQ(pr["bindings"].size(), 2u) << pr;
  EXPECT_EQ(pr["bindings"][1]["pod"], "shop/web-1");
  EXPECT_EQ(pr["bindings"][1]["pf"], "0000:3b:00.0");
  EXPECT_EQ(pr["bindings"][1]["vf_index"], 0);
  EXPECT_NE(agent.MetricsText().find("nicflow_pod_vf_bindings 2"), std::string::npos);

  // web-1 is rescheduled onto VF .4: the periodic listing notices without a manifest change.
  const uint64_t before = agent.events().Last(1).back().seq;
  (*kubelet)->SetResponse(Kubelet("0000:3b:00.4", "0000:3b:00.3"));
  Event moved = testing::WaitForEvent(agent.events(), before, "applied");
  ASSERT_NE(moved.seq, 0u) << "no sync after the pod moved";
  EXPECT_NE(moved.message.find("pod resources changed"), std::string::npos) << moved.message;
  EXPECT_NE(moved.message.find("ports changed"), std::string::npos) << moved.message;
  EXPECT_EQ(InstalledVf(agent, "shop/web-1"), "0000:3b:00.4");
  EXPECT_EQ(recorded->VfOf("shop/web-1"), "0000:3b:00.4");
  EXPECT_EQ(recorded->VfOf("shop/cart-1"), "0000:3b:00.3");
  EXPECT_EQ(agent.StatusJson()["pod_resources"]["bindings"][1]["vf_index"], 2);

  // The kubelet goes away: the pods keep their VFs, the failures are counted and shown.
  kubelet->reset();
  std::error_code ec;
  fs::remove(socket, ec);
  ASSERT_TRUE(agent.Sync("resync").ok());
  pr = agent.StatusJson()["pod_resources"];
  EXPECT_EQ(pr["state"], "unavailable") << pr;
  EXPECT_GE(pr["list_errors"].get<int>(), 1);
  EXPECT_EQ(InstalledVf(agent, "shop/web-1"), "0000:3b:00.4");
  agent.Stop();
}

#endif  // NICFLOW_HAVE_K8S

}  // namespace
}  // namespace nicflow::agent
