#!/usr/bin/env bash
# Every test: a release build, the same under AddressSanitizer + UndefinedBehaviorSanitizer, and
# the clang-format check. Warnings are errors in both builds.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/setup.sh"
jobs="${NICFLOW_JOBS:-$(nproc)}"

echo "== clang-format"
"$root/scripts/check-format.sh"

echo "== build and test (RelWithDebInfo)"
"$root/scripts/build.sh" "$root/build"
ctest --test-dir "$root/build" --output-on-failure -j "$jobs"

echo "== build and test (ASan + UBSan)"
"$root/scripts/build.sh" "$root/build-asan" -DNICFLOW_SANITIZE=ON -DNICFLOW_BUILD_BENCH=OFF \
  -DCMAKE_BUILD_TYPE=Debug
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir "$root/build-asan" --output-on-failure -j "$jobs" -LE no-sanitize
