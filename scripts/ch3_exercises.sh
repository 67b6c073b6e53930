#!/usr/bin/env bash
# Chapter 3's exercises as network2 flags, 3 seeds each: [784,30,10], eta 0.5, lmbda 5.0,
# 30 epochs (200 for the schedule's cap), validation accuracy. Records go to
# runs/ch3_exercises/, or to $OUT (the kept ones: docs/book/ch3_exercises/); a run whose record
# exists is skipped. Prints the table of docs/results/book.md.
#   bash scripts/ch3_exercises.sh          (~10 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-runs/ch3_exercises}
mkdir -p "$out"
cargo build --release --example network2 -q
bin=${CARGO_TARGET_DIR:-target}/release/examples/network2
run() {
  local name=$1; shift
  for seed in 1 2 3; do
    local f="$out/${name}_s$seed.json"
    [[ -f $f ]] && continue
    "$bin" --accuracy-only --seed "$seed" --json "$f.new" "$@" > "$out/${name}_s$seed.log" 2>&1
    mv "$f.new" "$f"
  done
}
run sgd                   --epochs 30
run momentum-0.5          --epochs 30 --momentum 0.5
run momentum-0.5-eta-0.25 --epochs 30 --momentum 0.5 --eta 0.25
run l1-5.0                --epochs 30 --l1 5.0
run tanh                  --epochs 30 --activation tanh
run tanh-eta-0.1          --epochs 30 --activation tanh --eta 0.1
run eta-schedule          --epochs 200 --eta-schedule
python3 - "$out" <<'PY'
import sys
sys.path.insert(0, "scripts")
import summarize_book
print("\n".join(summarize_book.exercises(sys.argv[1])))
PY
