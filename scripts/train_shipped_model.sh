#!/usr/bin/env bash
# Reproduces the shipped model: prepares the Brown corpus, trains the MoE model and its dense
# baseline (same active parameters, same steps and tokens), evaluates both on the test split and
# profiles the MoE model's experts. Results land in build/train/; models/brown-moe is updated
# with the MoE model's best checkpoint.
#
# Usage: scripts/train_shipped_model.sh [--steps N] [--threads N]
set -euo pipefail
cd "$(dirname "$0")/.."

steps=1400
threads=1
while (($#)); do
  case "$1" in
    --steps) steps=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
done

scripts/prepare_data.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build --target moe-train

train() {  # name config
  ./build/models/train/moe-train train --config="models/configs/$2.json" \
    --out="build/train/$1" --tokenizer=models/brown-moe/tokenizer.model \
    --steps="$steps" --batch=16 --seq_len=256 --warmup=100 --lr=3e-3 --min_lr=3e-4 \
    --eval_every=200 --eval_batches=40 --seed=1 --threads="$threads" --resume
}
train moe brown-moe
train dense brown-dense

for m in moe dense; do
  echo "test split, $m:"
  ./build/models/train/moe-train eval --model="build/train/$m/best" --data=data/brown/test.ids \
    --threads="$threads"
done
cp build/train/moe/best/config.json build/train/moe/best/model.pt models/brown-moe/
./build/models/train/moe-train analyze --model=models/brown-moe --threads="$threads"
