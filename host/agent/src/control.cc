#include "nicflow/agent/control.h"

#include <chrono>

#include "grpc_util.h"
#include "nicflow/agent/v1/control.grpc.pb.h"

namespace nicflow::agent {

namespace v1 = ::nicflow::agent::v1;
using nlohmann::json;

namespace {

grpc::Status Reply(const json& j, v1::JsonReply* out) {
  out->set_json(j.dump());
  return grpc::Status::OK;
}

grpc::Status Reply(const absl::StatusOr<json>& j, v1::JsonReply* out) {
  if (!j.ok()) return ToGrpc(j.status());
  return Reply(*j, out);
}

class ControlService final : public v1::Control::Service {
 public:
  explicit ControlService(Agent& agent) : agent_(agent) {}

  grpc::Status Status(grpc::ServerContext*, const v1::StatusRequest*, v1::JsonReply* out) override {
    return Reply(agent_.StatusJson(), out);
  }
  grpc::Status DumpFlows(grpc::ServerContext*, const v1::DumpFlowsRequest* in,
                         v1::JsonReply* out) override {
    return Reply(agent_.DumpFlowsJson(in->table()), out);
  }
  grpc::Status Stats(grpc::ServerContext*, const v1::StatsRequest*, v1::JsonReply* out) override {
    return Reply(agent_.StatsJson(), out);
  }
  grpc::Status Diff(grpc::ServerContext*, const v1::DiffRequest*, v1::JsonReply* out) override {
    return Reply(agent_.DiffJson(), out);
  }
  grpc::Status Capacity(grpc::ServerContext*, const v1::CapacityRequest*,
                        v1::JsonReply* out) override {
    return Reply(agent_.CapacityJson(), out);
  }
  grpc::Status Trace(grpc::ServerContext*, const v1::TraceRequest* in,
                     v1::JsonReply* out) override {
    TraceQuery q{in->proto(), in->src(), in->dst(), in->in_port()};
    return Reply(agent_.TraceJson(q), out);
  }
  grpc::Status Pipeline(grpc::ServerContext*, const v1::PipelineRequest*,
                        v1::JsonReply* out) override {
    return Reply(agent_.PipelineJson(), out);
  }

  grpc::Status Events(grpc::ServerContext* ctx, const v1::EventsRequest* in,
                      grpc::ServerWriter<v1::Event>* writer) override {
    uint64_t after = in->after_seq();
    EventLog& log = agent_.events();
    for (;;) {
      std::vector<Event> batch = in->follow()
                                     ? log.WaitAfter(after, std::chrono::steady_clock::now() +
                                                                std::chrono::milliseconds(200))
                                     : log.Since(after);
      for (const Event& e : batch) {
        v1::Event m;
        m.set_seq(e.seq);
        m.set_unix_ms(e.unix_ms);
        m.set_kind(e.kind);
        m.set_error(e.error);
        m.set_message(e.message);
        if (!e.detail.is_null()) m.set_detail_json(e.detail.dump());
        if (!writer->Write(m)) return grpc::Status::OK;
        after = e.seq;
      }
      if (!in->follow() || ctx->IsCancelled() || log.closed() || stopping_) break;
    }
    return grpc::Status::OK;
  }

  std::atomic<bool> stopping_{false};

 private:
  Agent& agent_;
};

}  // namespace

struct ControlServer::Impl {
  std::unique_ptr<ControlService> service;
  std::unique_ptr<grpc::Server> server;
  std::string path;
};

ControlServer::ControlServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ControlServer::~ControlServer() { Stop(); }

void ControlServer::Stop() {
  if (impl_ && impl_->server) {
    impl_->service->stopping_ = true;
    impl_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    impl_->server->Wait();
    impl_->server.reset();
    ::unlink(impl_->path.c_str());
  }
}

absl::StatusOr<std::unique_ptr<ControlServer>> ControlServer::Start(Agent& agent,
                                                                    const std::string& socket_path,
                                                                    uint32_t mode) {
  auto impl = std::make_unique<Impl>();
  impl->service = std::make_unique<ControlService>(agent);
  impl->path = socket_path;
  grpc::ServerBuilder builder;
  builder.RegisterService(impl->service.get());
  builder.SetMaxSendMessageSize(256 << 20);
  NICFLOW_ASSIGN_OR_RETURN(impl->server, StartUnixServer(builder, socket_path, mode));
  return std::unique_ptr<ControlServer>(new ControlServer(std::move(impl)));
}

// ---- client --------------------------------------------------------------------------------

struct ControlClient::Impl {
  std::string path;
  int timeout_ms;
  std::unique_ptr<v1::Control::Stub> stub;

