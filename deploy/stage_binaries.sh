#!/usr/bin/env bash
# Gathers what the image's runtime stage takes from a build tree: the six programs and
# moectl-embedded (moectl with the model in, which moectl runs for --embedded from its own
# folder), stripped, in OUT/bin, and OUT/runtime-packages.txt, the Debian packages their shared
# libraries come from (deploy/runtime_packages.sh). deploy/Dockerfile runs it in its build stage;
# the container test runs it on the host's own build (a Debian 12 build with the same packages)
# and builds the image with --build-arg BINARIES=prebuilt, which skips compiling the project
# inside the image.
#
# Usage: deploy/stage_binaries.sh BUILD_DIR OUT_DIR
set -euo pipefail
if [[ $# -ne 2 || "$1" == --help ]]; then sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 2; fi
build=$1
out=$2
bins=(services/router/moe-router services/expert_pool/moe-expert-pool
  services/orchestrator/moe-orchestrator clients/moectl/moectl clients/moectl/moectl-embedded
  clients/viewer/viewer models/train/moe-train)
for b in "${bins[@]}"; do
  [[ -x "$build/$b" ]] || { echo "stage_binaries: $build/$b is missing: build it first" >&2; exit 1; }
done
rm -rf "$out/bin"
mkdir -p "$out/bin"
for b in "${bins[@]}"; do
  strip --strip-unneeded -o "$out/bin/$(basename "$b")" "$build/$b"
done
"$(dirname "$0")"/runtime_packages.sh "$out"/bin/* >"$out/runtime-packages.txt"
