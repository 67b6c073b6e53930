#!/usr/bin/env bash
# Reproduces the book's chapter 1 and 3 accuracies (network.py and network2.py at the book's
# settings) with 3 seeds each and prints the table of docs/results/book.md (book vs nndl mean,
# the runs, wall time per run). Records go to runs/ch1_ch3/, or to $OUT; the kept ones are in
# docs/book/ch1_ch3/. A run whose record exists is skipped, so an interrupted reproduction
# continues where it stopped.
#   bash scripts/reproduce_ch1_ch3.sh [seeds...]   (default seeds: 1 2 3; ~7 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=("${@:-1 2 3}")
read -r -a seeds <<< "${seeds[*]}"
out=${OUT:-runs/ch1_ch3}
mkdir -p "$out"
cargo build --release --example network --example network2 >/dev/null
bin=${CARGO_TARGET_DIR:-target}/release/examples
# one NAME PROGRAM ARGS...: one run, its record in $out/NAME.json.
one() {
  local name=$1 prog=$2; shift 2
  [[ -f $out/$name.json ]] && return
  "$bin/$prog" "$@" --json "$out/$name.json.new" > /dev/null
  mv "$out/$name.json.new" "$out/$name.json"
}
for s in "${seeds[@]}"; do
  one "network_30_s$s" network --seed "$s"
  one "network_100_s$s" network --seed "$s" --hidden 100
  one "network2_30_l0_s$s" network2 --seed "$s" --large-weights --lambda 0 --evaluation test --accuracy-only
  one "network2_30_l5_s$s" network2 --seed "$s" --large-weights --lambda 5 --evaluation test --accuracy-only
  one "network2_100_e05_s$s" network2 --seed "$s" --large-weights --hidden 100 --lambda 5 --eta 0.5 --accuracy-only
  one "network2_100_e01_s$s" network2 --seed "$s" --large-weights --hidden 100 --lambda 5 --eta 0.1 --epochs 60 --accuracy-only
  one "network2_100_default_e01_s$s" network2 --seed "$s" --hidden 100 --lambda 5 --eta 0.1 --epochs 60 --accuracy-only
  echo "seed $s done" >&2
done
python3 scripts/summarize.py "$out" "${seeds[@]}"
