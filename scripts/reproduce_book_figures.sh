#!/usr/bin/env bash
# The experiments behind chapter 3's figures and chapter 5's speeds of learning, 3 seeds each
# (examples/book.rs, one subcommand per figure): the figures, records and logs go to
# runs/book/, or to $OUT (the kept records and figures: docs/book/). An experiment whose record
# exists is skipped. Prints the tables of docs/results/book.md. About 35 minutes on 2 cores,
# 19 of them more-data (its SVM on up to 50,000 images), 10 the Hessian technique (hessian,
# hessian-free); ONLY="init depth" runs some.
#   bash scripts/reproduce_book_figures.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-runs/book}
mkdir -p "$out"
cargo build --release --example book >/dev/null
bin=${CARGO_TARGET_DIR:-target}/release/examples/book
only=" ${ONLY:-overfitting overfitting-l2 init learning-rates depth layer-speeds more-data hessian hessian-free} "
# one NAME ARGS...: `book ARGS --seeds 3`, its record NAME.json and figure NAME.png.
one() {
  local name=$1; shift
  [[ $only == *" $name "* && ! -f $out/$name.json ]] || return 0
  echo "$(date +%T) $name: book $* (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
  "$bin" "$@" --seeds 3 --plot "$out/$name.png" --json "$out/$name.json" > "$out/$name.log"
}
one overfitting overfitting
one overfitting-l2 overfitting --lambda 0.1
one init init
one learning-rates learning-rates
one depth depth
one layer-speeds layer-speeds
one more-data more-data
one hessian hessian
one hessian-free hessian-free
python3 scripts/summarize_book.py "$out" docs/book/ch3_exercises
