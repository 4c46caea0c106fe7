#!/usr/bin/env bash
# The container path end to end, the way a user runs it: podman serving the Docker API to
# docker-compose, the image built from deploy/Dockerfile on debootstrapped Debian base images,
# and deploy/docker-compose.yml brought up and checked from the host through its published ports:
#   1. the image: size and largest parts (reported), non-root, no compiler, every role starts;
#      its programs are the build under test's (BINARIES=prebuilt, deploy/stage_binaries.sh),
#      or, with --from-source, compiled inside the image as `docker compose up --build` does;
#   2. health: every container healthy, every gRPC service SERVING through its published port;
#   3. Generate (greedy) gives the embedded run's text; WatchRouting streams the routing events;
#   4. the viewer's page and API;
#   5. a real Prometheus (Debian's, tests/container/prometheus.Dockerfile) scrapes every /metrics;
#   6. a service process killed inside the stack is restarted by its restart policy and serves
#      the same tokens again;
#   7. `down` leaves no container or network behind;
#   8. the Kubernetes manifests (kubectl kustomize deploy/k8s) run under `podman kube play`:
#      every pod serves, Generate gives the embedded run's text (tests/container/kube_play_split.py
#      stands in for what podman lacks: Services, cluster DNS, $(VAR) expansion).
# Published ports are picked free (MOE_PORT_*), so it runs beside a local cluster.
#
# Usage: tests/container/container_test.sh [--build=DIR] [--from-source] [--keep]
#   --build=DIR      the build tree whose programs go into the image and whose moectl and viewer
#                    query it from the host (default build)
#   --from-source    compile the project inside the image instead (the first time on a machine:
#                    the build stage's packages and a whole compile, about 25 min on 2 cores)
#   --keep           leave the stack up at the end (for debugging)
# Needs root (rootful podman) and the packages of scripts/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."

build=build
from_source=0
keep=0
for arg in "$@"; do
  case "$arg" in
    --build=*) build=${arg#--build=} ;;
    --from-source) from_source=1 ;;
    --keep) keep=1 ;;
    --help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "container_test: unknown argument '$arg' (see --help)" >&2; exit 2 ;;
  esac
done
if [[ $(id -u) -ne 0 ]]; then
  echo "container_test: needs root: podman runs rootful here (user namespaces are not set up)" >&2
  exit 1
fi
moectl=$build/clients/moectl/moectl
viewer=$build/clients/viewer/viewer
for b in "$moectl" "$viewer"; do
  [[ -x "$b" ]] || { echo "container_test: $b is missing: build it first (cmake --build $build)" >&2; exit 1; }
done
PY=/usr/bin/python3

start=$SECONDS
failures=0
step() { echo "== [$((SECONDS - start)) s] $*"; }
ok() { echo "ok   $*"; }
fail() {
  echo "FAIL $*" >&2
  failures=$((failures + 1))
}

