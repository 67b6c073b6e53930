#!/usr/bin/env bash
# The modern recipe's runs ("Beyond the book", docs/results/modern.md): seeds 0-2 of the
# recipe (16 epochs, the weight average on), each saved, then their ensemble; with
# TRAIN_ALL=1 the same on all 60,000 training images. Runs checkpoint after every epoch and
# resume; a run whose record exists is skipped. Records, logs, nets and checkpoints go to
# runs/modern/, or to $OUT. One run takes 9-11 minutes on 2 cores, one at a time (the wall
# times are figures: run nothing beside it).
#   bash scripts/reproduce_modern.sh                     # the recipe, seeds 0 1 2, ensemble
#   SEEDS="0 1 2 3 4" TRAIN_ALL=1 EPOCHS=16 bash scripts/reproduce_modern.sh
#   EPOCHS=24 TAG=e24 bash scripts/reproduce_modern.sh   # a variation, named by TAG
#   TORCH=1 bash scripts/reproduce_modern.sh             # and PyTorch's run of seed 0
# Extra flags for every run of a variation: ARGS="--ema 0" TAG=noavg bash scripts/...
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-runs/modern}
mkdir -p "$out"
cargo build --release --example modern >/dev/null
# A copy, so a rebuild while the runs go on does not change the program under them.
cp "${CARGO_TARGET_DIR:-target}/release/examples/modern" "$out/modern.$$" && mv "$out/modern.$$" "$out/modern"
bin=$out/modern
tag=${TAG:-}${TRAIN_ALL:+all60}
epochs=(--epochs "${EPOCHS:-16}")
all=()
[[ -z ${TRAIN_ALL:-} ]] || all=(--train-all)
read -r -a extra <<< "${ARGS:-}"
nets=()
for s in ${SEEDS:-0 1 2}; do
  name=${tag}s$s
  nets+=("$out/$name.safetensors")
  [[ -f $out/$name.json ]] && continue
  ck=$out/ck_$name resume=(--checkpoint "$out/ck_$name")
  [[ -z $(ls -A "$ck" 2>/dev/null) ]] || resume=(--resume "$ck")
  echo "$(date +%T) $name (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
  "$bin" "${epochs[@]}" "${all[@]}" "${extra[@]}" --seed "$s" --save "$out/$name.safetensors" \
    "${resume[@]}" --json "$out/$name.json" > "$out/$name.log" 2>&1
done
# Each net's validation and test accuracy, then the ensemble's (mean probabilities).
"$bin" --ensemble "${nets[@]}" | tee "$out/${tag}ensemble.log"
if [[ -n ${TORCH:-} ]]; then
  python3 benches/modern_pytorch.py "${epochs[@]}" ${TRAIN_ALL:+--train-all} --seed 0 --threads 2 \
    | tee "$out/torch_${tag}s0.log"
fi
