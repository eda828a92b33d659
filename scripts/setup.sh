#!/usr/bin/env bash
# Installs the Debian 12 packages nicflow builds and tests with — only those missing.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git python3 clang-format
  libabsl-dev libyaml-cpp-dev nlohmann-json3-dev libcli11-dev libspdlog-dev
  libgtest-dev libgmock-dev libbenchmark-dev libpcap-dev
  libdpdk-dev dpdk-dev
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
  libibverbs-dev libssl-dev
  ocl-icd-opencl-dev opencl-headers pocl-opencl-icd clinfo
  iproute2 iputils-ping tcpdump procps
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if ((${#missing[@]})); then
  echo "nicflow setup: installing ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
