#!/usr/bin/env bash
# End to end, on one local cluster (deploy/local/run_cluster.sh, on the ports of
# docs/CONTRACTS.md shifted by an offset at which they are all free, so that it runs beside a
# cluster started by hand): the web viewer in headless Chromium, the terminal viewer under tmux,
# a GIF exported from live traffic, and a real Prometheus scraping every service, with every
# PromQL expression of the Grafana dashboard required to return data.
# Usage: tests/e2e/e2e_test.sh BUILD_DIR ARTIFACT_DIR
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
out=${2:-$build/e2e-artifacts}
mkdir -p "$out"
run=$(mktemp -d)
moectl=$build/clients/moectl/moectl
viewer=$build/clients/viewer/viewer
prom_pid=
session=moe-e2e-$$
cleanup() {
  local rc=$?
  if ((rc != 0)); then
    # What the cluster's processes said (the run folder goes below).
    for f in "$run"/cluster/*.log; do
      [[ -f "$f" ]] || continue
      echo "---- $(basename "$f") (last 15 lines)"
      tail -15 "$f"
    done
  fi
  [[ -z "$prom_pid" ]] || kill "$prom_pid" 2>/dev/null || true
  tmux kill-session -t "$session" 2>/dev/null || true
  deploy/local/run_cluster.sh --stop --run-dir="$run/cluster" >/dev/null 2>&1 || true
  rm -rf "$run"
}
trap cleanup EXIT
fail() { echo "e2e: FAIL: $*" >&2; exit 1; }

if [[ ! -d tests/e2e/node_modules/playwright-core ]]; then
  (cd tests/e2e && npm ci --no-audit --no-fund >/dev/null)
fi

# An offset at which every port of the cluster (and Prometheus's) is free.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
offset=
for candidate in $(shuf -i 1-90 -n 20); do
  o=$((candidate * 100))
  busy=0
  for port in 50050 50051 50061 50062 9100 9101 9111 9112 8080 8000 19090; do
    if port_open $((port + o)); then busy=1; break; fi
  done
  if ((!busy)); then offset=$o; break; fi
done
[[ -n "$offset" ]] || fail "no free port offset found"

BUILD_DIR=$build deploy/local/run_cluster.sh --detach --no-build --run-dir="$run/cluster" \
  --threads=1 --port-offset="$offset" >"$run/launcher.log" 2>&1 ||
  { cat "$run/launcher.log"; fail "cluster did not start"; }
target=127.0.0.1:$((50050 + offset))

# A real Prometheus on loopback, scraping every service every second (the local config with the
# ports shifted).
/usr/bin/python3 - "$offset" deploy/prometheus/prometheus.local.yml >"$run/prometheus.yml" <<'PYEOF'
import re, sys
off = int(sys.argv[1])
sys.stdout.write(re.sub(r"127\.0\.0\.1:(\d+)", lambda m: f"127.0.0.1:{int(m.group(1)) + off}",
                        open(sys.argv[2]).read()))
PYEOF
prom=127.0.0.1:$((19090 + offset))
prometheus --config.file="$run/prometheus.yml" --storage.tsdb.path="$run/prom" \
  --web.listen-address="$prom" >"$run/prometheus.log" 2>&1 &
prom_pid=$!

# 1. The web page: type a prompt, see text, click a token, check its experts against an
#    independent embedded run of the same request.
prompt="The jury said"
"$moectl" generate --embedded --routing --temperature=0 --seed=1234 --max_tokens=8 "$prompt" \
  >"$run/embedded.txt"
/usr/bin/python3 tests/e2e/routing_to_expected.py "$prompt" 8 1234 <"$run/embedded.txt" \
  >"$run/expected.json"
node tests/e2e/viewer_web_test.mjs --url "http://127.0.0.1:$((8080 + offset))" --expected "$run/expected.json" \
  --screenshot "$out/viewer.png"

# 2. The terminal viewer under tmux: layers and bars on screen, q quits.
tmux new-session -d -s "$session" -x 120 -y 40 "$viewer top --target=$target; echo exited > $run/top.exit; sleep 30"
for i in 1 2 3; do "$moectl" generate --target=$target --max_tokens=24 --seed=$i "It was" >/dev/null; done
sleep 1.5
tmux capture-pane -p -t "$session" >"$out/top.txt"
for l in L0 L1 L2; do grep -q "$l" "$out/top.txt" || fail "viewer top shows no $l: $(cat "$out/top.txt")"; done
grep -q "█" "$out/top.txt" || fail "viewer top draws no bars"
tmux send-keys -t "$session" q
for i in $(seq 1 50); do [[ -f "$run/top.exit" ]] && break; sleep 0.1; done
[[ -f "$run/top.exit" ]] || fail "viewer top did not exit on q"

# 3. A GIF of live routing.
"$viewer" gif --target=$target --prompt="Once upon a time" --out="$out/routing.gif" --frames=24 \
  --fps=12 --width=640 --height=360 --seed=3
/usr/bin/python3 tests/e2e/gif_check.py "$out/routing.gif" 640 360 24

# 4. Prometheus: more traffic, then every dashboard query must return data.
for i in $(seq 1 6); do
  "$moectl" generate --target=$target --max_tokens=32 --seed=$i "In the morning" >/dev/null &
done
wait_jobs() { for j in $(jobs -p); do [[ "$j" == "$prom_pid" ]] || wait "$j"; done; }
wait_jobs
sleep 4
missing=0
while IFS= read -r expr; do
  result=$(curl -sG --data-urlencode "query=$expr" "http://$prom/api/v1/query")
  n=$(/usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); print(len(d["data"]["result"]) if d["status"]=="success" else -1)' <<<"$result")
  if [[ "$n" -le 0 ]]; then echo "e2e: no data for: $expr ($result)" >&2; missing=$((missing + 1)); fi
done < <(/usr/bin/python3 tests/integration/dashboard_queries.py)
((missing == 0)) || fail "$missing dashboard queries returned no data"
echo "e2e: PASS (artifacts in $out)"
