// A self-signed certificate made at test time (no key material checked in), valid for
// 127.0.0.1 and kubernetes.default.svc.
#pragma once

#include <string>

namespace nicflow::k8s::testing {

struct TestCert {
  std::string cert_pem;
  std::string key_pem;
};

/// A fresh P-256 key and a self-signed CA:TRUE certificate for `common_name` with subjectAltName
/// IP:127.0.0.1, DNS:kubernetes.default.svc.
TestCert MakeSelfSignedCert(const std::string& common_name = "nicflow-test-apiserver");

}  // namespace nicflow::k8s::testing
