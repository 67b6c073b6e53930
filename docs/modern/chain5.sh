#!/usr/bin/env bash
# Issue 14, after chain4.sh was stopped before its PyTorch run (the default stays 16 epochs:
# 24 raised validation, not test): the 24-epoch ensemble, then PyTorch on the default recipe
# (16 epochs, weight average 0.999), seed 0, alone on the cores.
D=${D:-../nndl-runs/modern3}
B=${B:-$D/bin1}
cd "$(dirname "$0")/../.."
while pgrep -f "seed 2 --ema 0.999 --json $D/e24emas2.json" > /dev/null; do sleep 5; done
echo "$(date -u +%T) end e24emas2 (seen by chain5) $(cat /proc/loadavg)" >> $D/chain.txt
run() { local name=$1; shift; echo "$(date -u +%T) start $name $(cat /proc/loadavg)" >> $D/chain.txt; "$@" > $D/$name.log 2>&1; echo "$(date -u +%T) end $name rc=$? $(cat /proc/loadavg)" >> $D/chain.txt; }
run e24emaensemble $B --ensemble $D/e24emas0.safetensors $D/e24emas1.safetensors $D/e24emas2.safetensors
run torch_emas0 python3 benches/modern_pytorch.py --epochs 16 --seed 0 --ema 0.999 --threads 2
echo done >> $D/chain.txt
