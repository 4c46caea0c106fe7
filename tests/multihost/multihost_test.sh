#!/usr/bin/env bash
# The cluster across hosts: the router, the orchestrator, three expert pools, a client host (moectl
# and the viewer) and an operator's host each get a network namespace of their own with their own
# address, joined by a bridge in one more namespace: nothing reaches them through loopback. The
# test makes all of it and removes it at the end. The addresses come from 198.19.0.0/16 (part of
# the range RFC 2544 reserves for benchmarking), which no real network here uses.
#
# It checks, on the shipped model:
#   1. the router starts with no cluster file and no pools; the orchestrator takes --router and no
#      cluster file; a request then gets UNAVAILABLE naming the experts no pool hosts;
#   2. a pool that would advertise a loopback address to a router on another host is refused,
#      naming the flag;
#   3. pools join (--join, advertising their own address) and the router places every expert;
#      greedy tokens equal the embedded run's;
#   4. a third host joins and computes tokens after `moectl rebalance`;
#   5. under 16 concurrent streams a pool is drained, then killed with -9: no request fails and
#      every answer is still the embedded run's; the dead pool leaves the placement after
#      --dead_pool_removal_s;
#   6. the viewer (on the client host) and every service's /metrics answer from the operator's
#      host.
# With --tls every hop runs mutual TLS, each certificate naming its own host's address.
#
# Usage: tests/multihost/multihost_test.sh BUILD_DIR [--tls] [--keep]
#   --keep   leave the namespaces and processes (and print how to remove them)
# Needs root (ip netns). Exits 77 (skipped) only when the kernel refuses network namespaces.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [[ $# -lt 1 || "$1" == --help ]]; then
  sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'
  [[ "${1:-}" == --help ]] && exit 0 || exit 2
fi
build=$1
shift
tls=0
keep=0
for arg in "$@"; do
  case "$arg" in
    --tls) tls=1 ;;
    --keep) keep=1 ;;
    *) echo "multihost_test: unknown argument '$arg' (see --help)" >&2; exit 2 ;;
  esac
done
for b in services/router/moe-router services/expert_pool/moe-expert-pool \
  services/orchestrator/moe-orchestrator clients/moectl/moectl clients/viewer/viewer; do
  [[ -x "$build/$b" ]] || { echo "multihost_test: $build/$b is missing: build first" >&2; exit 1; }
done
build=$(cd "$build" && pwd)
MOECTL=$build/clients/moectl/moectl
PY=/usr/bin/python3
MODEL=models/brown-moe

# One subnet and one name prefix per run, so a run beside another (or after a killed one) does
# not collide with it.
id=$(($$ % 200 + 20))
net=198.19.$id
prefix=moemh$id
declare -A IP=([router]=$net.1 [orchestrator]=$net.2 [pool-a]=$net.11 [pool-b]=$net.12
  [pool-c]=$net.13 [client]=$net.30 [ops]=$net.40)
HOSTS=(router orchestrator pool-a pool-b pool-c client ops)
ROUTER=${IP[router]}:50051
ORCH=${IP[orchestrator]}:50050

dir=$(mktemp -d /tmp/moe-multihost.XXXXXX)
start=$SECONDS
failures=0
declare -A PID=()
step() { echo "== [$((SECONDS - start)) s] $*"; }
ok() { echo "ok   $*"; }
fail() {
  echo "FAIL $*" >&2
  failures=$((failures + 1))
}
ns() { echo "$prefix-$1"; }
on() {  # on HOST CMD...: run in HOST's namespace
  local host=$1
  shift
  ip netns exec "$(ns "$host")" "$@"
}

