#!/usr/bin/env bash
# Serves the Docker API from podman, for docker-compose, on a host without Docker or systemd:
#   - `podman system service` on a unix socket (docker-compose talks to it through DOCKER_HOST);
#   - a health-check runner: podman runs HEALTHCHECKs from systemd timers, so without systemd
#     health stays "starting" and `depends_on: condition: service_healthy` waits forever. The
#     runner runs `podman healthcheck run` for every running container every few seconds.
# Both use deploy/podman/containers.conf (CONTAINERS_CONF), never the system-wide settings.
#
# Usage: deploy/podman/service.sh start|stop|status|env [--run-dir=DIR] [--interval=S]
#   start      start both (idempotent) and print the DOCKER_HOST line to export
#   stop       stop both; containers keep running
#   env        print `export DOCKER_HOST=... CONTAINERS_CONF=...` for eval
#   --run-dir  socket, pid files and logs (default /run/moe-podman; short: a socket path is
#              limited to 107 bytes)
#   --interval seconds between health-check rounds (default 3)
#
# Then, from the repository root:
#   eval "$(deploy/podman/service.sh env)"
#   docker-compose -f deploy/docker-compose.yml up -d router pool-a pool-b orchestrator viewer
set -euo pipefail
cd "$(dirname "$0")/../.."

cmd=${1:-}
[[ $# -gt 0 ]] && shift
run_dir=/run/moe-podman
interval=3
for arg in "$@"; do
  case "$arg" in
    --run-dir=*) run_dir=${arg#--run-dir=} ;;
    --interval=*) interval=${arg#--interval=} ;;
    *) echo "service.sh: unknown argument '$arg' (see --help)" >&2; exit 2 ;;
  esac
done
usage() { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; }

export CONTAINERS_CONF=$PWD/deploy/podman/containers.conf
socket=$run_dir/podman.sock
env_line="export DOCKER_HOST=unix://$socket CONTAINERS_CONF=$CONTAINERS_CONF"

alive() { [[ -f "$run_dir/$1.pid" ]] && kill -0 "$(cat "$run_dir/$1.pid")" 2>/dev/null; }

health_runner() {
  while true; do
    # Only containers with a HEALTHCHECK: leave the others (init containers above all) alone.
    for name in $(podman ps --filter health=starting --filter health=healthy \
      --filter health=unhealthy --format '{{.Names}}' 2>/dev/null); do
      podman healthcheck run "$name" >/dev/null 2>&1 || true
    done
    sleep "$interval"
  done
}

case "$cmd" in
  start)
    command -v podman >/dev/null || { echo "service.sh: podman is missing (scripts/setup.sh installs it)" >&2; exit 1; }
    mkdir -p "$run_dir"
    if ! alive api; then
      # Podman keeps each container's, pod's and volume's lock number in its database and the
      # locks themselves in shared memory, which a reboot empties; podman 4.3 can then give a new
      # pod a lock number an old object still holds and deadlock on it (a kube play hung on a
      # lock its own thread held). With no podman running, renumbering gives every object a
      # fresh lock; it takes a fraction of a second.
      if ! pgrep -x podman >/dev/null; then podman system renumber >/dev/null 2>&1 || true; fi
      rm -f "$socket"
      setsid podman system service --time=0 "unix://$socket" >"$run_dir/api.log" 2>&1 &
      echo $! >"$run_dir/api.pid"
      for _ in $(seq 100); do [[ -S "$socket" ]] && break; sleep 0.1; done
      [[ -S "$socket" ]] || { tail "$run_dir/api.log" >&2; echo "service.sh: no socket at $socket" >&2; exit 1; }
    fi
    if ! alive health; then
      health_runner >"$run_dir/health.log" 2>&1 &
      echo $! >"$run_dir/health.pid"
      disown -a
    fi
    echo "$env_line"
    ;;
  stop)
    for p in health api; do
      if alive "$p"; then kill "$(cat "$run_dir/$p.pid")" 2>/dev/null || true; fi
      rm -f "$run_dir/$p.pid"
    done
    rm -f "$socket"
    ;;
  status)
    for p in api health; do
      if alive "$p"; then echo "$p: running (pid $(cat "$run_dir/$p.pid"))"; else echo "$p: stopped"; fi
    done
    ;;
  env) echo "$env_line" ;;
  --help | help) usage ;;
  *) usage >&2; exit 2 ;;
esac
