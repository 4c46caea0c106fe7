#!/usr/bin/env bash
# The shipped model card's samples are what the shipped checkpoint generates today: the block
# between the card's "samples" markers equals scripts/model_samples.sh's output, line for line.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
card=models/brown-moe/MODEL_CARD.md
stated=$(mktemp)
measured=$(mktemp)
trap 'rm -f "$stated" "$measured"' EXIT
sed -n '/^<!-- samples: begin/,/^<!-- samples: end/{/^<!-- samples:/d;p}' "$card" >"$stated"
[[ -s "$stated" ]] || { echo "samples_test: $card has no samples block" >&2; exit 1; }
scripts/model_samples.sh --build="$build" >"$measured"
if ! diff -u --label "$card" --label "scripts/model_samples.sh" "$stated" "$measured"; then
  echo "samples_test: the card's samples are not the checkpoint's; paste the script's output" >&2
  exit 1
fi
echo "samples_test: $(grep -c '^  - ' "$measured") samples match the card"
