#!/usr/bin/env bash
# Reproduces the book's chapter 6 table (network3.py) at the book's full settings and prints
# it from the run records. Every run checkpoints after each epoch; run the script again after
# an interruption and it resumes each run where it stopped and skips finished ones.
#   bash scripts/reproduce_ch6.sh                        # the table (about 4 hours on 2 cores)
#   ONLY="shallow conv" bash scripts/reproduce_ch6.sh    # some rows only
#   ONLY=relu-gap bash scripts/reproduce_ch6.sh          # the relu study (README), ~45 min
#   ONLY="shallow conv conv2 relu relu-gap expanded extra-fc dropout ensemble" \
#     bash scripts/reproduce_ch6.sh                      # all of it, the study after relu
# Records, logs, checkpoints and every trained net go to runs/ch6/ (git-ignored), or to $OUT:
# a directory outside the checkout survives a fresh clone of it.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-runs/ch6}
mkdir -p "$out/nets" "$out/ensemble"
cargo build --release --example network3 >/dev/null
# A copy, so a rebuild while the runs go on does not change the program under them.
cp target/release/examples/network3 "$out/network3.new" && mv "$out/network3.new" "$out/network3"
bin=$out/network3
only=" ${ONLY:-shallow conv conv2 relu expanded extra-fc dropout ensemble} "

# run NAME ARGS...: one network3 run, resumed if it has a checkpoint, skipped if recorded;
# the trained net is saved in nets/NAME.safetensors unless ARGS say where.
run() {
  local name=$1; shift
  local json=$out/$name.json ck=$out/$name.ckpt save=()
  if [[ -f $json ]]; then return; fi
  local resume=(--checkpoint "$ck")
  if [[ -n $(ls -A "$ck" 2>/dev/null) ]]; then resume=(--resume "$ck"); fi
  [[ " $* " == *" --save "* ]] || save=(--save "$out/nets/$name.safetensors")
  echo "$(date +%T) $name: $bin $* ${save[*]} ${resume[*]} --json $json (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
  "$bin" "$@" "${save[@]}" "${resume[@]}" --json "$json" >"$out/$name.log" 2>&1 ||
    { echo "$name failed, see $out/$name.log" >&2; exit 1; }
}
has() { [[ $only == *" $1 "* ]]; }

for p in shallow conv conv2 relu; do
  has "$p" || continue
  for s in 0 1 2; do run "${p}_s$s" --preset "$p" --seed "$s"; done
done
# The relu study: the relu preset with one of network3.py's semantics changed at a time.
if has relu-gap; then
  relu_first="conv:20x5x5,pool:2,relu conv:40x5x5,pool:2,relu fc:100,relu softmax:10"
  for s in 0 1 2; do
    run "relu_scale255_s$s" --preset relu --seed "$s" --pixel-scale 255
    run "relu_poolfirst_s$s" --preset relu --seed "$s" --layers "$relu_first" --pixel-scale 256
    run "relu_shuffle_s$s" --preset relu --seed "$s" --shuffle
  done
  run relu_threads1_s0 --preset relu --seed 0 --threads 1
fi
for p in expanded extra-fc; do
  if has "$p"; then run "${p}_s0" --preset "$p" --seed 0; fi
done
# The five dropout nets are the ensemble's: each saved where --vote-only looks for it.
if has dropout || has ensemble; then
  for s in 0 1 2 3 4; do
    [[ $s == 0 ]] || has ensemble || continue
    run "dropout_s$s" --preset dropout --seed "$s" --save "$out/ensemble/net${s}_seed$s.safetensors"
  done
fi
if has ensemble; then
  run ensemble --preset ensemble --vote-only --save "$out/ensemble" \
    --misclassified "$out/ensemble_misclassified.png"
fi
python3 scripts/summarize_ch6.py "$out"
