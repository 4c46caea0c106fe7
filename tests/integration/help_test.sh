#!/usr/bin/env bash
# Every binary's --help lists its own flags with their help text (Abseil's default printed
# "No flags matched" for all of them), and its usage line names its subcommands; a bad flag
# value is one clear line.
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
check services/router/moe-router --cluster --rebalance_interval_s "run the rebalancer every" \
  --frames_listen --frames_advertise
check services/expert_pool/moe-expert-pool --pool --join --expert_slots --device \
  --frames_listen --frames_advertise
check services/orchestrator/moe-orchestrator --lanes --lane_rows --internal_streams --listen \
  --micro_batches --micro_batch_rows --speculative_forward --frames
check clients/moectl/moectl "generate|complete" rebalance drain --target --max_tokens
check clients/viewer/viewer serve top gif record --listen --target
check models/train/moe-train train eval analyze --steps --lr

# refused BINARY WANT ARGS...: BINARY (in the build, or an absolute path) with ARGS exits non-zero
# within 60 s, with WANT in what it prints and no LibTorch C++ backtrace. (Errors come as JSON log
# lines, so quotes arrive escaped.) A binary that accepts the bad flag would serve forever: the
# timeout makes that a failure, not a hang.
refused() {
  local bin=$1 want=$2 out path=$1
  shift 2
  [[ "$bin" == /* ]] || path=$build/$bin
  if out=$(timeout 60 "$path" "$@" 2>&1); then
    echo "FAIL ${bin##*/} $* exited 0" >&2
    failed=1
  elif ! grep -qF -- "$want" <<<"$out" || grep -q "frame #" <<<"$out"; then
    echo "FAIL ${bin##*/} $*: $out" >&2
    failed=1
  else
    echo "ok   ${bin##*/} $* refused"
  fi
}
pool=services/expert_pool/moe-expert-pool
# A bad --device is refused in one line that names the flag.
refused $pool "--device=gpu: " --pool=p --device=gpu
# The orchestrator refuses an engine flag out of range in one line that names it, before serving.
model=$(cd "$(dirname "$0")/../.." && pwd)/models/brown-moe
for bad in --lanes=0 --lane_rows=0 --micro_batches=0 --micro_batch_rows=0; do
  refused services/orchestrator/moe-orchestrator "${bad%=*}: must be" --model="$model" \
    --router=127.0.0.1:1 --listen=127.0.0.1:0 --http_listen=127.0.0.1:0 "$bad"
done
# A joining pool that listens everywhere must say where the router dials it, and that address must
# be dialable.
join=(--pool=p --join=127.0.0.1:1)
refused $pool "--advertise: required" "${join[@]}" --listen=0.0.0.0:0
refused $pool "--advertise: required" "${join[@]}" "--listen=[::0]:0"
refused $pool '--advertise: \"0.0.0.0:50061\" is a listen-everywhere address' "${join[@]}" \
  --listen=127.0.0.1:0 --advertise=0.0.0.0:50061
refused $pool '--listen: \"50061\" is not HOST:PORT' "${join[@]}" --listen=50061
# Bad frames addresses are refused naming the flag.
refused $pool '--frames_listen: \"nonsense\" is not HOST:PORT' "${join[@]}" \
  --model="$model" --listen=127.0.0.1:0 --frames_listen=nonsense
refused $pool '--frames_advertise: want a port' "${join[@]}" --model="$model" --listen=127.0.0.1:0 \
  --frames_advertise=pool:0

# moectl starts without LibTorch (about a second of CPU per command when it linked it): for
# --embedded it runs moectl-embedded, beside it, which has the model. Without that program,
# --embedded says which file it needs; with it, --embedded generates.
if ldd "$build/clients/moectl/moectl" | grep -q libtorch; then
  echo "FAIL moectl links LibTorch: $(ldd "$build/clients/moectl/moectl" | grep libtorch)" >&2
  failed=1
else
  echo "ok   moectl does not link LibTorch"
fi
alone=$(mktemp -d)
trap 'rm -rf "$alone"' EXIT
cp "$build/clients/moectl/moectl" "$alone/"
refused "$alone/moectl" "moectl-embedded" generate --embedded --model="$model" \
  --max_tokens=2 "The"
if out=$(timeout 120 "$build/clients/moectl/moectl" generate --embedded --model="$model" \
  --temperature=0 --max_tokens=3 "The jury" 2>&1) && [[ "$out" == "The jury"?* ]]; then
  echo "ok   moectl generate --embedded runs moectl-embedded: ${out%%$'\n'*}"
else
  echo "FAIL moectl generate --embedded: $out" >&2
  failed=1
fi
exit "$failed"
