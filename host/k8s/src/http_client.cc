// HTTP/1.1 framing over a Transport: request writing, response head parsing, and a body reader
// for Content-Length, chunked and read-until-close bodies that hands out lines as they arrive.
#include "nicflow/k8s/http_client.h"

#include <algorithm>
#include <charconv>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "nicflow/flowtables/status.h"
#include "transport.h"

namespace nicflow::k8s {
namespace {

constexpr size_t kMaxHeadBytes = 64 * 1024;

absl::Status BadUrl(std::string_view url, std::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("server URL \"", Sv(url), "\": ", Sv(why)));
}

}  // namespace

absl::StatusOr<HttpTarget> HttpTarget::Parse(std::string_view url) {
  HttpTarget t;
  std::string_view rest = url;
  if (absl::StartsWith(Sv(rest), "unix://")) {
    t.scheme = Scheme::kUnix;
    t.unix_path = std::string(rest.substr(7));
    if (t.unix_path.empty() || t.unix_path[0] != '/') {
      return BadUrl(url, "a unix socket URL needs an absolute path (unix:///run/x.sock)");
    }
    return t;
  }
  if (absl::StartsWith(Sv(rest), "https://")) {
    t.scheme = Scheme::kHttps;
    t.port = 443;
    rest.remove_prefix(8);
  } else if (absl::StartsWith(Sv(rest), "http://")) {
    t.scheme = Scheme::kHttp;
    t.port = 80;
    rest.remove_prefix(7);
  } else {
    return BadUrl(url, "scheme must be https://, http:// or unix://");
  }
  size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  if (slash != std::string_view::npos) {
    std::string_view path = rest.substr(slash);
    while (!path.empty() && path.back() == '/') path.remove_suffix(1);
    t.path_prefix = std::string(path);
  }
  std::string_view port_text;
  if (absl::StartsWith(Sv(authority), "[")) {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return BadUrl(url, "unterminated '[' in the host");
    t.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty() && after[0] != ':') return BadUrl(url, "unexpected text after ']'");
    if (!after.empty()) port_text = after.substr(1);
  } else {
    size_t colon = authority.rfind(':');
    t.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port_text = authority.substr(colon + 1);
  }
  if (t.host.empty()) return BadUrl(url, "no host");
  if (authority.find('@') != std::string_view::npos) {
    return BadUrl(url, "user information in the URL is not supported");
  }
  if (!port_text.empty() || authority.ends_with(':')) {
    uint32_t port = 0;
    if (!absl::SimpleAtoi(Sv(port_text), &port) || port == 0 || port > 65535) {
      return BadUrl(url, absl::StrCat("port \"", Sv(port_text), "\" is not in 1..65535"));
    }
    t.port = static_cast<uint16_t>(port);
  }
  return t;
}

std::string HttpTarget::HostHeader() const {
  if (scheme == Scheme::kUnix) return "localhost";
  std::string h = host.find(':') != std::string::npos ? absl::StrCat("[", host, "]") : host;
  bool default_port =
      (scheme == Scheme::kHttp && port == 80) || (scheme == Scheme::kHttps && port == 443);
  return default_port ? h : absl::StrCat(h, ":", port);
}

std::string HttpTarget::ToString() const {
  switch (scheme) {
    case Scheme::kUnix:
      return absl::StrCat("unix://", unix_path);
    case Scheme::kHttp:
      return absl::StrCat("http://", HostHeader(), path_prefix);
    case Scheme::kHttps:
      break;
  }
  return absl::StrCat("https://", HostHeader(), path_prefix);
}

const std::string* HttpResponseHead::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (absl::EqualsIgnoreCase(k, Sv(name))) return &v;
  }
  return nullptr;
}

std::string UrlEncode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out += {'%', kHex[c >> 4], kHex[c & 15]};
    }
  }
  return out;
}

namespace {

class HttpConnectionImpl final : public HttpConnection {
 public:
  HttpConnectionImpl(std::unique_ptr<internal::Transport> transport, HttpTarget target)
      : transport_(std::move(transport)), target_(std::move(target)), peer_(target_.ToString()) {}

  absl::Status Send(const HttpRequest& request) override;
  absl::StatusOr<HttpResponseHead> ReadHead() override;
  absl::StatusOr<std::optional<std::string>> ReadLine(size_t max_line_bytes) override;
  absl::StatusOr<std::string> ReadBody(size_t max_bytes) override;
  bool Reusable() const override { return keep_alive_ && framing_ == Framing::kDone; }
  void Interrupt() override { transport_->Interrupt(); }

 private:
  enum class Framing : uint8_t { kDone, kLength, kChunkHeader, kChunkData, kUntilClose };

  absl::Status Fill();  // appends at least one byte to buf_, or fails (Unavailable at EOF)
  absl::StatusOr<std::string> TakeLine(size_t max_bytes, std::string_view what);
  absl::Status StartBody(const HttpResponseHead& head, bool head_request);
  absl::StatusOr<std::string_view> NextBodyBytes();  // empty at end of body
  absl::Status Truncated(std::string_view where) const {
    return absl::UnavailableError(
        absl::StrCat(peer_, ": connection closed in the middle of ", Sv(where)));
  }

