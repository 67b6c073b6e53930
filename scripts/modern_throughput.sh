#!/usr/bin/env bash
# nndl against PyTorch on the modern recipe (the defaults of both, weight average included),
# 12,800 training images for one epoch, alternated ROUNDS times (default 3) in one invocation
# with the load average beside each round. Writes the record docs/results/modern.md's
# throughput table is made from (default runs/modern_throughput.json; OUT=PATH elsewhere).
# Nothing else may run meanwhile: it is a speed measurement.
# BF16=1: both sides at their fastest, nndl --bf16 against PyTorch with bf16 autocast and
# channels-last (record default runs/modern_throughput_bf16.json).
#   bash scripts/modern_throughput.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --example modern >/dev/null
bin=${CARGO_TARGET_DIR:-target}/release/examples/modern
if [ "${BF16:-0}" = 1 ]; then
  nndl_flags=(--bf16) torch_flags=(--bf16 --channels-last) out=${OUT:-runs/modern_throughput_bf16.json}
else
  nndl_flags=() torch_flags=() out=${OUT:-runs/modern_throughput.json}
fi
mkdir -p "$(dirname "$out")"
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
for r in $(seq 1 "${ROUNDS:-3}"); do
  echo "round $r load $(cut -d' ' -f1-3 /proc/loadavg)" >> "$tmp"
  echo "nndl $("$bin" --train-limit 12800 --epochs 1 "${nndl_flags[@]}" 2>/dev/null | tail -1)" >> "$tmp"
  echo "torch $(python3 benches/modern_pytorch.py --train-limit 12800 --epochs 1 --threads 2 "${torch_flags[@]}" | tail -1)" >> "$tmp"
done
echo "end load $(cut -d' ' -f1-3 /proc/loadavg)" >> "$tmp"
python3 - "$tmp" "$out" "$(date -u +%F) $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" <<'PY'
import json, re, sys
rounds, end = [], None
for l in open(sys.argv[1]):
    l = l.strip()
    if l.startswith("round"):
        rounds.append({"load_average": [float(x) for x in l.split("load ")[1].split()]})
    elif l.startswith("nndl"):
        m = re.match(r"nndl ([\d.]+) s, (\d+) training images/s", l)
        rounds[-1]["nndl"] = {"wall_seconds": float(m.group(1)), "train_images_per_second": int(m.group(2))}
    elif l.startswith("torch"):
        rounds[-1]["pytorch"] = json.loads(l[len("torch "):])
    elif l.startswith("end"):
        end = [float(x) for x in l.split("load ")[1].split()]
about = f"scripts/modern_throughput.sh, {sys.argv[3]}"
json.dump({"about": about, "rounds": rounds, "end_load_average": end}, open(sys.argv[2], "w"), indent=1)
print(f"wrote {sys.argv[2]}")
PY
python3 - "$out" <<'PY'
import sys
sys.path.insert(0, "scripts")
import summarize_modern
print("\n".join(summarize_modern.throughput(sys.argv[1])))
PY
