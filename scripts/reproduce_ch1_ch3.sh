#!/usr/bin/env bash
# Reproduces the book's chapter 1 and 3 figures (DESIGN.md §3) with 3 seeds each and prints
# the README table (book vs nndl mean, spread, wall time per run). Output JSON goes to runs/.
# Usage: bash scripts/reproduce_ch1_ch3.sh [seeds...]   (default seeds: 1 2 3)
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=("${@:-1 2 3}")
read -r -a seeds <<< "${seeds[*]}"
mkdir -p runs
cargo build --release --example network --example network2 >/dev/null
for s in "${seeds[@]}"; do
  target/release/examples/network --seed "$s" --json "runs/network_30_s$s.json" > /dev/null
  target/release/examples/network --seed "$s" --hidden 100 --json "runs/network_100_s$s.json" > /dev/null
  target/release/examples/network2 --seed "$s" --large-weights --lambda 0 --evaluation test --accuracy-only --json "runs/network2_30_l0_s$s.json" > /dev/null
  target/release/examples/network2 --seed "$s" --large-weights --lambda 5 --evaluation test --accuracy-only --json "runs/network2_30_l5_s$s.json" > /dev/null
  target/release/examples/network2 --seed "$s" --large-weights --hidden 100 --lambda 5 --eta 0.5 --accuracy-only --json "runs/network2_100_e05_s$s.json" > /dev/null
  target/release/examples/network2 --seed "$s" --large-weights --hidden 100 --lambda 5 --eta 0.1 --epochs 60 --accuracy-only --json "runs/network2_100_e01_s$s.json" > /dev/null
  target/release/examples/network2 --seed "$s" --hidden 100 --lambda 5 --eta 0.1 --epochs 60 --accuracy-only --json "runs/network2_100_default_e01_s$s.json" > /dev/null
  echo "seed $s done" >&2
done
python3 scripts/summarize.py runs "${seeds[@]}"
