#!/bin/bash
# Chapter 3's exercises as network2 flags, 3 seeds each: [784,30,10], eta 0.5, lmbda 5.0,
# 30 epochs (60 for the schedule's cap), validation accuracy. Prints one line per run;
# OUT=DIR keeps the JSON records (default runs/ch3_exercises).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/ch3_exercises}
mkdir -p "$OUT"
cargo build --release --example network2 -q
B=target/release/examples/network2
run() {
  name=$1; shift
  for seed in 1 2 3; do
    f="$OUT/${name}_s$seed.json"
    [ -f "$f" ] || "$B" --accuracy-only --seed "$seed" --json "$f" "$@" > "$OUT/${name}_s$seed.log" 2>&1
    python3 - "$f" "$name" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
v = [e.get("validation_accuracy") or 0 for e in r["epochs"]]
print(f'{sys.argv[2]:<22} seed {r["settings"]["seed"]}: best validation {100*max(v):.2f}% at epoch {v.index(max(v))}, '
      f'{len(v)} epochs, {r["wall_seconds"]:.0f} s')
PY
  done
}
run sgd                 --epochs 30
run momentum-0.5        --epochs 30 --momentum 0.5
run momentum-0.5-eta-0.25 --epochs 30 --momentum 0.5 --eta 0.25
run l1-5.0              --epochs 30 --l1 5.0
run tanh                --epochs 30 --activation tanh
run tanh-eta-0.1        --epochs 30 --activation tanh --eta 0.1
run eta-schedule        --epochs 200 --eta-schedule
