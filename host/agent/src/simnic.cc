#include "nicflow/agent/simnic.h"

#include <chrono>

#include "grpc_util.h"
#include "nicflow/agent/v1/device.grpc.pb.h"
#include "nicflow/flowtables/program_json.h"
#include "nicflow/host/sim_device.h"
#include "nicflow/sim/profile.h"

namespace nicflow::agent {

namespace v1 = ::nicflow::agent::v1;

namespace {

absl::StatusOr<nlohmann::json> ParseJson(const std::string& text, std::string_view what) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError(absl::StrCat(Sv(what), ": not JSON"));
  return j;
}

nlohmann::json PortsOnly(const std::vector<flowtables::PortDecl>& ports) {
  flowtables::Program p;
  p.ports = ports;
  return flowtables::ProgramToJson(p);
}

class DeviceService final : public v1::Device::Service {
 public:
  DeviceService(sim::SimNic& nic, std::mutex& mu, std::function<void()> on_ports,
                sim::SoftwareDatapath* software)
      : nic_(nic), mu_(mu), on_ports_(std::move(on_ports)), software_(software) {}

  grpc::Status Describe(grpc::ServerContext*, const v1::Empty*, v1::DescribeReply* out) override {
    std::lock_guard lock(mu_);
    out->set_name(absl::StrCat("sim:", nic_.profile().name));
    out->set_profile(nic_.profile().name);
    out->set_software_path(software_ != nullptr);
    return grpc::Status::OK;
  }

  grpc::Status Install(grpc::ServerContext*, const v1::ProgramJson* in, v1::Empty*) override {
    auto j = ParseJson(in->json(), "program");
    if (!j.ok()) return ToGrpc(j.status());
    auto p = flowtables::ProgramFromJson(*j);
    if (!p.ok()) return ToGrpc(p.status());
    std::lock_guard lock(mu_);
    absl::Status st = nic_.Install(*p);
    if (st.ok() && on_ports_) on_ports_();
    return ToGrpc(st);
  }

  grpc::Status Apply(grpc::ServerContext*, const v1::DeltaJson* in, v1::Empty*) override {
    auto j = ParseJson(in->json(), "delta");
    if (!j.ok()) return ToGrpc(j.status());
    std::lock_guard lock(mu_);
    auto d = flowtables::DeltaFromJson(*j, nic_.installed().tables);
    if (!d.ok()) return ToGrpc(d.status());
    return ToGrpc(nic_.Apply(*d));
  }

  grpc::Status DeclarePorts(grpc::ServerContext*, const v1::PortsJson* in, v1::Empty*) override {
    auto j = ParseJson(in->json(), "ports");
    if (!j.ok()) return ToGrpc(j.status());
    auto p = flowtables::ProgramFromJson(*j);
    if (!p.ok()) return ToGrpc(p.status());
    std::lock_guard lock(mu_);
    absl::Status st = nic_.DeclarePorts(p->ports);
    if (st.ok() && on_ports_) on_ports_();
    return ToGrpc(st);
  }

  grpc::Status SetSoftwareProgram(grpc::ServerContext*, const v1::SoftwareProgram* in,
                                  v1::Empty*) override {
    if (software_ == nullptr) {
      return ToGrpc(absl::FailedPreconditionError("this nicflow-simnic has no software path"));
    }
    auto j = ParseJson(in->json(), "software program");
    if (!j.ok()) return ToGrpc(j.status());
    auto p = flowtables::ProgramFromJson(*j);
    if (!p.ok()) return ToGrpc(p.status());
    std::lock_guard lock(mu_);
    sim::SimNic& sw = software_->software();
    absl::Status st;
    // A delta keeps the counters of unchanged entries; a first program or new ports reinstall.
    // (Diff refuses programs whose table schemas differ.)
    absl::StatusOr<flowtables::Delta> d = absl::FailedPreconditionError("no program");
    if (sw.has_program() && sw.installed().ports == p->ports)
      d = flowtables::Diff(sw.installed(), *p);
    st = d.ok() ? sw.Apply(*d) : sw.Install(*p);
    if (!st.ok()) {
      return ToGrpc(absl::Status(
          st.code(), absl::StrCat("software path program ", in->version(), ": ", st.message())));
    }
    software_version_ = in->version();
    return grpc::Status::OK;
  }

