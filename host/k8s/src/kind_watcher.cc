// One kind's list+watch loop. The protocol and its failure handling are described in
// api_source.h; the comments here say how each HTTP outcome maps onto it.
#include "kind_watcher.h"

#include <chrono>
#include <optional>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "nicflow/flowtables/status.h"

namespace nicflow::k8s::internal {
namespace {

using Clock = std::chrono::steady_clock;

// The API's error text: a Status object's message, else the start of the body.
std::string ApiMessage(const std::string& body) {
  nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_object()) {
    if (auto m = j.find("message"); m != j.end() && m->is_string()) return m->get<std::string>();
  }
  return body.substr(0, 200);
}

std::string JsonString(const nlohmann::json& o, const char* key) {
  if (!o.is_object()) return "";
  auto it = o.find(key);
  return it != o.end() && it->is_string() ? it->get<std::string>() : "";
}

}  // namespace

struct KindWatcher::Response {
  KindWatcher* owner = nullptr;
  std::unique_ptr<HttpConnection> conn;
  HttpResponseHead head;
  Response() = default;
  Response(Response&& o) noexcept
      : owner(std::exchange(o.owner, nullptr)), conn(std::move(o.conn)), head(std::move(o.head)) {}
  Response& operator=(Response&&) = delete;
  ~Response() {
    if (owner != nullptr) owner->SetConnection(nullptr);
  }
};

KindWatcher::KindWatcher(const WatchContext& ctx, ResourceKind kind, uint64_t seed)
    : ctx_(ctx), info_(InfoOf(kind)), rng_(seed) {
  stats_.kind = kind;
}

std::string KindWatcher::Path() const {
  return std::string(use_fallback_ ? info_.fallback_path : info_.path);
}

void KindWatcher::SetConnection(HttpConnection* conn) {
  std::lock_guard<std::mutex> lock(mu_);
  conn_ = conn;
  if (conn_ != nullptr && stopping_.load()) conn_->Interrupt();
}

void KindWatcher::Stop() {
  std::lock_guard<std::mutex> lock(mu_);
  stopping_.store(true);
  if (conn_ != nullptr) conn_->Interrupt();
  cv_.notify_all();
}

KindStats KindWatcher::Stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  KindStats s = stats_;
  s.objects = ctx_.store->Count(info_.kind);
  return s;
}

bool KindWatcher::Sleep(std::chrono::milliseconds d) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, d, [this] { return stopping_.load(); });
  return !stopping_.load();
}

std::chrono::milliseconds KindWatcher::NextBackoff() {
  auto base = ctx_.options.initial_backoff;
  for (int i = 0; i < failures_ && base < ctx_.options.max_backoff; ++i) base *= 2;
  base = std::min(base, ctx_.options.max_backoff);
  ++failures_;
  // Half fixed, half random: many agents restarted together do not reconnect in step.
  auto half = base.count() / 2;
  std::uniform_int_distribution<int64_t> jitter(0, half);
  return std::chrono::milliseconds(base.count() - half + jitter(rng_));
}

void KindWatcher::Fail(const absl::Status& status) {
  std::lock_guard<std::mutex> lock(mu_);
  stats_.last_error = std::string(Sv(status.message()));
}

absl::StatusOr<KindWatcher::Response> KindWatcher::Get(const std::string& path_and_query,
                                                       bool stream) {
  Response r;
  HttpTimeouts timeouts = ctx_.config.timeouts;
  if (!stream) timeouts.idle = std::max(timeouts.idle, std::chrono::milliseconds(60000));
  NICFLOW_ASSIGN_OR_RETURN(r.conn, HttpConnection::Connect(ctx_.target, ctx_.config.tls, timeouts));
  r.owner = this;
  SetConnection(r.conn.get());
  NICFLOW_ASSIGN_OR_RETURN(std::string token, CurrentToken(ctx_.config));
  HttpRequest req;
  req.path = path_and_query;
  req.headers = {{"Accept", "application/json"}, {"User-Agent", ctx_.config.user_agent}};
  if (!token.empty()) req.headers.emplace_back("Authorization", absl::StrCat("Bearer ", token));
  NICFLOW_RETURN_IF_ERROR(r.conn->Send(req));
  NICFLOW_ASSIGN_OR_RETURN(r.head, r.conn->ReadHead());
  return r;
}

