// TLS over a connected socket (OpenSSL). Private to nicflow_k8s.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "nicflow/k8s/http_client.h"
#include "transport.h"

namespace nicflow::k8s::internal {

/// Handshakes over `fd`, verifying the server's certificate against tls.ca_pem (or the system
/// store) and its name against tls.server_name or target.host (an IP literal is checked against
/// the certificate's IP addresses). Errors: InvalidArgument for unusable PEM (naming the CA,
/// client certificate or key), Unavailable for a failed handshake or verification (with
/// OpenSSL's reason).
absl::StatusOr<std::unique_ptr<Transport>> OpenTlsTransport(UniqueFd fd, const HttpTarget& target,
                                                            const TlsOptions& tls,
                                                            const HttpTimeouts& timeouts);

}  // namespace nicflow::k8s::internal
