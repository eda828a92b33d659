// The online commands (see online.h): fetch from nicflowd's control socket, then render.
#include <cstdlib>
#include <functional>
#include <iostream>
#include <memory>

#include "cli.h"
#include "nicflow/agent/control.h"
#include "online.h"

namespace nicflow::cli {

using nlohmann::json;

std::string DefaultAgentSocket() {
  const char* env = std::getenv("NICFLOW_SOCKET");
  return env != nullptr && *env != '\0' ? env : "/run/nicflow/nicflowd.sock";
}

namespace {

struct OnlineOptions {
  std::string socket = DefaultAgentSocket();
  std::string output = "table";
};

using Fetch = std::function<absl::StatusOr<json>(agent::ControlClient&)>;
using Render = std::function<int(const json&, const std::string& output)>;

int RunOnline(const OnlineOptions& o, const Fetch& fetch, const Render& render) {
  agent::ControlClient client(o.socket);
  absl::StatusOr<json> j = fetch(client);
  if (!j.ok()) return ReportError(j.status());
  if (o.output == "json") {
    std::cout << j->dump(2) << "\n";
    return 0;
  }
  return render(*j, o.output);
}

CLI::App* AddOnline(CLI::App& app, const std::string& name, const std::string& help,
                    std::shared_ptr<OnlineOptions> o, std::vector<std::string> outputs, Fetch fetch,
                    Render render) {
  CLI::App* cmd = app.add_subcommand(name, help);
  cmd->add_option("--socket", o->socket, "nicflowd's control socket ($NICFLOW_SOCKET)")
      ->capture_default_str();
  outputs.insert(outputs.begin(), {"table", "json"});
  cmd->add_option("-o,--output", o->output, "output format")->check(CLI::IsMember(outputs));
  cmd->callback([o, fetch, render] {
    int rc = RunOnline(*o, fetch, render);
    if (rc != 0) throw CLI::RuntimeError(rc);
  });
  return cmd;
}

Render Simple(void (*fn)(const json&, std::ostream&)) {
  return [fn](const json& j, const std::string&) {
    fn(j, std::cout);
    return 0;
  };
}

void RegisterDumpFlows(CLI::App& app) {
  auto o = std::make_shared<OnlineOptions>();
  auto table = std::make_shared<std::string>();
  CLI::App* cmd = AddOnline(
      app, "dump-flows", "installed tables and entries with packet/byte counters", o, {"testpmd"},
      [table](agent::ControlClient& c) { return c.DumpFlows(*table); },
      [table](const json& j, const std::string& output) {
        if (output == "testpmd") {
          if (!table->empty()) {
            return ReportError(
                absl::InvalidArgumentError("-o testpmd replays the whole program; drop --table"));
          }
          auto text = RenderDumpTestpmd(j);
          if (!text.ok()) return ReportError(text.status());
          std::cout << *text;
          return 0;
        }
        RenderDumpFlows(j, std::cout);
        return 0;
      });
  cmd->add_option("--table", *table, "only this table (e.g. service)");
}

void RegisterEvents(CLI::App& app) {
  auto o = std::make_shared<OnlineOptions>();
  auto follow = std::make_shared<bool>(false);
  auto after = std::make_shared<uint64_t>(0);
  CLI::App* cmd = app.add_subcommand("events", "the agent's apply events (newest last)");
  cmd->add_option("--socket", o->socket, "nicflowd's control socket ($NICFLOW_SOCKET)")
      ->capture_default_str();
  cmd->add_option("-o,--output", o->output, "output format (json: one object per line)")
      ->check(CLI::IsMember({"table", "json"}));
  cmd->add_flag("-f,--follow", *follow, "keep printing new events");
  cmd->add_option("--after", *after, "only events with a greater sequence number");
  cmd->callback([o, follow, after] {
    agent::ControlClient client(o->socket);
    absl::Status st = client.Events(*after, *follow, [&](const agent::Event& e) {
      if (o->output == "json") {
        std::cout << e.ToJson().dump() << std::endl;
      } else {
        std::cout << e.seq << "  " << e.kind << (e.error ? " (error)" : "") << "  " << e.message
                  << std::endl;
      }
      return true;
    });
    if (!st.ok()) throw CLI::RuntimeError(ReportError(st));
  });
}

// `trace` exists offline (-f manifests); --socket asks the running agent instead. The online
// trace runs from --socket's option callback (after the other options are stored, before the
// offline command's callback) and ends the parse with CLI::Success.
void ExtendTrace(CLI::App& app) {
  CLI::App* trace = nullptr;
  try {
    trace = app.get_subcommand("trace");
  } catch (const CLI::OptionNotFound&) {
    return;
  }
  if (CLI::Option* f = trace->get_option_no_throw("-f"); f != nullptr) f->required(false);
  trace->add_option_function<std::string>(
      "--socket",
      [trace](const std::string& socket) {
        agent::TraceQuery q;
        q.proto = trace->get_option("--proto")->as<std::string>();
        q.src = trace->get_option("--src")->as<std::string>();
        q.dst = trace->get_option("--dst")->as<std::string>();
        if (CLI::Option* in = trace->get_option_no_throw("--in-port"); in && in->count() > 0) {
          q.in_port = in->as<std::string>();
        }
        std::string output = "table";
        if (CLI::Option* out = trace->get_option_no_throw("-o"); out && out->count() > 0) {
          output = out->as<std::string>();
        }
        agent::ControlClient client(socket);
        auto j = client.Trace(q);
        if (!j.ok()) throw CLI::RuntimeError(ReportError(j.status()));
        if (output == "json") {
          std::cout << j->dump(2) << "\n";
        } else {
          RenderOnlineTrace(*j, std::cout);
        }
        std::cout.flush();
        throw CLI::Success();
      },
      "trace in the running nicflowd (its installed program) instead of -f manifests");
}

}  // namespace

void RegisterOnline(CLI::App& app) {
  AddOnline(
      app, "status", "the agent's health, device and last apply", std::make_shared<OnlineOptions>(),
      {}, [](agent::ControlClient& c) { return c.Status(); }, Simple(RenderStatus));
  RegisterDumpFlows(app);
  AddOnline(
      app, "stats", "per-table lookups, hits and misses; datapath and sync totals",
      std::make_shared<OnlineOptions>(), {}, [](agent::ControlClient& c) { return c.Stats(); },
      Simple(RenderStats));
  AddOnline(
      app, "diff", "desired program against what the device holds now",
      std::make_shared<OnlineOptions>(), {}, [](agent::ControlClient& c) { return c.Diff(); },
      Simple(RenderDiff));
  AddOnline(
      app, "capacity", "table use against the device's capacity; what runs in software",
      std::make_shared<OnlineOptions>(), {}, [](agent::ControlClient& c) { return c.Capacity(); },
      Simple(RenderCapacity));
  AddOnline(
      app, "pipeline", "the pipeline's tables and jumps (-o dot for Graphviz)",
      std::make_shared<OnlineOptions>(), {"dot"},
      [](agent::ControlClient& c) { return c.Pipeline(); },
      [](const json& j, const std::string& output) {
        if (output == "dot") {
          RenderPipelineDot(j, std::cout);
        } else {
          RenderPipelineTable(j, std::cout);
        }
        return 0;
      });
  RegisterEvents(app);
  ExtendTrace(app);
}

}  // namespace nicflow::cli
