#!/usr/bin/env bash
# Fails when a tracked C/C++ source differs from clang-format's output (.clang-format).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
mapfile -t files < <(git ls-files '*.cc' '*.h' '*.cpp' '*.hpp' '*.cl' | grep -v '^examples/')
bad=0
for f in "${files[@]}"; do
  [ -f "$f" ] || continue
  if ! clang-format --style=file --dry-run --Werror "$f" >/dev/null 2>&1; then
    echo "clang-format: $f needs formatting (run: clang-format -i $f)"
    bad=1
  fi
done
exit $bad
