#!/usr/bin/env bash
# The shipped checkpoint loads and its perplexity on tests/data/test_slice.ids (the first 8192
# tokens of the Brown test split) is within 1% of the figure its model card states.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
card=models/brown-moe/MODEL_CARD.md
stated=$(grep -oP 'Test-slice perplexity \(tests/data/test_slice.ids\): \K[0-9.]+' "$card") ||
  { echo "perplexity_test: $card states no test-slice perplexity" >&2; exit 1; }
measured=$("$build/models/train/moe-train" eval --model=models/brown-moe \
  --data=tests/data/test_slice.ids --threads=1 | grep -oP '"perplexity": \K[0-9.]+')
/usr/bin/python3 - "$stated" "$measured" <<'PY'
import sys
stated, measured = map(float, sys.argv[1:])
rel = abs(measured - stated) / stated
print(f"perplexity_test: card {stated}, measured {measured}, off by {rel:.4%}")
sys.exit(0 if rel <= 0.01 else 1)
PY
