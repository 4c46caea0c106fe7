#!/usr/bin/env bash
# Checks the C++ model against the independent PyTorch reference (reference_moe.py), on a random
# checkpoint that uses every feature (micro-experts, shared experts) and on the shipped model.
# Usage: tests/reference/reference_test.sh BUILD_DIR
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
train=$build/models/train/moe-train
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cat >"$tmp/config.json" <<'JSON'
{"name": "ref", "vocab_size": 512, "d_model": 48, "n_heads": 4, "n_layers": 2,
 "context_length": 64, "n_experts": 4, "n_shared": 1, "granularity": 2, "top_k": 3, "d_ff": 96}
JSON
"$train" init --config="$tmp/config.json" --seed=7 --out="$tmp/random"
"$train" logits --model="$tmp/random" --ids=5,300,17,17,2,99,511,0,42,8,8,8,256,3 \
  --out="$tmp/random.logits.pt"
/usr/bin/python3 tests/reference/reference_moe.py "$tmp/random" "$tmp/random.logits.pt" --tol 1e-4

"$train" logits --model=models/brown-moe --ids=456,503,1159,555,343,650,1109,329,801,278 \
  --out="$tmp/shipped.logits.pt"
/usr/bin/python3 tests/reference/reference_moe.py models/brown-moe "$tmp/shipped.logits.pt" \
  --tol 1e-3
