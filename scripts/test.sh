#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine (idempotent), builds everything and runs every test: unit,
# integration (real processes on loopback), the PyTorch reference, the browser and Prometheus
# end-to-end tests.
#
# Usage: scripts/test.sh [ctest args...]   e.g. scripts/test.sh -L integration
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${1:-}" == "--help" ]]; then sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0; fi

scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build
# The browser test's driver (playwright-core, pinned in its package-lock.json).
if [[ ! -d tests/e2e/node_modules/playwright-core ]]; then
  (cd tests/e2e && npm ci --no-audit --no-fund)
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
ctest --test-dir build --output-on-failure --timeout 900 -j2 "$@" 2>&1 | tee "$log"
# ctest counts a skipped test as passing; nothing here may skip, so a skip is a failure.
if grep -qE '\(Skipped\)$' "$log"; then
  echo "test.sh: the tests above were skipped; that counts as a failure" >&2
  exit 1
fi
