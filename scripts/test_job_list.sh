#!/usr/bin/env bash
# Checks scripts/reproduce_ch6.sh's job list end to end with GNU parallel, in about a minute:
# the job list of two rows (shallow, conv; 3 seeds each) at 1 epoch on 500 images, run by
# `parallel -j2` from another directory with none of the settings in the environment (each
# line must carry what it needs), one line run again the way a Slurm array task runs it (it
# must find its record and do nothing), then the summary, which must find all six records.
# Not part of CI: it needs GNU parallel (apt-get install parallel) and trains.
#   bash scripts/test_job_list.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v parallel >/dev/null || { echo "GNU parallel is not installed (apt-get install parallel)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

OUT=$tmp/ch6 EPOCHS=1 TRAIN_LIMIT=500 ONLY="shallow conv" JOBS=1 \
  bash scripts/reproduce_ch6.sh > "$tmp/jobs.txt"
echo "job list ($(wc -l < "$tmp/jobs.txt") lines):"
cat "$tmp/jobs.txt"
[[ $(wc -l < "$tmp/jobs.txt") == 6 ]] || fail "expected 6 jobs"
ls "$tmp"/ch6/*.json >/dev/null 2>&1 && fail "printing the job list ran something"

(cd / && env -u OUT -u EPOCHS -u TRAIN_LIMIT -u ONLY -u JOBS parallel -j2 --halt now,fail=1 < "$tmp/jobs.txt")
for s in 0 1 2; do
  for p in shallow conv; do
    [[ -f $tmp/ch6/${p}_s$s.json ]] || fail "no record ${p}_s$s.json"
  done
done

before=$(stat -c %Y "$tmp/ch6/shallow_s0.json")
SLURM_ARRAY_TASK_ID=1
sed -n "${SLURM_ARRAY_TASK_ID}p" "$tmp/jobs.txt" | bash
[[ $(stat -c %Y "$tmp/ch6/shallow_s0.json") == "$before" ]] || fail "a finished job ran again"

python3 scripts/summarize_ch6.py "$tmp/ch6" | tee "$tmp/summary.txt"
for p in shallow conv; do
  grep -q "^| $p: .*(3) | .* (s0), .* (s1), .* (s2) | .* | 1 of 1 |" "$tmp/summary.txt" ||
    fail "the summary lacks the three seeds of $p"
done
echo "job list OK: 6 jobs run by GNU parallel, 6 records summarised"
