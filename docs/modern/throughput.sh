#!/usr/bin/env bash
# nndl against PyTorch on the modern recipe (defaults of both, weight average included), 12,800
# training images for one epoch, alternated ROUNDS times in one invocation with the load average
# beside each round; writes docs/modern/throughput.txt. Nothing else may run meanwhile.
B=${B:-target/release/examples/modern}
OUT=${OUT:-docs/modern/throughput.txt}
cd "$(dirname "$0")/../.."
: > $OUT
for r in $(seq 1 ${ROUNDS:-3}); do
  echo "round $r load $(cut -d' ' -f1-3 /proc/loadavg)" >> $OUT
  echo "nndl $($B --train-limit 12800 --epochs 1 2>/dev/null | tail -1)" >> $OUT
  echo "torch $(python3 benches/modern_pytorch.py --train-limit 12800 --epochs 1 --threads 2 | tail -1)" >> $OUT
done
echo "end load $(cut -d' ' -f1-3 /proc/loadavg)" >> $OUT
