#!/usr/bin/env bash
# Reproduces the shipped model: prepares the Brown corpus, then trains the MoE model and its dense
# twin (same active parameters, same recipe, steps and tokens) side by side, one core each. Then
# evaluates both on the test split (cross-entropy, perplexity, bits per byte), and installs the
# MoE model's best checkpoint in models/brown-moe with fresh expert profiles.
#
# Interrupt it at any time and run it again: each run continues from its last checkpoint (every
# 250 steps) with its optimizer and random streams, so the result is the same as one run that was
# never stopped. Bit-for-bit only on the same kind of CPU and BLAS; elsewhere, the same recipe.
#
# Usage: scripts/train_shipped_model.sh [--only moe|dense] [--no-install]
#   results: build/train/brown-moe, build/train/brown-dense (curve.tsv, log.txt, best/, steps/)
set -euo pipefail
cd "$(dirname "$0")/.."

only=""
install=1
while (($#)); do
  case "$1" in
    --only) only=$2; shift 2 ;;
    --no-install) install=0; shift ;;
    --help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
done
case "$only" in ""|moe|dense) ;; *) echo "--only: moe or dense" >&2; exit 2 ;; esac

scripts/prepare_data.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build --target moe-train
trainer=./build/models/train/moe-train

# The recipe. Chosen on validation loss (see models/brown-moe/MODEL_CARD.md for the runs behind
# each choice); never on test.
train() {  # name config
  mkdir -p "build/train/$1"
  "$trainer" train --config="models/configs/$2.json" --out="build/train/$1" \
    --tokenizer=models/brown-moe/tokenizer.model \
    --steps=16000 --batch=16 --seq_len=256 --warmup=100 --lr=3e-3 --min_lr=3e-4 \
    --weight_decay=0.1 --dropout=0.1 --aux_loss=0.01 --z_loss=0.001 --seed=1 \
    --eval_every=250 --eval_batches=160 --keep_every=1000 --threads=1 --resume \
    >>"build/train/$1/log.txt" 2>&1
}
pids=()
[[ "$only" == dense ]] || { train brown-moe brown-moe & pids+=($!); }
[[ "$only" == moe ]] || { train brown-dense brown-dense & pids+=($!); }
echo "training (logs: build/train/brown-*/log.txt) ..."
for pid in "${pids[@]}"; do wait "$pid"; done

# Bits per byte: the test split's cross-entropy per UTF-8 byte of its documents (test.txt joins
# them with blank lines and ends with a newline; those separators are not part of the text).
test_bytes=$(python3 -c '
import json, os
n = len(json.load(open("data/brown/splits.json"))["test"])
print(os.path.getsize("data/brown/test.txt") - 2 * (n - 1) - 1)')
for m in brown-moe brown-dense; do
  [[ -d "build/train/$m/best" ]] || continue
  result=$("$trainer" eval --model="build/train/$m/best" --data=data/brown/test.ids --threads=1)
  echo "$result" >"build/train/$m/test.json"
  python3 - "$m" "$result" "$test_bytes" <<'EOF'
import json, math, sys
r = json.loads(sys.argv[2])
bpb = r["cross_entropy"] * r["tokens"] / math.log(2) / int(sys.argv[3])
print(f"test split, {sys.argv[1]}: cross-entropy {r['cross_entropy']:.4f} nats/token, "
      f"perplexity {r['perplexity']:.2f}, {bpb:.4f} bits per byte")
EOF
done

if ((install)) && [[ "$only" != dense ]]; then
  cp build/train/brown-moe/best/config.json build/train/brown-moe/best/model.pt models/brown-moe/
  "$trainer" analyze --model=models/brown-moe --threads=1
fi