  std::unique_ptr<grpc::ClientContext> Context(bool stream = false) const {
    auto ctx = std::make_unique<grpc::ClientContext>();
    if (!stream) {
      ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms));
    }
    return ctx;
  }

  absl::Status Error(const grpc::Status& st) const {
    return FromGrpc(st, absl::StrCat("cannot reach nicflowd at ", path,
                                     " (is it running? is --socket right?)"));
  }

  template <typename Req, typename Call>
  absl::StatusOr<json> Unary(const Req& req, Call call) const {
    v1::JsonReply reply;
    auto ctx = Context();
    grpc::Status st = (stub.get()->*call)(ctx.get(), req, &reply);
    if (!st.ok()) return Error(st);
    json j = json::parse(reply.json(), nullptr, false);
    if (j.is_discarded()) return absl::InternalError("nicflowd sent a reply that is not JSON");
    return j;
  }
};

ControlClient::ControlClient(const std::string& socket_path, int timeout_ms)
    : impl_(std::make_unique<Impl>()) {
  impl_->path = socket_path;
  impl_->timeout_ms = timeout_ms;
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(256 << 20);
  impl_->stub = v1::Control::NewStub(
      grpc::CreateCustomChannel("unix:" + socket_path, grpc::InsecureChannelCredentials(), args));
}

ControlClient::~ControlClient() = default;

absl::StatusOr<json> ControlClient::Status() {
  return impl_->Unary(v1::StatusRequest(), &v1::Control::Stub::Status);
}
absl::StatusOr<json> ControlClient::DumpFlows(const std::string& table) {
  v1::DumpFlowsRequest req;
  req.set_table(table);
  return impl_->Unary(req, &v1::Control::Stub::DumpFlows);
}
absl::StatusOr<json> ControlClient::Stats() {
  return impl_->Unary(v1::StatsRequest(), &v1::Control::Stub::Stats);
}
absl::StatusOr<json> ControlClient::Diff() {
  return impl_->Unary(v1::DiffRequest(), &v1::Control::Stub::Diff);
}
absl::StatusOr<json> ControlClient::Capacity() {
  return impl_->Unary(v1::CapacityRequest(), &v1::Control::Stub::Capacity);
}
absl::StatusOr<json> ControlClient::Pipeline() {
  return impl_->Unary(v1::PipelineRequest(), &v1::Control::Stub::Pipeline);
}
absl::StatusOr<json> ControlClient::Trace(const TraceQuery& q) {
  v1::TraceRequest req;
  req.set_proto(q.proto);
  req.set_src(q.src);
  req.set_dst(q.dst);
  req.set_in_port(q.in_port);
  return impl_->Unary(req, &v1::Control::Stub::Trace);
}

absl::Status ControlClient::Events(uint64_t after_seq, bool follow,
                                   const std::function<bool(const Event&)>& on_event) {
  v1::EventsRequest req;
  req.set_after_seq(after_seq);
  req.set_follow(follow);
  auto ctx = impl_->Context(follow);
  auto reader = impl_->stub->Events(ctx.get(), req);
  v1::Event m;
  while (reader->Read(&m)) {
    Event e;
    e.seq = m.seq();
    e.unix_ms = m.unix_ms();
    e.kind = m.kind();
    e.error = m.error();
    e.message = m.message();
    if (!m.detail_json().empty()) e.detail = json::parse(m.detail_json(), nullptr, false);
    if (!on_event(e)) {
      ctx->TryCancel();
      break;
    }
  }
  grpc::Status st = reader->Finish();
  if (!st.ok() && st.error_code() != grpc::StatusCode::CANCELLED) return impl_->Error(st);
  return absl::OkStatus();
}

}  // namespace nicflow::agent
