#!/usr/bin/env bash
# The main job: compile the example shop cluster for node-a and trace packets through the
# software SmartNIC simulator.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/setup.sh"
"$root/scripts/build.sh" "$root/build" -DNICFLOW_BUILD_BENCH=OFF
nicflow="$root/build/host/nicflow"
shop="$root/examples/shop"
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

manifests=(-f "$shop/cluster.yaml" -f "$shop/policies.yaml" -f "$shop/kube-proxy.yaml")
step "$nicflow" compile "${manifests[@]}" --node node-a --summary
step "$nicflow" trace "${manifests[@]}" --node node-a --proto tcp --src 10.244.1.10 --dst 10.96.0.90:80
step "$nicflow" trace "${manifests[@]}" --node node-a --proto tcp --src 203.0.113.7 --dst 192.168.10.11:30080
step "$nicflow" trace "${manifests[@]}" --node node-a --proto tcp --src 10.244.1.40 --dst 10.96.0.90:80
step "$nicflow" trace "${manifests[@]}" --node node-a --proto tcp --src 10.244.1.10 --dst 10.96.0.99:80 -o json
