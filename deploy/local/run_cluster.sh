#!/usr/bin/env bash
# Runs the whole system on this machine, without Docker: router, pool-a, pool-b, orchestrator
# and the web viewer, on 127.0.0.1 with the ports of docs/CONTRACTS.md and the cluster file
# deploy/local/cluster.json (more pools with --pools: they join the router and get experts at
# its next rebalance). Builds first (incremental), waits until every service answers SERVING,
# prints how to use it, then stays in the foreground, supervising: a process that dies is
# restarted (after 1, 2, 4 ... up to 30 s; the count resets once it has run for a minute), the
# rest keep running. Ctrl-C (or SIGTERM) stops everything it started.
#
# Usage: deploy/local/run_cluster.sh [options]
#   --detach              start, print, and return, leaving a supervisor in the background that
#                         restarts a process that dies, as the foreground launcher does (it is
#                         this script again, in its own session; RUN_DIR/supervisor.{log,pid})
#   --stop                stop a cluster started with --detach (same --run-dir): its supervisor
#                         first, so that nothing is restarted, then every process it started
#   --run-dir=DIR         logs and pid files (default build/cluster-logs)
#   --model=DIR           checkpoint for every service (default $MODEL, else models/brown-moe)
#   --random-init=CONFIG  a random model from CONFIG.json instead of a checkpoint
#   --seed=N              seed of --random-init (default 0)
#   --device=DEV          device of both pools: cpu (default) or cuda:N
#   --threads=N           intra-op threads of each service (default: the services' own)
#   --pools=N             expert pools, 2 to 8 (default 2); those past pool-b start with no
#                         experts and get some at the router's next rebalance
#   --port-offset=N       add N to every port (gRPC, metrics, viewer), e.g. beside a running
#                         cluster; the cluster file with the shifted addresses goes in the run dir
#   --tls                 mutual TLS on every hop: a CA and a certificate per process are made in
#                         RUN_DIR/tls (deploy/tls/make_certs.sh); services, viewer and moectl
#                         present theirs and refuse peers the CA did not sign
#   --no-build            do not run the CMake build
#   -h, --help            this text
# Environment: MODEL, BUILD_DIR (default build), HEALTH_TIMEOUT_S (default 60).
set -euo pipefail
set +m  # no job control: each background child must not lead a process group (see start())

SELF=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")
usage() { sed -n '2,/^set -euo/p' "$SELF" | sed '$d' | sed 's/^# \{0,1\}//'; }

# Everything below is relative to the repository root.
cd "$(dirname "$SELF")/../.."

BUILD_DIR=${BUILD_DIR:-build}
MODEL=${MODEL:-models/brown-moe}
HEALTH_TIMEOUT_S=${HEALTH_TIMEOUT_S:-60}
RUN_DIR=$BUILD_DIR/cluster-logs
CLUSTER=deploy/local/cluster.json
MODE=foreground
BUILD=1
RANDOM_INIT=
SEED=0
DEVICE=cpu
THREADS=
POOLS=2
PORT_OFFSET=0
TLS=0

for arg in "$@"; do
  case "$arg" in
    --detach) MODE=detach ;;
    --stop) MODE=stop ;;
    --supervise) MODE=supervise ;;  # what --detach runs in the background; not for direct use
    --run-dir=*) RUN_DIR=${arg#*=} ;;
    --model=*) MODEL=${arg#*=} ;;
    --random-init=*) RANDOM_INIT=${arg#*=} ;;
    --seed=*) SEED=${arg#*=} ;;
    --device=*) DEVICE=${arg#*=} ;;
    --threads=*) THREADS=${arg#*=} ;;
    --pools=*) POOLS=${arg#*=} ;;
    --port-offset=*) PORT_OFFSET=${arg#*=} ;;
    --tls) TLS=1 ;;
    --no-build) BUILD=0 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "run_cluster: unknown option '$arg' (see --help)" >&2; exit 2 ;;
  esac
done

# The processes, in start order: name, binary (under BUILD_DIR), gRPC port, metrics port.
[[ "$POOLS" =~ ^[2-8]$ ]] || { echo "run_cluster: --pools: must be in [2, 8], got '$POOLS'" >&2; exit 2; }
[[ "$PORT_OFFSET" =~ ^[0-9]+$ ]] && ((PORT_OFFSET <= 10000)) ||
  { echo "run_cluster: --port-offset: must be in [0, 10000], got '$PORT_OFFSET'" >&2; exit 2; }

