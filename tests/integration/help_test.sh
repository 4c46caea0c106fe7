#!/usr/bin/env bash
# Every binary's --help lists its own flags with their help text (Abseil's default printed
# "No flags matched" for all of them), and its usage line names its subcommands.
#
# Usage: tests/integration/help_test.sh BUILD_DIR
set -euo pipefail
build=${1:?usage: help_test.sh BUILD_DIR}
failed=0
check() {  # binary, then strings its --help must contain
  local bin=$1 out
  shift
  out=$("$build/$bin" --help 2>&1 || true)
  if grep -q "No flags matched" <<<"$out"; then
    echo "FAIL $bin --help: No flags matched" >&2
    failed=1
    return
  fi
  for want in "$@"; do
    if ! grep -qF -- "$want" <<<"$out"; then
      echo "FAIL $bin --help lacks: $want" >&2
      failed=1
    fi
  done
  echo "ok   $bin --help"
}
check services/router/moe-router --cluster --rebalance_interval_s "run the rebalancer every"
check services/expert_pool/moe-expert-pool --pool --join --expert_slots --device
check services/orchestrator/moe-orchestrator --lanes --internal_streams --listen
check clients/moectl/moectl "generate|complete" rebalance drain --target --max_tokens
check clients/viewer/viewer serve top gif record --listen --target
check models/train/moe-train train eval analyze --steps --lr
exit "$failed"
