#!/usr/bin/env bash
# Issue 14, fourth round: the recipe with the weight average (--ema 0.999) for 24 epochs (the
# host ran the recipe at 1,650-1,950 images/s this session, ~30 s an epoch: 24 epochs in about
# 13 minutes), seeds 0-2, their ensemble, then PyTorch on the same recipe and seed 0. One run at
# a time: the wall times are figures. Logs and JSON copied into docs/modern/ afterwards.
B=${B:-../nndl-runs/modern3/bin1}
D=${D:-../nndl-runs/modern3}
E=${E:-24}
cd "$(dirname "$0")/../.."
run() { local name=$1; shift; echo "$(date -u +%T) start $name $(cat /proc/loadavg)" >> $D/chain.txt; "$@" > $D/$name.log 2>&1; echo "$(date -u +%T) end $name rc=$? $(cat /proc/loadavg)" >> $D/chain.txt; }
for s in 0 1 2; do
  run e${E}emas$s $B --epochs $E --seed $s --ema 0.999 --json $D/e${E}emas$s.json --save $D/e${E}emas$s.safetensors --checkpoint $D/cke${E}ema$s
done
run e${E}emaensemble $B --ensemble $D/e${E}emas0.safetensors $D/e${E}emas1.safetensors $D/e${E}emas2.safetensors
run torch_e${E}emas0 python3 benches/modern_pytorch.py --epochs $E --seed 0 --ema 0.999 --threads 2
echo done >> $D/chain.txt