POOL_NAMES=()
declare -A BIN=(
  [router]=services/router/moe-router
  [orchestrator]=services/orchestrator/moe-orchestrator
  [viewer]=clients/viewer/viewer
)
declare -A GRPC=([orchestrator]=$((50050 + PORT_OFFSET)) [router]=$((50051 + PORT_OFFSET)))
declare -A METRICS=([orchestrator]=$((9100 + PORT_OFFSET)) [router]=$((9101 + PORT_OFFSET)))
letters=(a b c d e f g h)
for ((i = 0; i < POOLS; i++)); do
  p=pool-${letters[i]}
  POOL_NAMES+=("$p")
  BIN[$p]=services/expert_pool/moe-expert-pool
  GRPC[$p]=$((50061 + i + PORT_OFFSET))
  METRICS[$p]=$((9111 + i + PORT_OFFSET))
done
NAMES=("${POOL_NAMES[@]}" router orchestrator viewer)
VIEWER_PORT=$((8080 + PORT_OFFSET))
HTTP_API_PORT=$((8000 + PORT_OFFSET))  # the orchestrator's OpenAI-compatible API
MOECTL=$BUILD_DIR/clients/moectl/moectl

declare -A PID=()
STARTED=()
BACKOFF_PID=

log() { echo "run_cluster: $*"; }
die() { echo "run_cluster: error: $*" >&2; exit 1; }