absl::Status KindWatcher::List() {
  std::vector<nlohmann::json> items;
  std::string continue_token;
  std::string resource_version;
  for (;;) {
    std::string path = absl::StrCat(Path(), "?limit=", ctx_.options.list_page_size);
    if (!continue_token.empty()) absl::StrAppend(&path, "&continue=", UrlEncode(continue_token));
    NICFLOW_ASSIGN_OR_RETURN(Response r, Get(path, false));
    NICFLOW_ASSIGN_OR_RETURN(std::string body, r.conn->ReadBody(ctx_.options.max_list_bytes));
    if (r.head.status == 404 && !use_fallback_ && !info_.fallback_path.empty()) {
      use_fallback_ = true;  // an older version of the kind may be served
      continue;
    }
    if (r.head.status == 404) return absl::NotFoundError(absl::StrCat(Path(), " is not served"));
    if (r.head.status == 410 && !continue_token.empty()) {
      // The continue token expired between pages: the list starts over.
      items.clear();
      continue_token.clear();
      continue;
    }
    if (r.head.status != 200) {
      return absl::UnavailableError(
          absl::StrCat("LIST ", Path(), ": HTTP ", r.head.status, ": ", ApiMessage(body)));
    }
    nlohmann::json list = nlohmann::json::parse(body, nullptr, false);
    auto list_items = list.is_object() ? list.find("items") : list.end();
    if (!list.is_object() ||
        (list_items != list.end() && !list_items->is_array() && !list_items->is_null())) {
      return absl::UnavailableError(absl::StrCat("LIST ", Path(), ": not a Kubernetes list"));
    }
    if (list_items != list.end() && list_items->is_array()) {
      for (auto& item : *list_items) items.push_back(std::move(item));
    }
    const nlohmann::json& meta = list.contains("metadata") ? list["metadata"] : nlohmann::json();
    resource_version = JsonString(meta, "resourceVersion");
    continue_token = JsonString(meta, "continue");
    if (continue_token.empty()) break;
  }
  return ApplyList(std::move(items), resource_version);
}

absl::Status KindWatcher::ApplyList(std::vector<nlohmann::json> items,
                                    const std::string& resource_version) {
  std::set<std::string> seen;
  for (nlohmann::json& item : items) {
    std::string ns, name, rv;
    ReadMeta(item, ns, name, rv);
    seen.insert(ObjectKey(ns, name));
    ApplyObject(ObjectEvent::Type::kAdded, item);
  }
  // What the store holds but the list does not was deleted while we were not watching.
  for (const std::string& key : ctx_.store->Keys(info_.kind)) {
    if (seen.count(key) != 0) continue;
    size_t slash = key.find('/');
    std::string ns = slash == std::string::npos ? "" : key.substr(0, slash);
    std::string name = slash == std::string::npos ? key : key.substr(slash + 1);
    Emit(ctx_.store->Remove(info_.kind, ns, name, resource_version));
  }
  resource_version_ = resource_version;
  bool first;
  {
    std::lock_guard<std::mutex> lock(mu_);
    first = !stats_.synced;
    stats_.synced = true;
    ++stats_.lists;
    stats_.resource_version = resource_version;
  }
  if (first && ctx_.notify_synced) ctx_.notify_synced();
  return absl::OkStatus();
}

void KindWatcher::Emit(std::optional<ObjectStore::Change> change) {
  if (!change) return;
  if (ctx_.on_change) ctx_.on_change(*change);
  if (ctx_.notify_changed) ctx_.notify_changed();
}

void KindWatcher::ApplyObject(ObjectEvent::Type type, const nlohmann::json& object) {
  std::string ns, name, rv;
  ReadMeta(object, ns, name, rv);
  if (type == ObjectEvent::Type::kDeleted) {
    Emit(ctx_.store->Remove(info_.kind, ns, name, rv));
    return;
  }
  absl::StatusOr<DecodedObject> decoded = DecodeApiObject(info_, object);
  if (!decoded.ok()) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++stats_.decode_errors;
    }
    ctx_.store->Reject(info_.kind, ObjectKey(ns, name),
                       std::string(Sv(decoded.status().message())));
    return;
  }
  Emit(ctx_.store->Upsert(info_.kind, *std::move(decoded)));
}

