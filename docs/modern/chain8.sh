#!/usr/bin/env bash
# Issue 14: is the missing 0.05% data? The default recipe (16 epochs, the count chosen on
# validation in chain3.sh's runs) trained on all 60,000 training images (--train-all: the
# 10,000 validation images join the 50,000), the last epoch's average reported; seeds 0-2 and
# their ensemble. One run at a time: the wall times are figures.
D=${D:-../nndl-runs/modern3}
B=${B:-$D/bin5}
cd "$(dirname "$0")/../.."
run() { local name=$1; shift; echo "$(date -u +%T) start $name $(cat /proc/loadavg)" >> $D/chain.txt; "$@" > $D/$name.log 2>&1; echo "$(date -u +%T) end $name rc=$? $(cat /proc/loadavg)" >> $D/chain.txt; }
for s in 0 1 2; do
  run all60s$s $B --train-all --seed $s --json $D/all60s$s.json --save $D/all60s$s.safetensors --checkpoint $D/ckall60$s
done
run all60ensemble $B --ensemble $D/all60s0.safetensors $D/all60s1.safetensors $D/all60s2.safetensors
echo done >> $D/chain.txt