  grpc::Status ReadBack(grpc::ServerContext*, const v1::Empty*, v1::ProgramJson* out) override {
    std::lock_guard lock(mu_);
    nlohmann::json j = flowtables::ProgramToJson(nic_.installed());
    if (!nic_.has_program()) j["ports"] = PortsOnly({})["ports"];
    out->set_json(j.dump());
    return grpc::Status::OK;
  }

  grpc::Status GetEntryCounters(grpc::ServerContext*, const v1::EntryCountersRequest* in,
                                v1::EntryCountersReply* out) override {
    std::lock_guard lock(mu_);
    for (const std::string& key : in->keys()) {
      v1::Counter* c = out->add_counters();
      auto got = nic_.GetEntryCounters(key);
      c->set_found(got.ok());
      if (got.ok()) {
        c->set_packets(got->packets);
        c->set_bytes(got->bytes);
      }
    }
    return grpc::Status::OK;
  }

  grpc::Status GetTableCounter(grpc::ServerContext*, const v1::TableCounterRequest* in,
                               v1::TableCounterReply* out) override {
    if (in->table() > UINT16_MAX) return ToGrpc(absl::NotFoundError("no such table"));
    std::lock_guard lock(mu_);
    auto c = nic_.GetTableCounters(static_cast<flowtables::TableId>(in->table()));
    if (!c.ok()) return ToGrpc(c.status());
    out->set_packets(c->packets);
    out->set_bytes(c->bytes);
    out->set_hits(c->hits);
    out->set_misses(c->misses);
    return grpc::Status::OK;
  }

  grpc::Status Stats(grpc::ServerContext*, const v1::Empty*, v1::DatapathStats* out) override {
    std::lock_guard lock(mu_);
    const sim::DeviceCounters& c = nic_.counters();
    out->set_rx_packets(c.rx_packets);
    out->set_forwarded(c.forwarded);
    out->set_dropped(c.dropped);
    out->set_rejected(c.rejected);
    out->set_punted(c.punted);
    out->set_conntrack_entries(nic_.conntrack().size());
    out->set_conntrack_capacity(nic_.profile().conntrack_capacity);
    if (software_ != nullptr) {
      const sim::SimNic& sw = software_->software();
      out->set_software_packets(sw.counters().rx_packets);
      out->set_software_forwarded(sw.counters().forwarded);
      out->set_software_dropped(sw.counters().dropped);
      out->set_software_resumed(software_->stats().resumed);
      out->set_software_steered(software_->stats().steered);
      out->set_software_conntrack_entries(sw.conntrack().size());
      out->set_software_program_version(software_version_);
    }
    return grpc::Status::OK;
  }

 private:
  sim::SimNic& nic_;
  std::mutex& mu_;
  std::function<void()> on_ports_;
  sim::SoftwareDatapath* software_;
  uint64_t software_version_ = 0;  // under mu_
};

// host::Device over the Device RPC. Calls are synchronous with a deadline, so a hung simnic
// surfaces as DeadlineExceeded (the reconciler rolls back) instead of a hung agent.
class RemoteDevice final : public host::Device {
 public:
  RemoteDevice(std::shared_ptr<grpc::Channel> channel, std::string name, host::Capabilities caps)
      : stub_(v1::Device::NewStub(channel)), name_(std::move(name)), caps_(std::move(caps)) {}

  std::string_view name() const override { return name_; }
  const host::Capabilities& capabilities() const override { return caps_; }

  absl::Status Install(const flowtables::Program& p) override {
    v1::ProgramJson req;
    req.set_json(flowtables::ProgramToJson(p).dump());
    v1::Empty resp;
    auto ctx = Context();
    absl::Status st = FromGrpc(stub_->Install(ctx.get(), req, &resp), name_);
    if (st.ok()) {
      flowtables::Program schema;
      schema.tables = p.tables;
      schema_ = std::move(schema);
    }
    return st;
  }

