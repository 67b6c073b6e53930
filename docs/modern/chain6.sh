#!/usr/bin/env bash
# Issue 14: a shorter point of the accuracy-against-time frontier with the weight average (it
# reached the 16-epoch runs' validation accuracy by epoch 6 of them): 8 epochs, seeds 0-2, and
# their ensemble. One run at a time: the wall times are figures.
D=${D:-../nndl-runs/modern3}
B=${B:-$D/bin2}
E=${E:-8}
cd "$(dirname "$0")/../.."
run() { local name=$1; shift; echo "$(date -u +%T) start $name $(cat /proc/loadavg)" >> $D/chain.txt; "$@" > $D/$name.log 2>&1; echo "$(date -u +%T) end $name rc=$? $(cat /proc/loadavg)" >> $D/chain.txt; }
for s in 0 1 2; do
  run e${E}emas$s $B --epochs $E --seed $s --json $D/e${E}emas$s.json --save $D/e${E}emas$s.safetensors --checkpoint $D/cke${E}ema$s
done
run e${E}emaensemble $B --ensemble $D/e${E}emas0.safetensors $D/e${E}emas1.safetensors $D/e${E}emas2.safetensors
echo done >> $D/chain.txt