cleanup() {
  local rc=$?
  if ((keep)); then
    echo "kept: namespaces $(ip netns list | grep -o "^$prefix-[a-z-]*" | tr '\n' ' ')"
    echo "      logs in $dir; remove with: for n in \$(ip netns list | grep -o '^$prefix-[a-z-]*'); do ip netns pids \$n | xargs -r kill -9; ip netns del \$n; done"
    return
  fi
  for name in "${!PID[@]}"; do kill -9 "${PID[$name]}" 2>/dev/null || true; done
  for h in "${HOSTS[@]}" lan; do
    if ip netns list | grep -q "^$(ns "$h")\b"; then
      ip netns pids "$(ns "$h")" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
      ip netns del "$(ns "$h")" 2>/dev/null || true
    fi
  done
  if ((rc != 0 || failures)); then
    for f in "$dir"/*.log; do
      [[ -f "$f" ]] || continue
      echo "---- $(basename "$f") (last 15 lines)"
      tail -15 "$f"
    done
  fi
  rm -rf "$dir"
}
trap cleanup EXIT

step "hosts: a namespace each on $net.0/24, one bridge"
if ! ip netns add "$(ns lan)" 2>"$dir/netns.err"; then
  echo "multihost_test: SKIPPED: this kernel refuses network namespaces ($(cat "$dir/netns.err"))"
  exit 77
fi
ip -n "$(ns lan)" link add br0 type bridge
ip -n "$(ns lan)" link set br0 up
n=0
for h in "${HOSTS[@]}"; do
  n=$((n + 1))
  ip netns add "$(ns "$h")"
  ip link add "mh${id}v$n" type veth peer name eth0 netns "$(ns "$h")"
  ip link set "mh${id}v$n" netns "$(ns lan)"
  ip -n "$(ns lan)" link set "mh${id}v$n" master br0 up
  ip -n "$(ns "$h")" addr add "${IP[$h]}/24" dev eth0
  ip -n "$(ns "$h")" link set eth0 up
  ip -n "$(ns "$h")" link set lo up
done
ok "${#HOSTS[@]} hosts: $(for h in "${HOSTS[@]}"; do printf '%s=%s ' "$h" "${IP[$h]}"; done)"

# TLS: a CA and a certificate per process naming its own host's address (and only that one of the
# test's addresses: a peer that dials another host with it is refused).
declare -A TLSF=()
client_tls=()
if ((tls)); then
  step "certificates naming each host's address"
  certs=(router orchestrator pool-a pool-b pool-c client)
  named=()
  for c in "${certs[@]}"; do named+=("$c=IP:${IP[$c]}"); done
  deploy/tls/make_certs.sh "$dir/tls" "${named[@]}" >"$dir/certs.log" 2>&1
  for c in "${certs[@]}"; do
    TLSF[$c]="--tls_cert=$dir/tls/$c.pem --tls_key=$dir/tls/$c.key --tls_ca=$dir/tls/ca.pem"
  done
  read -r -a client_tls <<<"${TLSF[client]}"
fi
tls_of() {  # the --tls_* flags of a process, one a line (none without --tls)
  local -a f=()
  [[ -n "${TLSF[$1]:-}" ]] && read -r -a f <<<"${TLSF[$1]}"
  if ((${#f[@]})); then printf '%s\n' "${f[@]}"; fi
}

spawn() {  # spawn NAME HOST CMD...: a service in HOST's namespace, its log in the run dir
  local name=$1 host=$2
  shift 2
  ip netns exec "$(ns "$host")" "$@" >"$dir/$name.log" 2>&1 &
  PID[$name]=$!
  disown "$!"  # killed by the test, not reported by the shell
}
moectl() { on client "$MOECTL" "$@" "${client_tls[@]}"; }
healthy() { moectl health --target="$1" --timeout_s=120 >/dev/null; }
mapfile_tls() { mapfile -t "$1" < <(tls_of "$2"); }

step "the embedded run (the oracle)"
PROMPTS=("The jury said" "It was a dark night" "In 1961 the city")
MAXTOK=20
declare -A WANT=()
for p in "${PROMPTS[@]}"; do
  WANT[$p]=$("$MOECTL" generate --embedded --model="$MODEL" --temperature=0 --max_tokens=$MAXTOK "$p" 2>/dev/null)
done
ok "${#PROMPTS[@]} prompts"

step "router with no cluster file; orchestrator with --router and no cluster file"
mapfile_tls rt router
spawn router router "$build/services/router/moe-router" --model="$MODEL" --listen="$ROUTER" \
  --metrics_listen="${IP[router]}:9101" --rebalance_interval_s=0 --min_gain=0.01 \
  --dead_pool_removal_s=5 "${rt[@]}"
mapfile_tls ot orchestrator
spawn orchestrator orchestrator "$build/services/orchestrator/moe-orchestrator" --model="$MODEL" \
  --listen="$ORCH" --metrics_listen="${IP[orchestrator]}:9100" --router="$ROUTER" "${ot[@]}"
healthy "$ROUTER"
healthy "$ORCH"
if grep -q "\"listen\":\"$ROUTER\"" "$dir/router.log"; then ok "router logs where it listens ($ROUTER)"; else fail "router's serving line lacks \"listen\":\"$ROUTER\""; fi
set +e
out=$(moectl generate --target="$ORCH" --temperature=0 --max_tokens=4 "The jury said" 2>&1)
rc=$?
set -e
if ((rc != 0)) && [[ "$out" == *UNAVAILABLE* && "$out" == *"hosted by no ready pool"* &&
  "$out" == *"no expert pool has joined"* ]]; then
  ok "before any pool joins: $(grep -o 'UNAVAILABLE.*' <<<"$out" | head -1 | cut -c1-150)"
else
  fail "a request before any pool joined: want UNAVAILABLE naming the missing experts, got (exit $rc): $out"
fi

step "a pool that would advertise loopback to a router on another host is refused"
set +e
on pool-a timeout 60 "$build/services/expert_pool/moe-expert-pool" --model="$MODEL" --pool=pool-a \
  --join="$ROUTER" --listen=127.0.0.1:50061 $(tls_of pool-a) >"$dir/loopback.log" 2>&1
rc=$?
set -e
if ((rc == 1)) && grep -q -- "--listen=127.0.0.1:50061: a loopback address" "$dir/loopback.log"; then
  ok "refused: $(grep -o '"error":"[^"]*' "$dir/loopback.log" | head -1 | cut -c10-170)"
else
  fail "loopback advertise: want exit 1 naming --listen, got exit $rc: $(tail -2 "$dir/loopback.log")"
fi

start_pool() {  # start_pool NAME: joins the router, advertising its own host's address
  local name=$1
  local -a t
  mapfile -t t < <(tls_of "$name")
  spawn "$name" "$name" "$build/services/expert_pool/moe-expert-pool" --model="$MODEL" \
    --pool="$name" --join="$ROUTER" --listen="${IP[$name]}:50061" \
    --metrics_listen="${IP[$name]}:9111" --expert_slots=5 "${t[@]}"
}
placement() { moectl placement --target="$ROUTER"; }
# wait_placement PYTHON_EXPR: until the router's placement p (JSON) satisfies the expression.
wait_placement() {
  local expr=$1 deadline=$((SECONDS + 90))
  while ((SECONDS < deadline)); do
    if placement 2>/dev/null | "$PY" -c "import json,sys; p=json.load(sys.stdin); sys.exit(0 if ($expr) else 1)" 2>/dev/null; then
      return 0
    fi
    sleep 0.5
  done
  return 1
}
HOSTED='all(sorted(set(e for q in p.get("pools", []) for e in q["hosts"][l].get("experts", []))) == list(range(8)) for l in range(3))'

step "pools a and b join, each from its own host"
start_pool pool-a
start_pool pool-b
healthy "${IP[pool-a]}:50061"
healthy "${IP[pool-b]}:50061"
if wait_placement "$HOSTED"; then
  ok "every expert placed: $(placement | "$PY" -c 'import json,sys; p=json.load(sys.stdin); print(", ".join(q["name"]+"@"+q["address"]+" "+str(q["hosts"][0].get("experts",[])) for q in p["pools"]))')"
else
  fail "the router never placed every expert: $(placement 2>&1 | head -c 600)"
fi

check_greedy() {  # check_greedy LABEL: every prompt's greedy text equals the embedded run's
  local p got
  for p in "${PROMPTS[@]}"; do
    got=$(moectl generate --target="$ORCH" --temperature=0 --max_tokens=$MAXTOK "$p" 2>"$dir/generate.err") ||
      { fail "$1: generate '$p' failed: $(cat "$dir/generate.err")"; continue; }
    if [[ "$got" == "${WANT[$p]}" ]]; then ok "$1: '$p' -> ${got:0:70}"; else fail "$1: '$p': got '$got', embedded '${WANT[$p]}'"; fi
  done
}
check_greedy "distributed == embedded"

computed() {  # computed HOST: tokens its pool has computed, from its /metrics, read from ops
  on ops curl -sf --max-time 5 "http://${IP[$1]}:9111/metrics" |
    awk '/^moe_expert_tokens_computed_total\{/ {s += $NF} END {print s + 0}'
}

step "a third host joins; after a rebalance it computes tokens"
start_pool pool-c
healthy "${IP[pool-c]}:50061"
wait_placement 'any(q["name"] == "pool-c" and q.get("healthy") for q in p.get("pools", []))' ||
  fail "pool-c is not in the placement"
check_greedy "load before the rebalance" >/dev/null
before=$(computed pool-c)
moectl rebalance --target="$ROUTER" >"$dir/rebalance.txt" 2>&1 || fail "rebalance: $(cat "$dir/rebalance.txt")"
wait_placement 'any(q["name"] == "pool-c" and sum(len(h.get("experts", [])) for h in q["hosts"]) > 0 for q in p.get("pools", []))' ||
  fail "the rebalance gave pool-c nothing: $(cat "$dir/rebalance.txt")"
check_greedy "after pool-c joined"
after=$(computed pool-c)
if "$PY" -c "import sys; sys.exit(0 if $after > $before else 1)"; then
  ok "pool-c computed $after tokens (before the rebalance: $before)"
else
  fail "pool-c computed nothing after the rebalance ($before -> $after)"
fi

step "16 streams; pool-b drained, then killed with -9"
stream() {  # stream I: 3 greedy requests in a row; each answer checked against the oracle
  local i=$1 r p got
  for r in 1 2 3; do
    p=${PROMPTS[$(((i + r) % ${#PROMPTS[@]}))]}
    if ! got=$(moectl generate --target="$ORCH" --temperature=0 --max_tokens=$MAXTOK "$p" \
      2>"$dir/stream$i.err"); then
      echo "stream $i request $r failed: $(cat "$dir/stream$i.err")" >>"$dir/streams.err"
    elif [[ "$got" != "${WANT[$p]}" ]]; then
      echo "stream $i request $r: '$p' gave '$got', embedded '${WANT[$p]}'" >>"$dir/streams.err"
    else
      echo ok >>"$dir/streams.ok"
    fi
  done
}
: >"$dir/streams.ok"
streamers=()
for i in $(seq 1 16); do
  stream "$i" &
  streamers+=($!)
done
deadline=$((SECONDS + 120))
while (($(wc -l <"$dir/streams.ok") < 4 && SECONDS < deadline)); do sleep 0.2; done
moectl drain --target="$ROUTER" pool-b >"$dir/drain.txt" 2>&1 || fail "drain: $(cat "$dir/drain.txt")"
kill -9 "${PID[pool-b]}"
unset 'PID[pool-b]'
for p in "${streamers[@]}"; do wait "$p" || true; done
good=$(wc -l <"$dir/streams.ok")
if [[ -s "$dir/streams.err" ]]; then
  fail "$(wc -l <"$dir/streams.err") of 48 requests failed or differed: $(head -3 "$dir/streams.err")"
elif ((good == 48)); then
  ok "48 of 48 requests exact through the drain and the kill"
else
  fail "only $good of 48 requests answered"
fi
check_greedy "after pool-b died"
if wait_placement 'all(q["name"] != "pool-b" for q in p.get("pools", []))'; then
  ok "pool-b removed from the placement after --dead_pool_removal_s"
else
  fail "pool-b is still in the placement: $(placement | head -c 400)"
fi

step "the viewer and /metrics, from another host"
mapfile_tls vt client
spawn viewer client "$build/clients/viewer/viewer" serve --listen="${IP[client]}:8080" \
  --target="$ORCH" --router="$ROUTER" "${vt[@]}"
deadline=$((SECONDS + 60))
until on ops curl -sf --max-time 2 -o /dev/null "http://${IP[client]}:8080/"; do
  ((SECONDS < deadline)) || break
  sleep 0.3
done
page=$(on ops curl -sf --max-time 5 "http://${IP[client]}:8080/" || true)
if [[ "$page" == *"<html"* ]]; then ok "viewer page from ops"; else fail "viewer page: '${page:0:200}'"; fi
info=$(on ops curl -sf --max-time 10 "http://${IP[client]}:8080/api/info" || true)
if [[ "$info" == *brown-moe* ]]; then ok "viewer /api/info from ops (via the orchestrator)"; else fail "viewer /api/info: '${info:0:200}'"; fi
for m in "router ${IP[router]}:9101 moe_placement_epoch" \
  "orchestrator ${IP[orchestrator]}:9100 moe_generate_requests_total" \
  "pool-a ${IP[pool-a]}:9111 moe_expert_tokens_computed_total"; do
  read -r name addr metric <<<"$m"
  # Read whole before grep: grep -q would close the pipe early, and curl fail with it.
  text=$(on ops curl -sf --max-time 5 "http://$addr/metrics" || true)
  if grep -q "^$metric" <<<"$text"; then
    ok "$name /metrics from ops has $metric"
  else
    fail "$name /metrics at $addr: no $metric"
  fi
done

step "done"
if ((failures)); then
  echo "multihost_test: $failures check(s) failed" >&2
  exit 1
fi
echo "multihost_test: every check passed$( ((tls)) && echo ' (mutual TLS)') in $((SECONDS - start)) s"