  std::unique_ptr<internal::Transport> transport_;
  HttpTarget target_;
  std::string peer_;
  std::string buf_;  // received, not yet consumed bytes start at pos_
  size_t pos_ = 0;
  bool eof_ = false;
  bool keep_alive_ = true;
  bool last_was_head_ = false;
  Framing framing_ = Framing::kDone;
  uint64_t remaining_ = 0;  // bytes left in the body (kLength) or the chunk (kChunkData)
  std::string line_;        // partial line for ReadLine
};

absl::Status HttpConnectionImpl::Fill() {
  if (pos_ > 0 && pos_ == buf_.size()) {
    buf_.clear();
    pos_ = 0;
  } else if (pos_ > 65536) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  if (eof_) return absl::UnavailableError(absl::StrCat(peer_, ": connection closed"));
  char chunk[16384];
  NICFLOW_ASSIGN_OR_RETURN(size_t got, transport_->Read(chunk, sizeof chunk));
  if (got == 0) {
    eof_ = true;
    return absl::UnavailableError(absl::StrCat(peer_, ": connection closed"));
  }
  buf_.append(chunk, got);
  return absl::OkStatus();
}

absl::StatusOr<std::string> HttpConnectionImpl::TakeLine(size_t max_bytes, std::string_view what) {
  for (;;) {
    size_t nl = buf_.find('\n', pos_);
    if (nl != std::string::npos) {
      std::string line = buf_.substr(pos_, nl - pos_);
      pos_ = nl + 1;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      return line;
    }
    if (buf_.size() - pos_ > max_bytes) {
      return absl::InvalidArgumentError(
          absl::StrCat(peer_, ": ", Sv(what), " longer than ", max_bytes, " bytes"));
    }
    if (absl::Status st = Fill(); !st.ok()) {
      return absl::IsUnavailable(st) ? Truncated(what) : st;
    }
  }
}

absl::Status HttpConnectionImpl::Send(const HttpRequest& request) {
  if (framing_ != Framing::kDone) {
    return absl::FailedPreconditionError(
        absl::StrCat(peer_, ": the previous response body was not read to its end"));
  }
  std::string msg = absl::StrCat(request.method, " ", target_.path_prefix, request.path,
                                 " HTTP/1.1\r\nHost: ", target_.HostHeader(), "\r\n");
  for (const auto& [k, v] : request.headers) absl::StrAppend(&msg, k, ": ", v, "\r\n");
  if (!request.body.empty()) absl::StrAppend(&msg, "Content-Length: ", request.body.size(), "\r\n");
  absl::StrAppend(&msg, "\r\n", request.body);
  last_was_head_ = request.method == "HEAD";
  return transport_->Write(msg);
}

absl::StatusOr<HttpResponseHead> HttpConnectionImpl::ReadHead() {
  HttpResponseHead head;
  size_t head_bytes = 0;
  std::string status_line;
  do {  // skip 1xx interim responses (100 Continue)
    NICFLOW_ASSIGN_OR_RETURN(status_line, TakeLine(kMaxHeadBytes, "the response status line"));
    head.headers.clear();
    std::string_view sl = status_line;
    int status = 0;
    if (!absl::StartsWith(Sv(sl), "HTTP/1.") || sl.size() < 12 ||
        std::from_chars(sl.data() + 9, sl.data() + 12, status).ptr != sl.data() + 12) {
      return absl::InvalidArgumentError(absl::StrCat(peer_, ": not an HTTP/1.x status line: \"",
                                                     status_line.substr(0, 80), "\""));
    }
    head.status = status;
    head.reason = status_line.size() > 13 ? status_line.substr(13) : "";
    keep_alive_ = absl::StartsWith(Sv(sl), "HTTP/1.1");
    for (;;) {
      NICFLOW_ASSIGN_OR_RETURN(std::string line, TakeLine(kMaxHeadBytes, "the response headers"));
      head_bytes += line.size();
      if (head_bytes > kMaxHeadBytes) {
        return absl::InvalidArgumentError(absl::StrCat(peer_, ": response headers too long"));
      }
      if (line.empty()) break;
      size_t colon = line.find(':');
      if (colon == std::string::npos || colon == 0) {
        return absl::InvalidArgumentError(
            absl::StrCat(peer_, ": malformed header line \"", line.substr(0, 80), "\""));
      }
      std::string value(absl::StripAsciiWhitespace(Sv(std::string_view(line).substr(colon + 1))));
      head.headers.emplace_back(line.substr(0, colon), std::move(value));
    }
  } while (head.status >= 100 && head.status < 200);
  NICFLOW_RETURN_IF_ERROR(StartBody(head, last_was_head_));
  return head;
}

absl::Status HttpConnectionImpl::StartBody(const HttpResponseHead& head, bool head_request) {
  line_.clear();
  if (const std::string* c = head.Header("Connection"); c && absl::EqualsIgnoreCase(*c, "close")) {
    keep_alive_ = false;
  }
  if (head_request || head.status == 204 || head.status == 304) {
    framing_ = Framing::kDone;
    return absl::OkStatus();
  }
  const std::string* te = head.Header("Transfer-Encoding");
  if (te != nullptr && absl::StrContains(absl::AsciiStrToLower(*te), "chunked")) {
    framing_ = Framing::kChunkHeader;
    return absl::OkStatus();
  }
  if (const std::string* cl = head.Header("Content-Length")) {
    if (!absl::SimpleAtoi(*cl, &remaining_)) {
      return absl::InvalidArgumentError(
          absl::StrCat(peer_, ": bad Content-Length \"", cl->substr(0, 40), "\""));
    }
    framing_ = remaining_ == 0 ? Framing::kDone : Framing::kLength;
    return absl::OkStatus();
  }
  framing_ = Framing::kUntilClose;
  keep_alive_ = false;
  return absl::OkStatus();
}

absl::StatusOr<std::string_view> HttpConnectionImpl::NextBodyBytes() {
  for (;;) {
    switch (framing_) {
      case Framing::kDone:
        return std::string_view();
      case Framing::kChunkHeader: {
        NICFLOW_ASSIGN_OR_RETURN(std::string line, TakeLine(1024, "a chunk header"));
        if (line.empty()) continue;  // the CRLF after the previous chunk's data
        std::string_view hex = std::string_view(line).substr(0, line.find(';'));
        hex = Sv(absl::StripAsciiWhitespace(Sv(hex)));
        uint64_t size = 0;
        auto [end, ec] = std::from_chars(hex.data(), hex.data() + hex.size(), size, 16);
        if (ec != std::errc() || end != hex.data() + hex.size() || hex.empty()) {
          return absl::InvalidArgumentError(
              absl::StrCat(peer_, ": bad chunk size line \"", line.substr(0, 40), "\""));
        }
        if (size == 0) {  // last chunk: skip trailers up to the empty line
          for (;;) {
            NICFLOW_ASSIGN_OR_RETURN(std::string trailer, TakeLine(kMaxHeadBytes, "trailers"));
            if (trailer.empty()) break;
          }
          framing_ = Framing::kDone;
          return std::string_view();
        }
        remaining_ = size;
        framing_ = Framing::kChunkData;
        continue;
      }
      case Framing::kChunkData:
      case Framing::kLength:
      case Framing::kUntilClose: {
        if (pos_ == buf_.size()) {
          absl::Status st = Fill();
          if (absl::IsUnavailable(st) && eof_) {
            if (framing_ == Framing::kUntilClose) {
              framing_ = Framing::kDone;
              return std::string_view();
            }
            return Truncated(framing_ == Framing::kLength ? "the body" : "a chunk");
          }
          NICFLOW_RETURN_IF_ERROR(st);
        }
        size_t n = buf_.size() - pos_;
        if (framing_ != Framing::kUntilClose)
          n = static_cast<size_t>(std::min<uint64_t>(n, remaining_));
        std::string_view out(buf_.data() + pos_, n);
        pos_ += n;
        if (framing_ != Framing::kUntilClose) {
          remaining_ -= n;
          if (remaining_ == 0) {
            framing_ = framing_ == Framing::kLength ? Framing::kDone : Framing::kChunkHeader;
          }
        }
        return out;
      }
    }
  }
}

absl::StatusOr<std::optional<std::string>> HttpConnectionImpl::ReadLine(size_t max_line_bytes) {
  for (;;) {
    size_t nl = line_.find('\n');
    if (nl != std::string::npos && nl > max_line_bytes) nl = std::string::npos;
    if (nl != std::string::npos) {
      std::string line = line_.substr(0, nl);
      line_.erase(0, nl + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      return line;
    }
    if (line_.size() > max_line_bytes) {
      return absl::ResourceExhaustedError(
          absl::StrCat(peer_, ": a body line is longer than ", max_line_bytes, " bytes"));
    }
    NICFLOW_ASSIGN_OR_RETURN(std::string_view bytes, NextBodyBytes());
    if (bytes.empty()) {
      if (line_.empty()) return std::optional<std::string>();
      std::string last = std::move(line_);
      line_.clear();
      return last;
    }
    line_.append(bytes);
  }
}

absl::StatusOr<std::string> HttpConnectionImpl::ReadBody(size_t max_bytes) {
  std::string body = std::move(line_);
  line_.clear();
  for (;;) {
    NICFLOW_ASSIGN_OR_RETURN(std::string_view bytes, NextBodyBytes());
    if (bytes.empty()) return body;
    body.append(bytes);
    if (body.size() > max_bytes) {
      return absl::ResourceExhaustedError(
          absl::StrCat(peer_, ": response body larger than ", max_bytes, " bytes"));
    }
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<HttpConnection>> HttpConnection::Connect(
    const HttpTarget& target, const TlsOptions& tls, const HttpTimeouts& timeouts) {
  NICFLOW_ASSIGN_OR_RETURN(std::unique_ptr<internal::Transport> transport,
                           internal::OpenTransport(target, tls, timeouts));
  return std::make_unique<HttpConnectionImpl>(std::move(transport), target);
}

}  // namespace nicflow::k8s
