#!/usr/bin/env bash
# Reproduces the shipped model: prepares the Brown corpus, then trains, side by side, one core's
# share each:
#   brown-moe        the MoE model, with the recipe below;
#   brown-dense      its dense twin (same active parameters), with the same recipe, steps, tokens;
#   brown-dense-ed0  the dense twin without the recipe's expert dropout, the one setting that was
#                    chosen on the MoE's validation curve, so the dense model also runs at its best.
# Then picks each one's checkpoint on the validation split (the best seen, or the mean of its last
# kept weights), evaluates them on the test split (cross-entropy, perplexity, bits per byte),
# prints the validation curves, and installs the MoE model's in models/brown-moe with fresh expert
# profiles. About 7 hours on two cores (--only moe: about 4.5).
#
# Interrupt it at any time and run it again: each run continues from its last checkpoint (every
# 250 steps) with its optimizer and random streams, so the result is the same as one run that was
# never stopped. Bit-for-bit only on the same kind of CPU and BLAS; elsewhere, the same recipe.
#
# Usage: scripts/train_shipped_model.sh [--only moe|dense|dense-ed0] [--no-install]
#   results: build/train/<run> (curve.tsv, log.txt, best/, steps/, final/ and final.txt: the
#   checkpoint kept and its validation cross-entropy, test.json)
set -euo pipefail
cd "$(dirname "$0")/.."

only=""
install=1
while (($#)); do
  case "$1" in
    --only)
      (($# >= 2)) || { echo "--only needs a value: moe, dense or dense-ed0" >&2; exit 2; }
      only=$2; shift 2 ;;
    --no-install) install=0; shift ;;
    --help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
done
case "$only" in ""|moe|dense|dense-ed0) ;; *) echo "--only: moe, dense or dense-ed0" >&2; exit 2 ;; esac
runs=(brown-moe brown-dense brown-dense-ed0)
[[ -z "$only" ]] || runs=("brown-$only")

scripts/prepare_data.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build --target moe-train
trainer=./build/models/train/moe-train

# The recipe. Chosen on validation loss (see models/brown-moe/MODEL_CARD.md for the runs behind
# each choice); never on test.
train() {  # run name -> trains it (or continues it) to the end
  local config=brown-dense expert_dropout=0.4
  case "$1" in
    brown-moe) config=brown-moe ;;
    brown-dense-ed0) expert_dropout=0 ;;
  esac
  mkdir -p "build/train/$1"
  "$trainer" train --config="models/configs/$config.json" --out="build/train/$1" \
    --tokenizer=models/brown-moe/tokenizer.model \
    --steps=16000 --batch=16 --seq_len=256 --warmup=100 --lr=3e-3 --min_lr=3e-4 \
    --weight_decay=0.1 --dropout=0.1 --expert_dropout="$expert_dropout" \
    --aux_loss=0.01 --z_loss=0.001 \
    --seed=1 --eval_every=250 --eval_batches=160 --keep_every=1000 --threads=1 --resume \
    >>"build/train/$1/log.txt" 2>&1
}
pids=()
for run in "${runs[@]}"; do
  train "$run" &
  pids+=($!)
done
echo "training ${runs[*]} (logs: build/train/<run>/log.txt) ..."
for pid in "${pids[@]}"; do wait "$pid"; done

# The checkpoint to keep, chosen on the whole validation split (never on test): the best one seen
# during training, or the mean of the weights kept over the last 2, 4 or 8 thousand steps.
val_ce() {  # checkpoint dir -> validation cross-entropy
  "$trainer" eval --model="$1" --data=data/brown/val.ids --threads=1 |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["cross_entropy"])'
}
choose() {  # run name
  local dir=build/train/$1 k c ce chosen="" chosen_ce=""
  local -a kept candidates=(best)
  mapfile -t kept < <(find "$dir/steps" -mindepth 1 -maxdepth 1 -type d | sort)
  for k in 2 4 8; do
    ((${#kept[@]} >= k)) || continue
    "$trainer" average --models="$(IFS=,; echo "${kept[*]: -k}")" --out="$dir/mean-last-$k"
    candidates+=("mean-last-$k")
  done
  for c in "${candidates[@]}"; do
    ce=$(val_ce "$dir/$c")
    echo "validation, $1/$c: cross-entropy $ce"
    if [[ -z "$chosen" ]] ||
      python3 -c 'import sys; sys.exit(float(sys.argv[1]) >= float(sys.argv[2]))' "$ce" "$chosen_ce"
    then
      chosen=$c chosen_ce=$ce
    fi
  done
  rm -rf "$dir/final"
  cp -r "$dir/$chosen" "$dir/final"
  echo "$chosen $chosen_ce" >"$dir/final.txt"
  echo "kept: $1/$chosen"
}

# Bits per byte: the test split's cross-entropy per UTF-8 byte of its documents (test.txt joins
# them with blank lines and ends with a newline; those separators are not part of the text).
test_bytes=$(python3 -c '
import json, os
n = len(json.load(open("data/brown/splits.json"))["test"])
print(os.path.getsize("data/brown/test.txt") - 2 * (n - 1) - 1)')
for m in "${runs[@]}"; do
  choose "$m"
  result=$("$trainer" eval --model="build/train/$m/final" --data=data/brown/test.ids --threads=1)
  echo "$result" >"build/train/$m/test.json"
  python3 - "$m" "$result" "$test_bytes" <<'EOF'
import json, math, sys
r = json.loads(sys.argv[2])
bpb = r["cross_entropy"] * r["tokens"] / math.log(2) / int(sys.argv[3])
print(f"test split, {sys.argv[1]}: cross-entropy {r['cross_entropy']:.4f} nats/token, "
      f"perplexity {r['perplexity']:.2f}, {bpb:.4f} bits per byte")
EOF
done

# The validation curves side by side, every 1,000 steps (every evaluation is in curve.tsv).
python3 - "${runs[@]}" <<'EOF'
import csv, os, sys
curves = []
for run in sys.argv[1:]:
    path = f"build/train/{run}/curve.tsv"
    rows = list(csv.DictReader(open(path), delimiter="\t")) if os.path.exists(path) else []
    curves.append({int(r["step"]): float(r["val_loss"]) for r in rows if r["val_loss"]})
steps = sorted(s for s in set().union(*curves) if s % 1000 == 0)
print("validation cross-entropy (nats/token)")
print("| step | " + " | ".join(sys.argv[1:]) + " |\n|---|" + "---|" * len(curves))
for s in steps:
    print(f"| {s:,} | " + " | ".join(f"{c[s]:.4f}" if s in c else "" for c in curves) + " |")
EOF

if ((install)) && [[ " ${runs[*]} " == *" brown-moe "* ]]; then
  cp build/train/brown-moe/final/config.json build/train/brown-moe/final/model.pt models/brown-moe/
  "$trainer" analyze --model=models/brown-moe --threads=1
fi
