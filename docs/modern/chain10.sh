#!/usr/bin/env bash
# Issue 14: chain8.sh's runs (all 60,000 images, 16 epochs) for two more seeds, 3 and 4, to see
# how far the mean of three moves with more seeds. One run at a time: the wall times are
# figures.
D=${D:-../nndl-runs/modern3}
B=${B:-$D/bin6}
cd "$(dirname "$0")/../.."
run() { local name=$1; shift; echo "$(date -u +%T) start $name $(cat /proc/loadavg)" >> $D/chain.txt; "$@" > $D/$name.log 2>&1; echo "$(date -u +%T) end $name rc=$? $(cat /proc/loadavg)" >> $D/chain.txt; }
for s in 3 4; do
  run all60s$s $B --train-all --seed $s --json $D/all60s$s.json --save $D/all60s$s.safetensors --checkpoint $D/ckall60$s
done
echo done >> $D/chain.txt
