#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine (idempotent), builds everything and runs every test: unit,
# integration (real processes on loopback), multi-host (each service in its own network
# namespace), the PyTorch reference, the browser and Prometheus end-to-end tests, and the
# container path (podman + docker-compose + the Kubernetes manifests).
#
# Usage: scripts/test.sh [--rerun] [--sanitize=address|thread] [SELECTION] [ctest args...]
# A run that passed leaves a stamp of what it tested (every file git tracks or would add, the
# installed packages, the arguments); the same command on the same tree then says so and runs
# nothing, in seconds, as `go test` reports a cached result. --rerun runs the tests anyway.
# One part of the suite (the tests' own times summed, measured on a quiet 2-core machine; ctest
# runs two tests at a time, so a part of many short tests takes about half its sum):
#   --unit          the unit and in-process service tests, fuzz corpora, scripts   ~4.5 min
#   --integration   real processes on loopback (ctest -L integration), one by one  ~3 min
#   --multihost     each service on a host of its own, plain and mutual TLS        ~30 s each
#   --container     the image (from this build's programs), compose and the Kubernetes manifests
#                   under podman, ~1.5 min; the first run on a machine also builds the base images
#                   (debootstrap) and the image's runtime layer, several minutes more, and says so
#   --e2e           headless Chromium on the viewer, a real Prometheus, the openai client ~35 s
#   --reference     the independent PyTorch oracle                                 ~10 s
#   or any ctest arguments, e.g. scripts/test.sh -R 'RouterServiceTest'
# The whole run: about 8 min of tests, after a build of ~3 min when ccache holds the objects
# (a new clone on a machine that built before) or ~10 min when it holds nothing; meanwhile a
# machine without the container test's base images builds them in the background.
# The build: every executable links with lld (about a second each); ccache keeps objects across
# build trees and clones, so a rebuild of what did not change takes seconds.
#   --sanitize=address  AddressSanitizer + UndefinedBehaviorSanitizer build (build-asan/, CMake's
#                       default generator) over the unit and integration tests
#   --sanitize=thread   ThreadSanitizer build (build-tsan/) over the concurrent parts: event hub,
#                       stream calls, engine lanes, router state, the services in process. The
#                       tests run on Debian's Abseil rebuilt with TSan (scripts/tsan_abseil.sh),
#                       so absl::Mutex is seen; gRPC stays uninstrumented, its handoffs are
#                       suppressed (tests/sanitizers/tsan.supp, docs/RELIABILITY.md)
# A sanitizer run fails on any sanitizer report, from the tests or from the processes they start.
# Each phase (setup, build, tests) prints its time when it ends.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${1:-}" == "--help" ]]; then sed -n '2,34p' "$0" | sed 's/^# \{0,1\}//'; exit 0; fi
rerun=0
if [[ "${1:-}" == "--rerun" ]]; then
  rerun=1
  shift
fi
args="$*"

sanitize=""
if [[ "${1:-}" == --sanitize=* ]]; then
  sanitize=${1#--sanitize=}
  shift
  if [[ "$sanitize" != address && "$sanitize" != thread ]]; then
    echo "test.sh: --sanitize must be address or thread, not '$sanitize'" >&2
    exit 2
  fi
fi
selection=()
case "${1:-}" in
  --unit) selection=(-LE 'integration|multihost|container|e2e|reference') ;;
  --integration) selection=(-L integration) ;;
  --multihost) selection=(-L multihost) ;;
  --container) selection=(-L container) ;;
  --e2e) selection=(-L e2e) ;;
  --reference) selection=(-L reference) ;;