# A short run directory: the API socket's path is limited to 107 bytes.
run_dir=$(mktemp -d /tmp/moe-ct.XXXXXX)
project=moect$$
compose=(docker-compose -p "$project" -f deploy/docker-compose.yml -f tests/container/compose.test.yml)
stack_up=0
kube_up=0
kube_net=""
kube_down() {  # every pod of the split manifests, then their network; non-zero if any of it failed
  local f rc=0
  for f in "$run_dir"/kube/*.yaml; do podman kube down "$f" >/dev/null 2>&1 || rc=1; done
  podman network rm "$kube_net" >/dev/null 2>&1 || rc=1
  return "$rc"
}
kube_logs() {  # the last lines of every pod's containers, for a failure's report
  local c
  for c in $(podman ps -a --format '{{.Names}}' 2>/dev/null); do
    [[ "$c" == *-infra || "$c" != *-pod-* ]] && continue
    echo "---- logs of pod container $c (last 30 lines)"
    podman logs --tail=30 "$c" 2>&1 || true
  done
}
cleanup() {
  local rc=$?
  if ((stack_up)); then
    if ((rc != 0 || failures)); then
      echo "---- logs of the stack (last 30 lines each)"
      "${compose[@]}" logs --no-color --tail=30 2>&1 | tail -200 || true
    fi
    if ((!keep)); then "${compose[@]}" down --timeout 5 >/dev/null 2>&1 || true; fi
  fi
  if ((kube_up)); then
    if ((rc != 0 || failures)); then kube_logs; fi
    if ((!keep)); then kube_down || true; fi
  fi
  if ((!keep)); then
    deploy/podman/service.sh stop --run-dir="$run_dir" || true
    rm -rf "$run_dir"
  fi
}
trap cleanup EXIT

step "podman API and health-check runner"
deploy/podman/service.sh start --run-dir="$run_dir" >/dev/null
eval "$(deploy/podman/service.sh env --run-dir="$run_dir")"
[[ "$(docker-compose version --short)" ]] || { echo "container_test: docker-compose is missing" >&2; exit 1; }

step "base images (debootstrap, cached)"
deploy/podman/base_images.sh

t0=$SECONDS
if ((from_source)); then
  step "image: podman build -f deploy/Dockerfile (compiled inside the image)"
  binaries=build
  if ! podman image exists moe-inference:latest; then
    echo "     this first build installs the build stage's packages (LibTorch, gRPC, ...) on the"
    echo "     debootstrapped base, compiles the project inside the image and installs the runtime"
    echo "     stage's packages: about 25 min on 2 cores; later runs reuse the layers"
  fi
else
  step "image: podman build -f deploy/Dockerfile --build-arg BINARIES=prebuilt (the programs of $build)"
  binaries=prebuilt
  deploy/stage_binaries.sh "$build" build/image
  if ! podman image exists moe-inference:latest; then
    echo "     the first build on a machine installs the runtime stage's packages (LibTorch and"
    echo "     what it loads): a few minutes; later runs reuse that layer"
  fi
fi
# Progress, not silence: each Dockerfile step as it starts and every 25th compile step, timed.
set +e
podman build --pull=never --layers --build-arg BINARIES="$binaries" -f deploy/Dockerfile \
  -t moe-inference:latest . 2>&1 |
  tee "$run_dir/build.log" |
  awk -v t0="$(date +%s)" '
    function stamp() { return sprintf("     [%3d s] ", systime() - t0) }
    /^(\[[0-9]+\/[0-9]+\] )?STEP [0-9]+\/[0-9]+:/ { print stamp() substr($0, 1, 110); fflush(); next }
    /^\[[0-9]+\/[0-9]+\] (Building|Linking)/ { split(substr($1, 2), f, "/"); if (f[1] % 25 == 0 || f[1] == f[2]) { print stamp() "compile " $1; fflush() } next }'
built=${PIPESTATUS[0]}
set -e
if [[ "$built" != 0 ]]; then
  tail -40 "$run_dir/build.log" >&2
  echo "container_test: the image build failed" >&2
  exit 1
fi
ok "image built in $((SECONDS - t0)) s"
# Every build whose sources changed leaves the previous build stage behind, untagged (2-3 GB,
# partly shared). Those of the last day stay as layer cache; older ones go.
podman image prune -f --filter until=24h >/dev/null 2>&1 || true

step "image contents"
size=$(podman image inspect --format '{{.Size}}' moe-inference:latest)
echo "     size $((size / 1000000)) MB; largest parts:"
podman run --rm --network=none moe-inference:latest bash -c \
  'du -xsm /usr/lib/x86_64-linux-gnu /usr/share /usr/local/bin /app /var /usr/bin 2>/dev/null | sort -rn' |
  sed 's/^/       /'
uid=$(podman run --rm --network=none moe-inference:latest id -u)
if [[ "$uid" == 10001 ]]; then ok "runs as uid 10001"; else fail "runs as uid $uid, not 10001"; fi
compilers=$(podman run --rm --network=none moe-inference:latest bash -c \
  'for c in cc gcc g++ c++ clang cpp ld as make cmake; do command -v $c; done; true')
if [[ -z "$compilers" ]]; then ok "no compiler, assembler, linker or build tool"; else fail "found: $compilers"; fi
for role in moe-router moe-expert-pool moe-orchestrator moectl viewer moe-train; do
  # Abseil's --help exits 1; what counts is that the binary loaded and listed its flags.
  podman run --rm --network=none moe-inference:latest "$role" --help >"$run_dir/help.txt" 2>&1 || true
  if grep -q "Flags from" "$run_dir/help.txt"; then
    ok "$role --help"
  else
    fail "$role --help: $(head -3 "$run_dir/help.txt")"
  fi
done

step "Prometheus image (Debian's prometheus on the same base)"
podman build --pull=never --layers -f tests/container/prometheus.Dockerfile -t moe-test-prometheus:latest \
  tests/container >"$run_dir/prometheus-build.log" 2>&1 || {
  tail -20 "$run_dir/prometheus-build.log" >&2
  exit 1
}

# Free host ports for everything the stack publishes.
read -r -a ports < <("$PY" -c '
import socket
socks = [socket.socket() for _ in range(12)]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))')
export MOE_PORT_ORCHESTRATOR=${ports[0]} MOE_PORT_ROUTER=${ports[1]} MOE_PORT_POOL_A=${ports[2]} \
  MOE_PORT_POOL_B=${ports[3]} MOE_PORT_ORCHESTRATOR_METRICS=${ports[4]} \
  MOE_PORT_ROUTER_METRICS=${ports[5]} MOE_PORT_POOL_A_METRICS=${ports[6]} \
  MOE_PORT_POOL_B_METRICS=${ports[7]} MOE_PORT_VIEWER=${ports[8]} MOE_PORT_PROMETHEUS=${ports[9]} \
  MOE_PORT_GRAFANA=${ports[10]} MOE_PORT_ORCHESTRATOR_HTTP=${ports[11]}
services=(router pool-a pool-b orchestrator viewer prometheus)

step "docker-compose up -d ${services[*]} (Grafana's image cannot be pulled here)"
stack_up=1
t0=$SECONDS
timeout 600 "${compose[@]}" up -d --no-build "${services[@]}" 2>&1 | sed 's/^/     /'
ok "up in $((SECONDS - t0)) s"

container() { echo "${project}_$1_1"; }
health_of() { podman inspect --format '{{.State.Health.Status}}' "$(container "$1")" 2>/dev/null || echo missing; }
wait_healthy() {
  local name=$1 deadline=$((SECONDS + $2))
  while ((SECONDS < deadline)); do
    [[ "$(health_of "$name")" == healthy ]] && return 0
    sleep 1
  done
  return 1
}

step "health"
for s in "${services[@]}"; do
  if wait_healthy "$s" 180; then ok "$s healthy"; else fail "$s is $(health_of "$s") after 180 s"; fi
done
declare -A grpc_port=([orchestrator]=$MOE_PORT_ORCHESTRATOR [router]=$MOE_PORT_ROUTER
  [pool-a]=$MOE_PORT_POOL_A [pool-b]=$MOE_PORT_POOL_B)
for s in orchestrator router pool-a pool-b; do
  if "$moectl" health --target="127.0.0.1:${grpc_port[$s]}" --timeout_s=30 >/dev/null; then
    ok "$s SERVING on its published port"
  else
    fail "$s is not SERVING on 127.0.0.1:${grpc_port[$s]}"
  fi
done

orch=127.0.0.1:$MOE_PORT_ORCHESTRATOR
if curl -fsS --max-time 30 "http://127.0.0.1:$MOE_PORT_ORCHESTRATOR_HTTP/v1/models" | grep -q '"brown-moe"'; then
  ok "orchestrator: the OpenAI-compatible API answers on its published port"
else
  fail "orchestrator: no GET /v1/models on 127.0.0.1:$MOE_PORT_ORCHESTRATOR_HTTP"
fi
prompts=("The jury said that the city" "He was a member of the")
declare -A embedded
for p in "${prompts[@]}"; do
  embedded[$p]=$("$moectl" generate --embedded --temperature=0 --max_tokens=16 "$p" 2>/dev/null)
done
check_generate() {
  local what=$1 p got
  for p in "${prompts[@]}"; do
    got=$("$moectl" generate --target="$orch" --temperature=0 --max_tokens=16 "$p" 2>"$run_dir/gen.err") || {
      fail "$what: Generate failed: $(tail -2 "$run_dir/gen.err")"
      continue
    }
    if [[ "$got" == "${embedded[$p]}" ]]; then
      ok "$what: greedy \"$p\" = the embedded run"
    else
      fail "$what: \"$got\" != embedded \"${embedded[$p]}\""
    fi
  done
}

step "Generate and WatchRouting through the published port"
# 2 prompts x 16 tokens x every MoE layer: at least 32 token events; stop at 32.
"$viewer" record --target="$orch" --out="$run_dir/trace.bin" --snapshot_interval_ms=0 \
  --max_events=32 --duration_s=120 >"$run_dir/record.log" 2>&1 &
recorder=$!
sleep 2
check_generate "cluster"
if wait "$recorder"; then
  if "$viewer" gif --trace="$run_dir/trace.bin" --png_frame=0 --out="$run_dir/frame.png" >/dev/null 2>&1 &&
    [[ -s "$run_dir/frame.png" ]]; then
    ok "WatchRouting: 32 events recorded, and the trace renders"
    # Inside the image too: the GIF's text needs fontconfig's configuration and a font there.
    chmod 755 "$run_dir" && chmod 644 "$run_dir/trace.bin"
    if podman run --rm --network=none -v "$run_dir:/trace:ro" moe-inference:latest viewer gif \
      --trace=/trace/trace.bin --png_frame=0 --out=/tmp/frame.png >"$run_dir/gif.log" 2>&1 &&
      ! grep -qi fontconfig "$run_dir/gif.log"; then
      ok "the image renders the trace (fonts present)"
    else
      fail "viewer gif in the image: $(tail -3 "$run_dir/gif.log")"
    fi
  else
    fail "WatchRouting: the recorded trace does not render"
  fi
else
  fail "WatchRouting: viewer record failed: $(tail -3 "$run_dir/record.log")"
fi

step "viewer"
web=http://127.0.0.1:$MOE_PORT_VIEWER
# Fetched whole before grep: with pipefail, grep -q stopping early fails curl with SIGPIPE.
page=$(curl -sf "$web/" || true)
if grep -qi '<html' <<<"$page"; then ok "viewer page"; else fail "viewer page at $web/"; fi
info=$(curl -sf "$web/api/info" || true)
if "$PY" -c 'import json, sys; d = json.loads(sys.argv[1]); assert d, d' "$info" 2>/dev/null &&
  grep -q brown-moe <<<"$info"; then
  ok "viewer /api/info names the model"
else
  fail "viewer /api/info: ${info:0:200}"
fi

step "Prometheus scrapes every /metrics"
prom=http://127.0.0.1:$MOE_PORT_PROMETHEUS
targets_up() {
  curl -sf "$prom/api/v1/targets" | "$PY" -c '
import json, sys
t = json.load(sys.stdin)["data"]["activeTargets"]
up = sorted(x["labels"]["instance"] for x in t if x["health"] == "up")
print(len(t), len(up), " ".join(up))'
}
deadline=$((SECONDS + 90))
state=""
while ((SECONDS < deadline)); do
  state=$(targets_up || true)
  read -r total up _ <<<"${state:-0 0}"
  ((total == 4 && up == 4)) && break
  sleep 2
done
if ((total == 4 && up == 4)); then ok "4 of 4 targets up: ${state#* * }"; else fail "targets: $state"; fi
# The generations above must show in a scraped MoE metric.
query() { curl -sf "$prom/api/v1/query" --data-urlencode "query=$1" | "$PY" -c '
import json, sys
r = json.load(sys.stdin)["data"]["result"]
print(sum(float(x["value"][1]) for x in r))'; }
at_least() { "$PY" -c 'import sys; sys.exit(float(sys.argv[1]) < float(sys.argv[2]))' "$1" "$2"; }
deadline=$((SECONDS + 30))
tokens=0
while ((SECONDS < deadline)); do
  tokens=$(query 'sum(moe_tokens_generated_total)' || echo 0)
  at_least "$tokens" 32 && break
  sleep 2
done
if at_least "$tokens" 32; then
  ok "Prometheus: moe_tokens_generated_total = $tokens"
else
  fail "Prometheus: generated tokens $tokens, expected >= 32"
fi

step "a pool killed inside the stack comes back by its restart policy"
victim=$(container pool-b)
restarts=$(podman inspect --format '{{.RestartCount}}' "$victim")
init_pid=$(podman inspect --format '{{.State.Pid}}' "$victim")
service_pid=$(pgrep -P "$init_pid" | head -1 || true)
if [[ -z "$service_pid" ]]; then
  fail "no service process under pool-b's init ($init_pid)"
else
  kill -KILL "$service_pid"
  deadline=$((SECONDS + 120))
  while ((SECONDS < deadline)); do
    now=$(podman inspect --format '{{.RestartCount}}' "$victim" 2>/dev/null || echo "$restarts")
    ((now > restarts)) && break
    sleep 1
  done
  if ((now > restarts)) && wait_healthy pool-b 180; then
    ok "pool-b restarted ($restarts -> $now) and healthy"
    # The router re-checks pool health every few seconds; Generate must succeed again.
    "$moectl" health --target="127.0.0.1:$MOE_PORT_POOL_B" --timeout_s=30 >/dev/null || true
    sleep 5
    check_generate "after the restart"
  else
    fail "pool-b was not restarted healthy (restarts $restarts -> $now, $(health_of pool-b))"
  fi
fi

if ((keep)); then
  echo "container_test: --keep: the stack is up as project $project; DOCKER_HOST and CONTAINERS_CONF:"
  deploy/podman/service.sh env --run-dir="$run_dir"
else
  if ((failures)); then
    echo "---- logs of the stack (last 30 lines each), for the failures above"
    "${compose[@]}" logs --no-color --tail=30 2>&1 | tail -200 || true
  fi
  step "docker-compose down"
  if "${compose[@]}" down --timeout 10 2>&1 | sed 's/^/     /'; then ok "down"; else fail "down failed"; fi
  stack_up=0
  left=$(podman ps -a --filter "label=com.docker.compose.project=$project" --format '{{.Names}}')
  if [[ -z "$left" ]]; then ok "no container left"; else fail "containers left: $left"; fi
  networks=$(podman network ls --format '{{.Name}}')
  if grep -q "^${project}_" <<<"$networks"; then
    fail "network left: $(grep "^${project}_" <<<"$networks")"
  else
    ok "no network left"
  fi
fi

step "Kubernetes: the kustomize output under podman kube play"
# podman 4.3 has no Services, cluster DNS or $(VAR) expansion, and restarts init containers;
# kube_play_split.py stands in for those (fixed pod IPs, hostAliases, expansion, no init
# containers) and changes nothing else. One kube play per Deployment, in start order; before the
# orchestrator, what its init container does: wait until the router and the pools serve.
kube_net=${project}_kube
kubectl kustomize deploy/k8s >"$run_dir/k8s.yaml"
# What an interrupted run left (its network holds the subnet; its pods hold the names) goes first.
for f in $(podman network ls --format '{{.Name}}' | grep -E '^moect[0-9]+_kube$' || true); do
  podman pod ps --filter "network=$f" --format '{{.Name}}' | xargs -r podman pod rm -f >/dev/null
  podman network rm -f "$f" >/dev/null
done
# A kube play killed mid-way leaves its containers in storage only, holding the names the next
# play needs.
podman ps -a --external --format '{{.Names}} {{.Status}}' |
  awk '$1 ~ /-pod-0-/ && $2 == "Storage" {print $1}' | xargs -r podman rm --storage >/dev/null
podman network create --subnet=10.213.77.0/24 "$kube_net" >/dev/null
kube_up=1
"$PY" tests/container/kube_play_split.py "$run_dir/k8s.yaml" "$run_dir/kube" 10.213.77 >"$run_dir/kube.list"
declare -A pod_ip
declare -A kube_port=([router]=50051 [pool-a]=50061 [pool-b]=50062 [orchestrator]=50050)
while read -r name ip file; do
  pod_ip[$name]=$ip
  if [[ "$name" == orchestrator ]]; then
    for s in router pool-a pool-b; do
      "$moectl" health --target="${pod_ip[$s]}:${kube_port[$s]}" --timeout_s=300 >/dev/null ||
        fail "pod $s is not SERVING at ${pod_ip[$s]}:${kube_port[$s]}"
    done
  fi
  rc=0
  timeout -k 10 300 podman kube play --replace --network="$kube_net" --ip="$ip" "$file" \
    >"$run_dir/kube-$name.log" 2>&1 || rc=$?
  if ((rc == 0)); then
    ok "kube play $name ($ip)"
  elif ((rc == 124 || rc == 137)); then
    fail "kube play $name: no answer in 300 s, stopped (podman hung; its log: $run_dir/kube-$name.log)"
  else
    fail "kube play $name: $(grep -v 'level=warning' "$run_dir/kube-$name.log" | tail -3)"
  fi
done <"$run_dir/kube.list"
for s in router pool-a pool-b orchestrator; do
  if "$moectl" health --target="${pod_ip[$s]}:${kube_port[$s]}" --timeout_s=120 >/dev/null; then
    ok "pod $s SERVING"
  else
    fail "pod $s is not SERVING at ${pod_ip[$s]}:${kube_port[$s]}"
  fi
done
# The router routes only to pools its own health checks have seen answer, and a pod that has
# just come up SERVING may not have been checked yet: wait for the router to see both pools.
router_sees_pools() {
  local i
  for ((i = 0; i < 120; i++)); do
    (($("$moectl" placement --target="$1" 2>/dev/null | grep -c '"healthy": true') >= 2)) && return 0
    sleep 0.5
  done
  return 1
}
if router_sees_pools "${pod_ip[router]}:${kube_port[router]}"; then
  ok "kube play: the router sees both pools healthy"
else
  fail "kube play: the router did not see both pools healthy in 60 s"
fi
orch=${pod_ip[orchestrator]}:50050
check_generate "kube play"
info=$(curl -sf "http://${pod_ip[viewer]}:8080/api/info" || true)
if grep -q brown-moe <<<"$info"; then
  ok "pod viewer /api/info"
else
  fail "pod viewer /api/info at ${pod_ip[viewer]}:8080"
fi
if ((!keep)); then
  if ((failures)); then kube_logs; fi
  kube_down || fail "kube down of $run_dir/kube/*.yaml or network $kube_net"
  kube_up=0
  if [[ -z "$(podman pod ps --filter "network=$kube_net" --format '{{.Name}}')" ]]; then
    ok "kube down: no pod left"
  else
    fail "pods left: $(podman pod ps --format '{{.Name}}')"
  fi
fi

echo "container_test: $failures failure(s) in $((SECONDS - start)) s"
((failures == 0))
