// gRPC helpers private to the agent: status mapping and unix socket setup.
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "nicflow/flowtables/status.h"

namespace nicflow::agent {

// absl and gRPC share the canonical code numbering.
inline grpc::Status ToGrpc(const absl::Status& st) {
  if (st.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(st.code()), std::string(Sv(st.message())));
}

inline absl::Status FromGrpc(const grpc::Status& st, std::string_view what) {
  if (st.ok()) return absl::OkStatus();
  if (st.error_code() == grpc::StatusCode::UNAVAILABLE) {
    return absl::UnavailableError(absl::StrCat(Sv(what), ": ", st.error_message()));
  }
  return absl::Status(static_cast<absl::StatusCode>(st.error_code()), st.error_message());
}

// Removes a stale socket at `path` (left by a process that died); refuses to remove anything that
// is not a socket. Errors: FailedPrecondition naming the path.
inline absl::Status PrepareUnixSocketPath(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return absl::OkStatus();
  if (!S_ISSOCK(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("socket path ", path, " exists and is not a socket; not removing it"));
  }
  if (::unlink(path.c_str()) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("socket path ", path, ": cannot remove stale socket: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

// Starts `builder` listening on unix:`path`, created with `mode` (umask narrowed around the bind
// so the socket never exists with wider permissions). Errors: Unavailable when gRPC cannot bind.
inline absl::StatusOr<std::unique_ptr<grpc::Server>> StartUnixServer(grpc::ServerBuilder& builder,
                                                                     const std::string& path,
                                                                     uint32_t mode) {
  NICFLOW_RETURN_IF_ERROR(PrepareUnixSocketPath(path));
  builder.AddListeningPort("unix:" + path, grpc::InsecureServerCredentials());
  mode_t old = ::umask(static_cast<mode_t>(~mode & 0777));
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ::umask(old);
  if (!server) return absl::UnavailableError(absl::StrCat("cannot listen on unix:", path));
  if (::chmod(path.c_str(), static_cast<mode_t>(mode)) != 0) {
    return absl::UnavailableError(absl::StrCat("chmod ", path, ": ", std::strerror(errno)));
  }
  return server;
}

}  // namespace nicflow::agent
