#!/usr/bin/env bash
# Builds the fuzz targets (tests/fuzz) with clang, libFuzzer, ASan and UBSan in build-fuzz/ and
# runs each for SECONDS (default 60), starting from its seed corpus. New inputs collect in
# build-fuzz/corpus/<target>/; a failing input is saved as build-fuzz/artifacts/<target>/crash-*,
# and the run fails. Add such an input to tests/fuzz/corpus/<target>/ with its fix: the regular
# test suite replays every file there.
#
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]   e.g. scripts/fuzz.sh 300 tokenizer trace
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${1:-}" == "--help" ]]; then sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0; fi

seconds=60
if [[ $# -gt 0 && "$1" =~ ^[0-9]+$ ]]; then
  seconds=$1
  shift
fi
all=(tensor_codec tokenizer cluster_file checkpoint requests trace viewer_api openai_request frames)
targets=("$@")
((${#targets[@]})) || targets=("${all[@]}")
for t in "${targets[@]}"; do
  [[ " ${all[*]} " == *" $t "* ]] || { echo "fuzz.sh: unknown target '$t' (targets: ${all[*]})" >&2; exit 2; }
done

scripts/setup.sh
CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CXX_FLAGS_RELEASE="-O1 -g1" -DMOE_FUZZ=ON -DMOE_BUILD_BENCH=OFF >/dev/null
cmake --build build-fuzz --target "${targets[@]/#/fuzz_}"

export ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=1"
export LSAN_OPTIONS="suppressions=$PWD/tests/sanitizers/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
failed=()
for t in "${targets[@]}"; do
  corpus=build-fuzz/corpus/$t artifacts=build-fuzz/artifacts/$t
  mkdir -p "$corpus" "$artifacts"
  log=build-fuzz/fuzz-$t.log
  # -rss_limit_mb: LibTorch and a whole in-process cluster need more than libFuzzer's 2 GiB.
  if build-fuzz/tests/fuzz/fuzz_"$t" -max_total_time="$seconds" -timeout=60 -rss_limit_mb=6144 \
      -max_len=65536 -print_final_stats=1 -artifact_prefix="$artifacts/" \
      "$corpus" "tests/fuzz/corpus/$t" >"$log" 2>&1; then
    runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo '?')
    printf 'fuzz %-13s %8s executions in %ss, corpus %s files, no failure\n' "$t" "$runs" \
      "$seconds" "$(ls "$corpus" | wc -l)"
  else
    failed+=("$t")
    echo "fuzz $t: FAILED; the input is in $artifacts/, the log in $log:" >&2
    grep -A30 -m1 -E 'ERROR|fuzz check failed|deadly signal' "$log" >&2 || tail -40 "$log" >&2
  fi
done
if ((${#failed[@]})); then
  echo "fuzz.sh: failures in ${failed[*]}" >&2
  exit 1
fi
