#!/usr/bin/env bash
# deploy/local/run_cluster.sh --detach leaves a supervisor behind: a pool killed with SIGKILL is
# started again and serves, Generate works afterwards, and --stop leaves no process running
# (supervisor, services, the restarted pool). The cluster runs on the contract's ports shifted by
# an offset at which they are all free, so the test runs beside a cluster started by hand.
#
# Usage: tests/integration/detach_test.sh BUILD_DIR
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
build=$(realpath "${1:?usage: detach_test.sh BUILD_DIR}")
moectl=$build/clients/moectl/moectl
tmp=$(mktemp -d)
run=$tmp/run
launcher=deploy/local/run_cluster.sh

fail() {
  echo "detach_test: FAIL: $*" >&2
  local f=$run/supervisor.log
  [[ -f "$f" ]] || f=$tmp/launcher.log
  [[ -f "$f" ]] && { echo "--- the end of $f:" >&2; tail -n 30 "$f" >&2; }
  exit 1
}

# Every pid this test has seen of the cluster; the cleanup kills what --stop left of them.
seen=()
remember() {
  local f
  for f in "$run"/*.pid; do [[ -f "$f" ]] && seen+=("$(<"$f")"); done
}
alive() {  # not a zombie
  local state
  state=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [[ -n "$state" && "$state" != Z ]]
}
# Processes whose command line names the run directory: the supervisor (--run-dir) and the
# services (--cluster, the shifted cluster file lives there); the viewer by its shifted port.
leftovers() {
  local p
  for p in /proc/[0-9]*; do
    [[ "${p#/proc/}" == "$$" ]] && continue
    if tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -qE -- "$run|--listen=127\.0\.0\.1:$((8080 + offset))( |$)"; then
      echo "${p#/proc/} $(tr '\0' ' ' <"$p/cmdline")"
    fi
  done
  for p in "${seen[@]}"; do alive "$p" && echo "$p (seen in a pid file) $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)"; done
  return 0
}
cleanup() {
  "$launcher" --stop --run-dir="$run" >/dev/null 2>&1 || true
  local p
  for p in "${seen[@]}"; do alive "$p" && kill -KILL "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
offset=
for candidate in $(shuf -i 1-90 -n 20); do
  o=$((candidate * 100 + 7))  # not a multiple of 100: apart from the e2e test's offsets
  busy=0
  for port in 50050 50051 50061 50062 9100 9101 9111 9112 8080 8000; do
    if port_open $((port + o)); then busy=1; break; fi
  done
  if ((!busy)); then offset=$o; break; fi
done
[[ -n "$offset" ]] || fail "no free port offset found"
orchestrator=127.0.0.1:$((50050 + offset))
pool_a=127.0.0.1:$((50061 + offset))

# 1. Start detached: the launcher returns, and leaves a supervisor running.
start=$SECONDS
BUILD_DIR=$build HEALTH_TIMEOUT_S=120 timeout 240 "$launcher" --detach --no-build \
  --run-dir="$run" --port-offset="$offset" --threads=1 >"$tmp/launcher.log" 2>&1 ||
  fail "run_cluster.sh --detach failed"
remember
echo "ok   started detached in $((SECONDS - start)) s (port offset $offset)"
[[ -f "$run/supervisor.pid" ]] || fail "no $run/supervisor.pid"
sup=$(<"$run/supervisor.pid")
alive "$sup" || fail "the supervisor (pid $sup) is not running after --detach returned"
[[ "$(ps -o tty= -p "$sup" | tr -d ' ')" == "?" ]] || fail "the supervisor has a terminal"
echo "ok   supervisor pid $sup runs, without a terminal"

# 2. SIGKILL pool-a: the supervisor starts it again and it serves.
old=$(<"$run/pool-a.pid")
kill -KILL "$old"
new=$old
for ((i = 0; i < 300; i++)); do
  new=$(cat "$run/pool-a.pid" 2>/dev/null || echo "$old")
  [[ "$new" != "$old" ]] && alive "$new" && break
  sleep 0.1
done
[[ "$new" != "$old" ]] || fail "pool-a (pid $old) killed with SIGKILL was not restarted within 30 s"
remember
"$moectl" health --target="$pool_a" --timeout_s=60 >/dev/null ||
  fail "the restarted pool-a (pid $new) is not SERVING at $pool_a"
echo "ok   pool-a killed (pid $old), restarted (pid $new), SERVING"

# 3. Generate through the cluster (the router takes the pool back once its health check passes;
#    until then a request may fail UNAVAILABLE, so allow a few tries).
ok=0
for ((i = 0; i < 20; i++)); do
  if "$moectl" generate --target="$orchestrator" --max_tokens=4 --temperature=0 --deadline_s=30 \
    "The jury said" >"$tmp/generate.txt" 2>&1; then
    ok=1
    break
  fi
  sleep 1
done
((ok)) || fail "generate failed after the restart: $(cat "$tmp/generate.txt")"
echo "ok   generate after the restart: $(tr '\n' ' ' <"$tmp/generate.txt")"

# 4. --stop: nothing is left, and nothing comes back.
"$launcher" --stop --run-dir="$run" >"$tmp/stop.log" 2>&1 || fail "--stop failed: $(cat "$tmp/stop.log")"
sleep 2
left=$(leftovers)
[[ -z "$left" ]] || fail "processes left after --stop:"$'\n'"$left"
ls "$run"/*.pid >/dev/null 2>&1 && fail "pid files left after --stop: $(ls "$run"/*.pid)"
echo "ok   --stop left no process and no pid file"
echo "detach_test: passed in $((SECONDS - start)) s"
