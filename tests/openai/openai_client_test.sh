#!/usr/bin/env bash
# The OpenAI-compatible API with the clients people use, on one local cluster
# (deploy/local/run_cluster.sh, at a port offset where every port is free): the official `openai`
# npm package (openai_client_test.mjs, pinned in package-lock.json), greedy text compared with
# `moectl complete`, and every `curl` example of the README run as written (ports shifted).
# Usage: tests/openai/openai_client_test.sh BUILD_DIR
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
run=$(mktemp -d)
moectl=$build/clients/moectl/moectl
cleanup() {
  deploy/local/run_cluster.sh --stop --run-dir="$run/cluster" >/dev/null 2>&1 || true
  rm -rf "$run"
}
trap cleanup EXIT
fail() { echo "openai_client_test: FAIL: $*" >&2; exit 1; }

if [[ ! -d tests/openai/node_modules/openai ]]; then
  (cd tests/openai && npm ci --no-audit --no-fund >/dev/null)
fi

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
offset=
for candidate in $(shuf -i 1-90 -n 20); do
  o=$((candidate * 100 + 50))
  busy=0
  for port in 50050 50051 50061 50062 9100 9101 9111 9112 8080 8000; do
    if port_open $((port + o)); then busy=1; break; fi
  done
  if ((!busy)); then offset=$o; break; fi
done
[[ -n "$offset" ]] || fail "no free port offset found"

BUILD_DIR=$build deploy/local/run_cluster.sh --detach --no-build --run-dir="$run/cluster" \
  --threads=1 --port-offset="$offset" >"$run/launcher.log" 2>&1 ||
  { cat "$run/launcher.log"; fail "cluster did not start"; }
target=127.0.0.1:$((50050 + offset))
http=127.0.0.1:$((8000 + offset))

prompt="The jury said"
max_tokens=24
"$moectl" complete --target="$target" --temperature=0 --max_tokens=$max_tokens "$prompt" \
  >"$run/expected.json"
node tests/openai/openai_client_test.mjs --base-url "http://$http/v1" --model brown-moe \
  --expected "$run/expected.json" --prompt "$prompt" --max-tokens $max_tokens

# The README's curl examples, as written but for the port; each must succeed (HTTP 2xx).
/usr/bin/python3 - README.md >"$run/curl.txt" <<'PYEOF'
import re, sys
text = open(sys.argv[1], encoding="utf-8").read().replace("\\\n", " ")
for line in text.splitlines():
    if line.startswith("curl ") and "127.0.0.1:8000/v1/" in line:
        print(line)
PYEOF
n=0
while IFS= read -r cmd; do
  cmd=${cmd//127.0.0.1:8000/$http}
  out=$(bash -c "${cmd/curl /curl --fail-with-body --max-time 120 }") || fail "README example failed: $cmd
$out"
  [[ "$out" == "{"* || "$out" == "data: "* ]] || fail "README example answered no JSON: $cmd: $out"
  n=$((n + 1))
done <"$run/curl.txt"
((n >= 3)) || fail "found only $n curl examples in README.md"
echo "ok   README: $n curl examples work as written"
