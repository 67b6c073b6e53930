#!/usr/bin/env bash
# The issue-14 runs, one after another (never two at once: the wall times are the figures).
B=../nndl-runs/modern/bin
D=../nndl-runs/modern
cd "$(dirname "$0")/../.."
run() { local name=$1; shift; echo "$(date -u +%T) start $name $(cat /proc/loadavg)" >> $D/chain.txt; "$@" > $D/$name.log 2>&1; echo "$(date -u +%T) end $name rc=$? $(cat /proc/loadavg)" >> $D/chain.txt; }
run s0 $B --epochs 10 --seed 0 --json $D/s0.json --plot $D/s0.png --save $D/s0.safetensors --checkpoint $D/ck0
run torch_s0 python3 benches/modern_pytorch.py --epochs 10 --seed 0 --threads 2
run s1 $B --epochs 10 --seed 1 --json $D/s1.json --save $D/s1.safetensors --checkpoint $D/ck1
run s2 $B --epochs 10 --seed 2 --json $D/s2.json --save $D/s2.safetensors --checkpoint $D/ck2
run ensemble $B --ensemble $D/s0.safetensors $D/s1.safetensors $D/s2.safetensors
run e3 $B --epochs 3 --seed 0 --json $D/e3.json
run e6 $B --epochs 6 --seed 0 --json $D/e6.json
echo done >> $D/chain.txt