std::optional<KindWatcher::WatchEnd> KindWatcher::ApplyEvent(const std::string& line) {
  nlohmann::json ev = nlohmann::json::parse(line, nullptr, false);
  std::string type = JsonString(ev, "type");
  if (type.empty() || !ev.contains("object") || !ev["object"].is_object()) {
    Fail(absl::DataLossError(
        absl::StrCat("WATCH ", Path(), ": malformed event: ", line.substr(0, 120))));
    return WatchEnd::kFailed;
  }
  const nlohmann::json& object = ev["object"];
  std::string rv = object.contains("metadata") ? JsonString(object["metadata"], "resourceVersion")
                                               : std::string();
  if (type == "ERROR") {
    if (object.value("code", 0) == 410) return WatchEnd::kGone;
    Fail(absl::UnavailableError(
        absl::StrCat("WATCH ", Path(), ": ERROR event: ", JsonString(object, "message"))));
    return WatchEnd::kFailed;
  }
  if (type == "BOOKMARK") {
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.bookmarks;
  } else if (type == "ADDED" || type == "MODIFIED" || type == "DELETED") {
    ApplyObject(type == "ADDED"      ? ObjectEvent::Type::kAdded
                : type == "MODIFIED" ? ObjectEvent::Type::kModified
                                     : ObjectEvent::Type::kDeleted,
                object);
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.events;
  } else {
    Fail(absl::DataLossError(absl::StrCat("WATCH ", Path(), ": unknown event type ", type)));
    return WatchEnd::kFailed;
  }
  if (!rv.empty()) {
    resource_version_ = rv;
    std::lock_guard<std::mutex> lock(mu_);
    stats_.resource_version = rv;
  }
  return std::nullopt;
}

KindWatcher::WatchEnd KindWatcher::Watch() {
  // Between T and 2T, as client-go does: agents started together do not all re-watch at once.
  uint32_t t = ctx_.options.watch_timeout_s;
  uint32_t timeout_s = t + static_cast<uint32_t>(rng_() % (t + 1));
  std::string path = absl::StrCat(Path(), "?watch=1&allowWatchBookmarks=true&resourceVersion=",
                                  UrlEncode(resource_version_), "&timeoutSeconds=", timeout_s);
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.watches;
  }
  absl::StatusOr<Response> r = Get(path, true);
  if (!r.ok()) {
    Fail(r.status());
    return WatchEnd::kFailed;
  }
  if (r->head.status == 410) return WatchEnd::kGone;
  if (r->head.status != 200) {
    auto body = r->conn->ReadBody(1 << 20);
    Fail(absl::UnavailableError(absl::StrCat("WATCH ", Path(), ": HTTP ", r->head.status, ": ",
                                             body.ok() ? ApiMessage(*body) : "")));
    return WatchEnd::kFailed;
  }
  failures_ = 0;
  for (;;) {
    absl::StatusOr<std::optional<std::string>> line =
        r->conn->ReadLine(ctx_.options.max_event_bytes);
    if (!line.ok()) {
      if (!stopping_.load()) Fail(line.status());
      return WatchEnd::kFailed;
    }
    if (!line->has_value()) return WatchEnd::kClean;
    if ((*line)->empty()) continue;
    if (std::optional<WatchEnd> end = ApplyEvent(**line)) return *end;
  }
}

void KindWatcher::Run() {
  bool need_list = true;
  while (!stopping_.load()) {
    if (need_list) {
      absl::Status st = List();
      if (stopping_.load()) break;
      if (absl::IsNotFound(st)) {
        // Not served by this API server (an optional kind): listed as empty, never watched.
        {
          std::lock_guard<std::mutex> lock(mu_);
          stats_.served = false;
          stats_.last_error = std::string(Sv(st.message()));
        }
        ApplyList({}, "").IgnoreError();
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return stopping_.load(); });
        break;
      }
      if (!st.ok()) {
        Fail(st);
        if (!Sleep(NextBackoff())) break;
        continue;
      }
      need_list = false;
      failures_ = 0;
    }
    Clock::time_point start = Clock::now();
    uint64_t events_before = Stats().events;
    WatchEnd end = Watch();
    if (stopping_.load()) break;
    if (end == WatchEnd::kGone) {
      std::lock_guard<std::mutex> lock(mu_);
      ++stats_.relists_gone;
      need_list = true;
      continue;
    }
    // A watch the server ended normally after a while is resumed at once; a failed one, or one
    // that ended at once without events (a server that keeps refusing), after a backoff.
    bool healthy = end == WatchEnd::kClean && (Clock::now() - start > std::chrono::seconds(1) ||
                                               Stats().events > events_before);
    if (healthy) continue;
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++stats_.reconnects;
    }
    if (!Sleep(NextBackoff())) break;
  }
}

}  // namespace nicflow::k8s::internal
