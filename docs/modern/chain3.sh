#!/usr/bin/env bash
# Issue 14, third round: the recipe with a weight average for evaluation (--ema 0.999), 16
# epochs, seeds 0-2 (the same seeds as chain2.sh, so each seed's training is that run's and the
# average is the only change), then their ensemble. One run at a time: the wall times are figures.
# Outputs outside the checkout; logs and JSON copied into docs/modern/ afterwards.
B=${B:-../nndl-runs/modern3/bin1}
D=${D:-../nndl-runs/modern3}
EMA=${EMA:-0.999}
TAG=${TAG:-ema}
cd "$(dirname "$0")/../.."
run() { local name=$1; shift; echo "$(date -u +%T) start $name $(cat /proc/loadavg)" >> $D/chain.txt; "$@" > $D/$name.log 2>&1; echo "$(date -u +%T) end $name rc=$? $(cat /proc/loadavg)" >> $D/chain.txt; }
for s in ${SEEDS:-0 1 2}; do
  run ${TAG}s$s $B --epochs 16 --seed $s --ema $EMA --json $D/${TAG}s$s.json --save $D/${TAG}s$s.safetensors --checkpoint $D/ck${TAG}$s
done
run ${TAG}ensemble $B --ensemble $D/${TAG}s0.safetensors $D/${TAG}s1.safetensors $D/${TAG}s2.safetensors
echo done >> $D/chain.txt