# True while the process runs. A dead child of ours stays a zombie until waited for, and
# `kill -0` succeeds on zombies, so read its state instead.
alive() {
  local state
  state=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [[ -n "$state" && "$state" != Z ]]
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Stops the given pids' process groups: SIGTERM, up to 10 s, then SIGKILL.
stop_pids() {
  local pid left i
  for pid in "$@"; do
    if alive "$pid"; then kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true; fi
  done
  for ((i = 0; i < 100; i++)); do
    left=0
    for pid in "$@"; do if alive "$pid"; then left=1; fi; done
    ((left)) || return 0
    sleep 0.1
  done
  for pid in "$@"; do
    if alive "$pid"; then
      log "pid $pid ignored SIGTERM for 10 s; killing it"
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
  done
}

# Stops what this invocation started, newest first.
stop_started() {
  local pids=() i
  # A restart's backoff, cut short.
  [[ -z "$BACKOFF_PID" ]] || kill "$BACKOFF_PID" 2>/dev/null || true
  for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do pids+=("${PID[${STARTED[i]}]}"); done
  ((${#pids[@]})) || return 0
  log "stopping ${STARTED[*]}"
  stop_pids "${pids[@]}"
  wait 2>/dev/null || true
  for name in "${STARTED[@]}"; do rm -f "$RUN_DIR/$name.pid"; done
  STARTED=()
}

# A process died while starting or serving: show why, stop the rest, fail.
died() {
  local name=$1
  echo "run_cluster: error: $name exited; last lines of $RUN_DIR/$name.log:" >&2
  tail -n 40 "$RUN_DIR/$name.log" >&2 || true
  stop_started
  exit 1
}

# The supervisor a --detach left in RUN_DIR, if it still runs: its pid, checked against its
# command line (pids get reused).
supervisor_pid() {
  local pid
  pid=$(cat "$RUN_DIR/supervisor.pid" 2>/dev/null) || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] && alive "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "run_cluster.sh .*--supervise" || return 1
  echo "$pid"
}

# --stop: first the supervisor, which on SIGTERM stops what it started (newest first) and exits,
# without restarting anything. Then whatever it left (it was killed, or the processes outlived
# it): those are not our children, so check that each pid is still the binary started before
# signalling it (pids get reused).
if [[ "$MODE" == stop ]]; then
  stopped=0
  if sup=$(supervisor_pid); then
    log "stopping the supervisor (pid $sup) and what it started"
    kill -TERM "$sup" 2>/dev/null || true
    # It gives its processes 10 s before killing them.
    for ((i = 0; i < 300; i++)); do alive "$sup" || break; sleep 0.1; done
    if alive "$sup"; then
      log "supervisor (pid $sup) still runs after 30 s; killing it"
      kill -KILL -- "-$sup" 2>/dev/null || kill -KILL "$sup" 2>/dev/null || true
    fi
    stopped=1
  fi
  rm -f "$RUN_DIR/supervisor.pid"
  pids=()
  # Every pid file, whatever --pools the cluster was started with.
  for f in "$RUN_DIR"/*.pid; do
    [[ -f "$f" ]] || continue
    name=$(basename "$f" .pid)
    bin=${BIN[$name]:-services/expert_pool/moe-expert-pool}
    pid=$(<"$f")
    exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
    if [[ "$pid" =~ ^[0-9]+$ ]] && [[ "$(basename -- "${exe% (deleted)}")" == "$(basename "$bin")" ]]; then
      pids+=("$pid")
      log "stopping $name (pid $pid)"
    else
      log "$name (pid $pid) is not running"
    fi
    rm -f "$f"
  done
  if ((${#pids[@]})); then
    stop_pids "${pids[@]}"
  elif ((!stopped)); then
    log "no running cluster found in $RUN_DIR"
    exit 0
  fi
  log "stopped"
  exit 0
fi

# ---------------------------------------------------------------------------------------------
# Start.

if ((BUILD)); then
  if [[ ! -f "$BUILD_DIR/CMakeCache.txt" ]]; then
    log "configuring $BUILD_DIR"
    cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release
  fi
  log "building (incremental)"
  cmake --build "$BUILD_DIR"
fi
for name in "${NAMES[@]}"; do
  [[ -x "$BUILD_DIR/${BIN[$name]}" ]] || die "$BUILD_DIR/${BIN[$name]} is missing (build first, or drop --no-build)"
done
[[ -x "$MOECTL" ]] || die "$MOECTL is missing (build first, or drop --no-build)"

# --detach: this script again, as the supervisor, in a session of its own (no terminal, so no
# SIGHUP when it closes), its output in RUN_DIR/supervisor.log. Show that log until the cluster
# is up, then return; if the supervisor gives up while starting, show why and fail.
if [[ "$MODE" == detach ]]; then
  if sup=$(supervisor_pid); then
    die "a supervisor already runs in $RUN_DIR (pid $sup); first: deploy/local/run_cluster.sh --stop --run-dir=$RUN_DIR"
  fi
  mkdir -p "$RUN_DIR"
  : >"$RUN_DIR/supervisor.log"
  args=()
  for arg in "$@"; do [[ "$arg" == --detach ]] || args+=("$arg"); done
  setsid bash "$SELF" --supervise --no-build "${args[@]}" </dev/null >>"$RUN_DIR/supervisor.log" 2>&1 &
  sup=$!
  trap 'echo; kill -TERM "$sup" 2>/dev/null; exit 130' INT
  shown=0
  while true; do
    up=0
    grep -q '^  stop: ' "$RUN_DIR/supervisor.log" && up=1
    alive "$sup" || up=2
    size=$(stat -c %s "$RUN_DIR/supervisor.log")
    if ((size > shown)); then
      tail -c "+$((shown + 1))" "$RUN_DIR/supervisor.log" | head -c "$((size - shown))"
      shown=$size
    fi
    ((up == 1)) && exit 0
    ((up == 2)) && die "the supervisor exited while starting the cluster (log: $RUN_DIR/supervisor.log)"
    sleep 0.2
  done
fi

if [[ -n "$RANDOM_INIT" ]]; then
  [[ -f "$RANDOM_INIT" ]] || die "--random-init: no file $RANDOM_INIT"
  MODEL_ARGS=(--random_init="$RANDOM_INIT" --init_seed="$SEED")
else
  [[ -d "$MODEL" ]] || die "no checkpoint at $MODEL (train one, set MODEL or --model, or use --random-init=CONFIG.json)"
  MODEL_ARGS=(--model="$MODEL")
fi
if ((PORT_OFFSET)); then
  mkdir -p "$RUN_DIR"
  # The same placement with every address's port shifted.
  /usr/bin/python3 - "$CLUSTER" "$PORT_OFFSET" >"$RUN_DIR/cluster.json" <<'PYEOF'
import json, sys
c = json.load(open(sys.argv[1]))
def shift(a):
    host, port = a["address"].rsplit(":", 1)
    a["address"] = f"{host}:{int(port) + int(sys.argv[2])}"
for k in ("router", "orchestrator"):
    if k in c: shift(c[k])
for p in c["pools"]: shift(p)
json.dump(c, sys.stdout, indent=2)
PYEOF
  CLUSTER=$RUN_DIR/cluster.json
fi
COMMON=(--cluster="$CLUSTER" "${MODEL_ARGS[@]}")
[[ -z "$THREADS" ]] || COMMON+=(--threads="$THREADS")

# --tls: each process's --tls_* flags (its own certificate, the one CA); moectl's for the health
# checks and the commands printed below.
declare -A TLS_FLAGS=()
if ((TLS)); then
  deploy/tls/make_certs.sh "$RUN_DIR/tls" "${NAMES[@]}" moectl >/dev/null
  for name in "${NAMES[@]}" moectl; do
    TLS_FLAGS[$name]="--tls_cert=$RUN_DIR/tls/$name.pem --tls_key=$RUN_DIR/tls/$name.key --tls_ca=$RUN_DIR/tls/ca.pem"
  done
  log "mutual TLS: certificates in $RUN_DIR/tls"
fi
tls() { echo "${TLS_FLAGS[$1]:-}"; }

for port in "${GRPC[@]}" "${METRICS[@]}" "$VIEWER_PORT"; do
  if port_open "$port"; then
    die "127.0.0.1:$port is already in use (a cluster still running? deploy/local/run_cluster.sh --stop)"
  fi
done

mkdir -p "$RUN_DIR"
for name in "${NAMES[@]}"; do rm -f "$RUN_DIR/$name.log" "$RUN_DIR/$name.health.log"; done
if [[ "$MODE" == supervise ]]; then
  echo $$ >"$RUN_DIR/supervisor.pid"
  trap 'stop_started; [[ "$(cat "$RUN_DIR/supervisor.pid" 2>/dev/null)" != $$ ]] || rm -f "$RUN_DIR/supervisor.pid"' EXIT
else
  trap 'stop_started' EXIT
fi
trap 'echo; stop_started; exit 130' INT
trap 'stop_started; exit 143' TERM

# Each process gets its own session (setsid), so a Ctrl-C at the terminal reaches this script
# only, which then stops the children in order; --detach leaves them running, detached from the
# terminal. Without job control the child is no process group leader, so setsid execs in place
# and $! is the service's own pid.
declare -A CMD=()        # name -> its command line (quoted), for restarts
declare -A STARTED_AT=() # name -> seconds since the epoch
declare -A RESTARTS=()   # name -> restarts in a row
start() {
  local name=$1; shift
  log "starting $name: $*"
  CMD[$name]=$(printf '%q ' "$@")
  setsid "$@" </dev/null >>"$RUN_DIR/$name.log" 2>&1 &
  PID[$name]=$!
  STARTED_AT[$name]=$(date +%s)
  local n
  for n in "${STARTED[@]}"; do [[ "$n" == "$name" ]] && break; done
  [[ "${n:-}" == "$name" ]] || STARTED+=("$name")
  echo "${PID[$name]}" >"$RUN_DIR/$name.pid"
}

# Starts a dead process again, after a backoff that doubles with each restart in a row.
restart() {
  local name=$1 status=0 delay
  wait "${PID[$name]}" 2>/dev/null || status=$?
  if (($(date +%s) - ${STARTED_AT[$name]} >= 60)); then RESTARTS[$name]=0; fi
  RESTARTS[$name]=$((${RESTARTS[$name]:-0} + 1))
  delay=$((1 << (${RESTARTS[$name]} - 1)))
  ((delay <= 30)) || delay=30
  log "$name exited (status $status); restarting it in ${delay}s (restart ${RESTARTS[$name]} in a row; log: $RUN_DIR/$name.log)"
  tail -n 5 "$RUN_DIR/$name.log" | sed 's/^/    /' || true
  # In the background, so that a signal is handled at once rather than after the backoff.
  sleep "$delay" &
  BACKOFF_PID=$!
  wait "$BACKOFF_PID" || true
  BACKOFF_PID=
  eval "start $name ${CMD[$name]}"
}

# Waits for grpc.health.v1 SERVING, failing at once if any started process dies meanwhile.
wait_healthy() {
  local name=$1 target=127.0.0.1:${GRPC[$1]} hc
  # shellcheck disable=SC2046  # word splitting of the --tls_* flags is intended
  "$MOECTL" health --target="$target" --timeout_s="$HEALTH_TIMEOUT_S" $(tls moectl) \
    >"$RUN_DIR/$name.health.log" 2>&1 &
  hc=$!
  while alive "$hc"; do
    for n in "${STARTED[@]}"; do
      if ! alive "${PID[$n]}"; then
        kill "$hc" 2>/dev/null || true
        died "$n"
      fi
    done
    sleep 0.2
  done
  if ! wait "$hc"; then
    alive "${PID[$name]}" || died "$name"
    echo "run_cluster: error: $name not SERVING at $target after ${HEALTH_TIMEOUT_S}s:" >&2
    cat "$RUN_DIR/$name.health.log" >&2 || true
    tail -n 20 "$RUN_DIR/$name.log" >&2 || true
    exit 1
  fi
  log "$name is SERVING at $target"
}

wait_port() {
  local name=$1 port=$2 i
  for ((i = 0; i < HEALTH_TIMEOUT_S * 5; i++)); do
    for n in "${STARTED[@]}"; do alive "${PID[$n]}" || died "$n"; done
    if port_open "$port"; then log "$name is listening on 127.0.0.1:$port"; return 0; fi
    sleep 0.2
  done
  die "$name is not listening on 127.0.0.1:$port after ${HEALTH_TIMEOUT_S}s (see $RUN_DIR/$name.log)"
}

# Pools and router load the model concurrently; the orchestrator dials them, so it goes after.
# Every pool announces itself to the router (--join): one in the cluster file starts with its
# experts there, the others with none; a pool that restarts (after a drain, say) is back in
# service at once and gets experts at the router's next rebalance.
for pool in "${POOL_NAMES[@]}"; do
  join=(--join="127.0.0.1:${GRPC[router]}")
  start "$pool" "$BUILD_DIR/${BIN[$pool]}" --pool="$pool" --listen="127.0.0.1:${GRPC[$pool]}" \
    --metrics_listen="127.0.0.1:${METRICS[$pool]}" --device="$DEVICE" "${COMMON[@]}" "${join[@]}" \
    $(tls "$pool")
done
start router "$BUILD_DIR/${BIN[router]}" --listen="127.0.0.1:${GRPC[router]}" \
  --metrics_listen="127.0.0.1:${METRICS[router]}" "${COMMON[@]}" $(tls router)
for name in "${POOL_NAMES[@]}" router; do wait_healthy "$name"; done

start orchestrator "$BUILD_DIR/${BIN[orchestrator]}" --listen="127.0.0.1:${GRPC[orchestrator]}" \
  --metrics_listen="127.0.0.1:${METRICS[orchestrator]}" --http_listen="127.0.0.1:$HTTP_API_PORT" \
  "${COMMON[@]}" $(tls orchestrator)
wait_healthy orchestrator

start viewer "$BUILD_DIR/${BIN[viewer]}" serve --listen="127.0.0.1:$VIEWER_PORT" \
  --target="127.0.0.1:${GRPC[orchestrator]}" --router="127.0.0.1:${GRPC[router]}" $(tls viewer)
wait_port viewer "$VIEWER_PORT"

T=$(tls moectl)
TV=$(tls viewer)
cat <<EOF

MoE cluster is up (logs and pids: $RUN_DIR)
  generate:    $MOECTL generate --target=127.0.0.1:${GRPC[orchestrator]}${T:+ $T} "The jury said"
  model info:  $MOECTL info --target=127.0.0.1:${GRPC[orchestrator]}${T:+ $T}
  placement:   $MOECTL placement --target=127.0.0.1:${GRPC[orchestrator]}${T:+ $T}
  OpenAI API:  curl http://127.0.0.1:$HTTP_API_PORT/v1/completions -H 'Content-Type: application/json' -d '{"model": "brown-moe", "prompt": "The jury said"}'
  rebalance:   $MOECTL rebalance --target=127.0.0.1:${GRPC[router]}${T:+ $T}
  drain:       $MOECTL drain --target=127.0.0.1:${GRPC[router]}${T:+ $T} pool-b
  viewer:      http://127.0.0.1:$VIEWER_PORT   (terminal: $BUILD_DIR/${BIN[viewer]} top --target=127.0.0.1:${GRPC[orchestrator]}${TV:+ $TV})
  metrics:     http://127.0.0.1:${METRICS[orchestrator]}/metrics (orchestrator)  :${METRICS[router]} (router)  :${METRICS[pool-a]} (pool-a)  :${METRICS[pool-b]} (pool-b)
  prometheus:  prometheus --config.file=deploy/prometheus/prometheus.local.yml
EOF

if [[ "$MODE" == supervise ]]; then
  # The last line: --detach returns once it is in the log.
  echo "  supervisor:  pid $$, restarts a process that dies (log: $RUN_DIR/supervisor.log)"
  echo "  stop:        deploy/local/run_cluster.sh --stop --run-dir=$RUN_DIR"
else
  echo "  stop:        Ctrl-C"
fi

# Supervise (in the foreground, or detached): a child that exits on its own is restarted with
# backoff; the others keep running. A signal stops everything (trap).
while true; do
  wait -n 2>/dev/null || sleep 0.5
  for name in "${STARTED[@]}"; do
    alive "${PID[$name]}" || restart "$name"
  done
done