  absl::Status Apply(const flowtables::Delta& d) override {
    // Tables are named in the delta's JSON; only the schemas matter for that.
    if (!schema_) {
      NICFLOW_ASSIGN_OR_RETURN(flowtables::Program back, ReadBack());
      schema_ = std::move(back);
    }
    v1::DeltaJson req;
    req.set_json(flowtables::DeltaToJson(d, *schema_).dump());
    v1::Empty resp;
    auto ctx = Context();
    return FromGrpc(stub_->Apply(ctx.get(), req, &resp), name_);
  }

  absl::Status DeclarePorts(const std::vector<flowtables::PortDecl>& ports) override {
    v1::PortsJson req;
    req.set_json(PortsOnly(ports).dump());
    v1::Empty resp;
    auto ctx = Context();
    return FromGrpc(stub_->DeclarePorts(ctx.get(), req, &resp), name_);
  }

  absl::StatusOr<flowtables::Program> ReadBack() const override {
    v1::Empty req;
    v1::ProgramJson resp;
    auto ctx = Context();
    NICFLOW_RETURN_IF_ERROR(FromGrpc(stub_->ReadBack(ctx.get(), req, &resp), name_));
    NICFLOW_ASSIGN_OR_RETURN(nlohmann::json j, ParseJson(resp.json(), "read-back"));
    NICFLOW_ASSIGN_OR_RETURN(flowtables::Program p, flowtables::ProgramFromJson(j));
    flowtables::Program schema;
    schema.tables = p.tables;
    schema.entries.resize(p.tables.size());
    schema_ = std::move(schema);
    return p;
  }

  absl::StatusOr<std::vector<host::EntryCounter>> EntryCounters(
      const std::vector<std::string>& keys) const {
    v1::EntryCountersRequest req;
    for (const std::string& k : keys) req.add_keys(k);
    v1::EntryCountersReply resp;
    auto ctx = Context();
    NICFLOW_RETURN_IF_ERROR(FromGrpc(stub_->GetEntryCounters(ctx.get(), req, &resp), name_));
    std::vector<host::EntryCounter> out;
    for (const v1::Counter& c : resp.counters()) out.push_back({c.packets(), c.bytes()});
    return out;
  }

  absl::StatusOr<host::EntryCounter> GetEntryCounter(std::string_view key) const override {
    v1::EntryCountersRequest req;
    req.add_keys(std::string(key));
    v1::EntryCountersReply resp;
    auto ctx = Context();
    NICFLOW_RETURN_IF_ERROR(FromGrpc(stub_->GetEntryCounters(ctx.get(), req, &resp), name_));
    if (resp.counters_size() != 1 || !resp.counters(0).found()) {
      return absl::NotFoundError(absl::StrCat("no installed entry ", Sv(key)));
    }
    return host::EntryCounter{resp.counters(0).packets(), resp.counters(0).bytes()};
  }

  absl::StatusOr<host::TableCounter> GetTableCounter(flowtables::TableId table) const override {
    v1::TableCounterRequest req;
    req.set_table(table);
    v1::TableCounterReply resp;
    auto ctx = Context();
    NICFLOW_RETURN_IF_ERROR(FromGrpc(stub_->GetTableCounter(ctx.get(), req, &resp), name_));
    return host::TableCounter{resp.packets(), resp.bytes(), resp.hits(), resp.misses()};
  }

  absl::StatusOr<DeviceStats> Stats() const {
    v1::Empty req;
    v1::DatapathStats resp;
    auto ctx = Context();
    NICFLOW_RETURN_IF_ERROR(FromGrpc(stub_->Stats(ctx.get(), req, &resp), name_));
    DeviceStats s{resp.rx_packets(),        resp.forwarded(), resp.dropped(),
                  resp.rejected(),          resp.punted(),    resp.conntrack_entries(),
                  resp.conntrack_capacity()};
    s.software_path = resp.software_program_version() != 0;
    s.software_packets = resp.software_packets();
    s.software_forwarded = resp.software_forwarded();
    s.software_dropped = resp.software_dropped();
    s.software_resumed = resp.software_resumed();
    s.software_steered = resp.software_steered();
    s.software_conntrack_entries = resp.software_conntrack_entries();
    s.software_program_version = resp.software_program_version();
    return s;
  }

