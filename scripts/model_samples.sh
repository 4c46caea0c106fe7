#!/usr/bin/env bash
# Samples of a checkpoint for the model card: each of the viewer's example prompts (read from
# clients/viewer/web/generate.js, so the two never drift apart), continued greedily and at
# temperature 0.8 with a fixed seed, run embedded (no cluster). Prints Markdown.
#
# Usage: scripts/model_samples.sh [--model DIR] [--max_tokens N] [--seed N] [--build DIR]
# The model card's samples are this script's output for the shipped model, verbatim;
# tests/data/samples_test.sh checks that they still are.
set -euo pipefail
cd "$(dirname "$0")/.."

model=models/brown-moe
max_tokens=40
seed=7
build=build
while (($#)); do
  case "$1" in
    --model=*|--max_tokens=*|--seed=*|--build=*) set -- "${1%%=*}" "${1#*=}" "${@:2}" ;;
  esac
  case "$1" in
    --model|--max_tokens|--seed|--build)
      (($# >= 2)) || { echo "model_samples: $1 needs a value" >&2; exit 2; } ;;
  esac
  case "$1" in
    --model) model=$2; shift 2 ;;
    --max_tokens) max_tokens=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
done
moectl=$build/clients/moectl/moectl
[[ -x "$moectl" ]] || { echo "model_samples: build $moectl first (cmake --build $build)" >&2; exit 1; }

mapfile -t prompts < <(python3 - <<'PY'
import re
js = open("clients/viewer/web/generate.js", encoding="utf-8").read()
block = re.search(r"const EXAMPLES = \[(.*?)\];", js, re.S)
if not block:
    raise SystemExit("model_samples: no EXAMPLES list in clients/viewer/web/generate.js")
for p in re.findall(r"'((?:[^'\\]|\\.)*)'", block.group(1)):
    print(p.replace("\\'", "'"))
PY
)
((${#prompts[@]})) || { echo "model_samples: no example prompts found" >&2; exit 1; }

err=$(mktemp)
trap 'rm -f "$err"' EXIT
run() {  # prompt flags...: the continuation on one line (moectl's summary line goes to stderr)
  local prompt=$1 out
  shift
  if ! out=$("$moectl" generate --embedded --model="$model" --max_tokens="$max_tokens" "$@" \
    -- "$prompt" 2>"$err"); then
    cat "$err" >&2
    return 1
  fi
  tr '\n' ' ' <<<"$out" | sed 's/ *$//'
}
[[ -f "$model/config.json" ]] || { echo "model_samples: $model/config.json: no checkpoint" >&2; exit 1; }
echo "Model \`$model\`, $max_tokens tokens; greedy, then \`--temperature=0.8 --seed=$seed\`:"
echo
for p in "${prompts[@]}"; do
  greedy=$(run "$p" --temperature=0) || exit 1
  sampled=$(run "$p" --temperature=0.8 --seed="$seed") || exit 1
  echo "- **$p** ..."
  echo "  - greedy: $greedy"
  echo "  - t=0.8: $sampled"
done
