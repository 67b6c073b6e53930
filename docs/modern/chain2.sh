#!/usr/bin/env bash
# Issue 14, second round (direct convolution kernels): the recipe for 16 epochs, the most that
# fit in 15 minutes with a margin at the measured 46-53 s per epoch; one run at a time (the wall times are the
# figures). Outputs outside the checkout; logs and JSON copied into docs/modern/ afterwards.
B=../nndl-runs/modern2/bin
D=../nndl-runs/modern2
cd "$(dirname "$0")/../.."
run() { local name=$1; shift; echo "$(date -u +%T) start $name $(cat /proc/loadavg)" >> $D/chain.txt; "$@" > $D/$name.log 2>&1; echo "$(date -u +%T) end $name rc=$? $(cat /proc/loadavg)" >> $D/chain.txt; }
run e16s0 $B --epochs 16 --seed 0 --json $D/e16s0.json --plot $D/e16s0.png --save $D/e16s0.safetensors --checkpoint $D/ck0
run e16s1 $B --epochs 16 --seed 1 --json $D/e16s1.json --save $D/e16s1.safetensors --checkpoint $D/ck1
run e16s2 $B --epochs 16 --seed 2 --json $D/e16s2.json --save $D/e16s2.safetensors --checkpoint $D/ck2
run e16ensemble $B --ensemble $D/e16s0.safetensors $D/e16s1.safetensors $D/e16s2.safetensors
run torch_e16s0 python3 benches/modern_pytorch.py --epochs 16 --seed 0 --threads 2
echo done >> $D/chain.txt