esac
if ((${#selection[@]})); then shift; fi
phase_start=$SECONDS
phase() {  # phase NAME: prints how long the phase that just ended took
  echo "test.sh: $1 took $((SECONDS - phase_start)) s"
  phase_start=$SECONDS
}

scripts/setup.sh
phase setup

# What a passing run tested: the content of every file git tracks or would add (not the ignored
# build trees and node_modules), the installed packages and this command's arguments.
fingerprint() {
  {
    git ls-files -z --cached --others --exclude-standard | sort -z |
      xargs -0 sha256sum 2>/dev/null
    dpkg-query -W -f '${Package} ${Version}\n'
    echo "args: $args"
  } | sha256sum | cut -d' ' -f1
}
# skip_if_passed DIR: exits 0 if the last run in DIR passed on exactly this tree and command.
# The tree is fingerprinted here, before the tests: what changes while they run is not vouched for.
skip_if_passed() {
  local stamp=$1/.tests-passed
  tested=$(fingerprint)
  ((rerun == 0)) && [[ -f "$stamp" ]] || return 0
  [[ "$(head -1 "$stamp")" == "$tested" ]] || return 0
  echo "test.sh: nothing changed since the run that passed $(sed -n 2p "$stamp"), so no test"
  echo "test.sh: runs again; scripts/test.sh --rerun${args:+ $args} runs them anyway"
  exit 0
}
# mark_passed DIR: records that this tree and command passed.
mark_passed() { printf '%s\n%s\n' "$tested" "$(date -u '+%Y-%m-%d %H:%M UTC')" >"$1/.tests-passed"; }
log=$(mktemp)
trap 'rm -f "$log"' EXIT

if [[ -z "$sanitize" ]]; then
  # The container test's Debian base images: on a machine that lacks them, debootstrap (mostly
  # downloads and unpacking) runs in the background while the compiler does, not after it.
  # When they exist this takes a second. The container test then finds them made.
  base_images_pid=""
  if [[ $# -eq 0 && (${#selection[@]} -eq 0 || "${selection[*]}" == "-L container") ]]; then
    mkdir -p build
    CONTAINERS_CONF=$PWD/deploy/podman/containers.conf deploy/podman/base_images.sh \
      >build/base_images.log 2>&1 &
    base_images_pid=$!
  fi
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
  cmake --build build
  phase build
  if [[ -n "$base_images_pid" ]]; then
    if ! wait "$base_images_pid"; then
      echo "test.sh: making the base images in the background failed (the container test tries"
      echo "test.sh: again and reports why); its log, build/base_images.log, ends:"
      tail -5 build/base_images.log
    fi
    phase "base images (beside the build)"
  fi
  skip_if_passed build
  rm -f build/.tests-passed
  # The browser test's driver (playwright-core), the Kubernetes API schemas (kubernetes-models)
  # and the official openai client, each pinned in its package-lock.json.
  if [[ ! -d tests/e2e/node_modules/playwright-core ]]; then
    (cd tests/e2e && npm ci --no-audit --no-fund)
  fi
  if [[ ! -d tests/k8s/node_modules/kubernetes-models ]]; then
    (cd tests/k8s && npm ci --no-audit --no-fund)
  fi
  if [[ ! -d tests/openai/node_modules/openai ]]; then
    (cd tests/openai && npm ci --no-audit --no-fund)
  fi
  ctest --test-dir build --output-on-failure --timeout 900 -j2 "${selection[@]}" "$@" 2>&1 |
    tee "$log"
  phase tests
else
  supp=$PWD/tests/sanitizers
  if [[ "$sanitize" == address ]]; then
    dir=build-asan
    # The unit and integration tests; the Python reference, the browser test, the container
    # test and the multi-host test run unsanitized.
    select=(-LE 'reference|e2e|container|multihost')
    targets=(all)
  else
    dir=build-tsan
    select=(-R '^(EventHubTest|StreamCallTest|EngineTest|ReplicaSelectorTest|PlacementTableTest|PlacementTest|LoadMeterTest|RouterServiceTest|ElasticPlacementTest|OrchestratorServiceTest|OrchestratorAdmissionTest|StreamsAndUnary/RemoteExecutorTest|FailoverTest|ExpertPoolServiceTest)\.')
    targets=(models_test service_common_test router_test orchestrator_test expert_pool_test)
  fi
  # -O1 -g1: line tables for the reports, asserts on, and a quicker build than -O2 -g. No -G:
  # CMake's default generator (Unix Makefiles), so every change builds with it as well as
  # with Ninja. Discovering the gtest cases runs each test binary at build time: no leak check.
  ASAN_OPTIONS=detect_leaks=0 cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g1" \
    -DMOE_SANITIZE="$sanitize" -DMOE_BUILD_BENCH=OFF
  ASAN_OPTIONS=detect_leaks=0 cmake --build "$dir" --parallel "$(nproc)" --target "${targets[@]}"
  phase build
  skip_if_passed "$dir"
  rm -f "$dir/.tests-passed"
  if [[ "$sanitize" == thread ]]; then
    # Debian's Abseil is not built for TSan, which then cannot see absl::Mutex (ours and gRPC's)
    # and reports every access it guards. The same version and patches built with TSan has the
    # same SONAMEs, so it replaces Debian's for the tests at run time, with the build's compiler.
    CXX=$(sed -n 's/^CMAKE_CXX_COMPILER:FILEPATH=//p' "$dir/CMakeCache.txt") \
      scripts/tsan_abseil.sh "$dir/absl-tsan"
    export LD_LIBRARY_PATH=$PWD/$dir/absl-tsan/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  fi
  reports=$PWD/$dir/sanitizer-reports
  rm -rf "$reports"
  mkdir -p "$reports"
  # Reports go to files (one per process), so a report from a server a test started counts too.
  export ASAN_OPTIONS="log_path=$reports/asan:detect_leaks=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1"
  export UBSAN_OPTIONS="log_path=$reports/ubsan:print_stacktrace=1"
  export LSAN_OPTIONS="suppressions=$supp/lsan.supp:print_suppressions=0"
  export TSAN_OPTIONS="log_path=$reports/tsan:suppressions=$supp/tsan.supp:second_deadlock_stack=1"
  status=0
  ctest --test-dir "$dir" --output-on-failure --timeout 1800 -j2 "${select[@]}" \
    "${selection[@]}" "$@" 2>&1 | tee "$log" || status=$?
  phase tests
  if compgen -G "$reports/*" >/dev/null; then
    for f in "$reports"/*; do
      echo "==== $f"
      head -c 20000 "$f"
    done
    echo "test.sh: $(ls "$reports" | wc -l) sanitizer report(s) above (kept in $dir/sanitizer-reports)" >&2
    exit 1
  fi
  ((status == 0)) || exit "$status"
fi
# ctest counts a skipped test as passing; nothing here may skip, so a skip is a failure.
if grep -qE '\(Skipped\)$' "$log"; then
  echo "test.sh: the tests above were skipped; that counts as a failure" >&2
  exit 1
fi
mark_passed "${dir:-build}"
