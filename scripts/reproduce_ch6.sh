#!/usr/bin/env bash
# Reproduces the book's chapter 6 table (network3.py) at the book's full settings and prints
# it from the run records. Every run checkpoints after each epoch; run the script again after
# an interruption and it resumes each run where it stopped and skips finished ones.
#   bash scripts/reproduce_ch6.sh            # everything (about 4.5 hours on 2 cores)
#   ONLY="shallow conv" bash scripts/reproduce_ch6.sh   # some presets only
# Records, logs, checkpoints and the ensemble's nets go to runs/ch6/ (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
out=runs/ch6
mkdir -p "$out/ensemble"
cargo build --release --example network3 >/dev/null
# A copy, so a rebuild while the runs go on does not change the program under them.
cp target/release/examples/network3 "$out/network3"
bin=$out/network3
only=" ${ONLY:-shallow conv conv2 relu expanded extra-fc dropout ensemble} "

# run NAME ARGS...: one network3 run, resumed if it has a checkpoint, skipped if recorded.
run() {
  local name=$1; shift
  local json=$out/$name.json ck=$out/$name.ckpt
  if [[ -f $json ]]; then return; fi
  local resume=(--checkpoint "$ck")
  if [[ -n $(ls -A "$ck" 2>/dev/null) ]]; then resume=(--resume "$ck"); fi
  echo "$(date +%T) $name: $bin $* ${resume[*]} --json $json" >&2
  "$bin" "$@" "${resume[@]}" --json "$json" >"$out/$name.log" 2>&1 ||
    { echo "$name failed, see $out/$name.log" >&2; exit 1; }
}

for p in shallow conv conv2 relu; do
  [[ $only == *" $p "* ]] || continue
  for s in 0 1 2; do run "${p}_s$s" --preset "$p" --seed "$s"; done
done
for p in expanded extra-fc; do
  [[ $only == *" $p "* ]] && run "${p}_s0" --preset "$p" --seed 0
done
# The five dropout nets are the ensemble's: each saved where --vote-only looks for it.
if [[ $only == *" dropout "* || $only == *" ensemble "* ]]; then
  for s in 0 1 2 3 4; do
    [[ $s == 0 || $only == *" ensemble "* ]] || continue
    run "dropout_s$s" --preset dropout --seed "$s" --save "$out/ensemble/net${s}_seed$s.safetensors"
  done
fi
if [[ $only == *" ensemble "* ]]; then
  run ensemble --preset ensemble --vote-only --save "$out/ensemble" \
    --misclassified "$out/ensemble_misclassified.png"
fi
python3 scripts/summarize_ch6.py "$out"
