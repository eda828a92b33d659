// nicflow trace: one packet through the compiled program, and which Kubernetes object decided.
#include <iostream>

#include "cli.h"
#include "packet_trace.h"

namespace nicflow::cli {

namespace {

struct TraceCmdOptions {
  ManifestOptions manifests;
  std::string proto, src, dst, in_port = "auto", target = "sim";
};

int RunTrace(const TraceCmdOptions& o) {
  auto req = MakeTraceRequest(o.proto, o.src, o.dst, o.in_port);
  if (!req.ok()) return ReportError(req.status());
  auto compiled = LoadAndCompile(o.manifests);
  if (!compiled.ok()) return ReportError(compiled.status());
  auto target = ParseTarget(o.target);
  if (!target.ok()) return ReportError(target.status());
  auto tracer = CreateTracer(*target, *compiled);
  if (!tracer.ok()) return ReportError(tracer.status());
  absl::StatusOr<TraceReport> report = (*tracer)->Trace(*req);
  if (!report.ok()) return ReportError(report.status());
  if (o.manifests.output == "json") {
    std::cout << TraceReportToJson(*report).dump(2) << "\n";
  } else {
    std::cout << TraceReportToText(*report, *req);
  }
  return 0;
}

}  // namespace

void RegisterTrace(CLI::App& app) {
  auto* cmd = app.add_subcommand("trace", "trace one packet through the pipeline");
  auto o = std::make_shared<TraceCmdOptions>();
  AddManifestOptions(*cmd, o->manifests);
  cmd->add_option("--proto", o->proto, "tcp, udp or sctp")->required();
  cmd->add_option("--src", o->src, "source IP[:PORT] ([v6]:port)")->required();
  cmd->add_option("--dst", o->dst, "destination IP:PORT ([v6]:port)")->required();
  cmd->add_option("--in-port", o->in_port,
                  "entry port: host, pod or uplink (default: by source address)");
  cmd->add_option("--target", o->target, "what executes the program")
      ->check(CLI::IsMember({"sim", "rteflow", "fpga"}));
  cmd->add_option("-o,--output", o->manifests.output, "output format")
      ->check(CLI::IsMember({"table", "json"}));
  cmd->callback([o] {
    int rc = RunTrace(*o);
    if (rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace nicflow::cli