  absl::Status SetSoftwareProgram(const flowtables::Program& whole, uint64_t version) {
    v1::SoftwareProgram req;
    req.set_json(flowtables::ProgramToJson(whole).dump());
    req.set_version(version);
    v1::Empty resp;
    auto ctx = Context();
    return FromGrpc(stub_->SetSoftwareProgram(ctx.get(), req, &resp), name_);
  }

 private:
  static std::unique_ptr<grpc::ClientContext> Context() {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    return ctx;
  }

  std::unique_ptr<v1::Device::Stub> stub_;
  std::string name_;
  host::Capabilities caps_;
  mutable std::optional<flowtables::Program> schema_;  // tables only, for naming in deltas
};

}  // namespace

struct SimNicServer::Impl {
  std::unique_ptr<DeviceService> service;
  std::unique_ptr<grpc::Server> server;
  std::string path;
};

SimNicServer::SimNicServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

SimNicServer::~SimNicServer() { Stop(); }

void SimNicServer::Stop() {
  if (impl_ && impl_->server) {
    impl_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    impl_->server->Wait();
    impl_->server.reset();
    ::unlink(impl_->path.c_str());
  }
}

void SimNicServer::Wait() {
  if (impl_ && impl_->server) impl_->server->Wait();
}

absl::StatusOr<std::unique_ptr<SimNicServer>> SimNicServer::Start(
    sim::SimNic& nic, std::mutex& nic_mu, const std::string& socket_path, uint32_t mode,
    std::function<void()> on_ports_changed, sim::SoftwareDatapath* software) {
  auto impl = std::make_unique<Impl>();
  impl->service =
      std::make_unique<DeviceService>(nic, nic_mu, std::move(on_ports_changed), software);
  impl->path = socket_path;
  grpc::ServerBuilder builder;
  builder.RegisterService(impl->service.get());
  builder.SetMaxReceiveMessageSize(256 << 20);
  builder.SetMaxSendMessageSize(256 << 20);
  NICFLOW_ASSIGN_OR_RETURN(impl->server, StartUnixServer(builder, socket_path, mode));
  return std::unique_ptr<SimNicServer>(new SimNicServer(std::move(impl)));
}

absl::StatusOr<Backend> ConnectSimNic(const std::string& socket_path, int timeout_ms) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(256 << 20);
  args.SetMaxSendMessageSize(256 << 20);
  auto channel =
      grpc::CreateCustomChannel("unix:" + socket_path, grpc::InsecureChannelCredentials(), args);
  auto stub = v1::Device::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms));
  ctx.set_wait_for_ready(true);
  v1::Empty req;
  v1::DescribeReply desc;
  NICFLOW_RETURN_IF_ERROR(
      FromGrpc(stub->Describe(&ctx, req, &desc), absl::StrCat("nicflow-simnic at ", socket_path)));
  NICFLOW_ASSIGN_OR_RETURN(sim::DeviceProfile profile, sim::BuiltinProfile(desc.profile()));
  auto device =
      std::make_unique<RemoteDevice>(channel, desc.name(), host::CapabilitiesFromProfile(profile));
  RemoteDevice* raw = device.get();
  Backend b;
  b.device = std::move(device);
  b.stats = [raw] { return raw->Stats(); };
  b.entry_counters = [raw](const std::vector<std::string>& keys) {
    return raw->EntryCounters(keys);
  };
  if (desc.software_path()) {
    b.set_software_program = [raw](const flowtables::Program& whole, uint64_t version) {
      return raw->SetSoftwareProgram(whole, version);
    };
  }
  return b;
}

}  // namespace nicflow::agent
