#!/usr/bin/env bash
# Reproduces the book's chapter 6 table (network3.py) at the book's full settings and prints
# it from the run records. Every run checkpoints after each epoch; run the script again after
# an interruption and it resumes each run where it stopped and skips finished ones.
#   bash scripts/reproduce_ch6.sh                        # the table (about 4.4 hours on 2 cores)
#   ONLY="shallow conv" bash scripts/reproduce_ch6.sh    # some rows only
#   ONLY=relu-gap bash scripts/reproduce_ch6.sh          # the relu study, ~1.5 h
#   ONLY="shallow conv conv2 relu relu-gap expanded extra-fc dropout ensemble" \
#     bash scripts/reproduce_ch6.sh                      # all of it, the study after relu
# Records, logs, checkpoints and every trained net go to runs/ch6/ (git-ignored), or to $OUT.
#
# More than one machine, or more than one run at a time: JOBS=1 prints the runs as a job list
# instead of running them, one self-contained shell command per line (it changes into this
# checkout, resumes from its checkpoint if it has one, writes its own record and log, and does
# nothing if its record exists), in any order:
#   JOBS=1 bash scripts/reproduce_ch6.sh > jobs.txt
#   parallel -j1 < jobs.txt                              # GNU parallel; -j2 on 4+ cores
#   parallel --sshlogin a,b --workdir . < jobs.txt       # over ssh: each host needs the
#                                                        # checkout at the path in the lines
#                                                        # (ROOT=DIR sets it) and the data
#   sbatch --array=1-$(wc -l < jobs.txt) --wrap 'sed -n "${SLURM_ARRAY_TASK_ID}p" jobs.txt | bash'
# Then gather the OUT directories in one place and run the script again without JOBS: it finds
# the records, votes the ensemble from the five dropout nets in $OUT/ensemble and prints the
# table (python3 scripts/summarize_ch6.py DIR prints whatever records DIR has at any time).
# The ensemble is not in the job list: it needs the five nets the dropout jobs save.
# EPOCHS=N and TRAIN_LIMIT=N shorten every run (for testing the machinery: scripts/test_job_list.sh).
#
# Internal: `reproduce_ch6.sh --one NAME ARGS...` is one job (what the job list's lines call).
set -euo pipefail
cd "$(dirname "$0")/.."
root=${ROOT:-$PWD}
out=${OUT:-runs/ch6}
mkdir -p "$out/nets" "$out/ensemble"
target=${CARGO_TARGET_DIR:-target}
bin=$out/network3

# The binary every run uses: a copy, so a rebuild while the runs go on does not change the
# program under them. The temp name is per process, so jobs starting together do not clash.
ensure_bin() {
  [[ -x $bin ]] && return
  cargo build --release --example network3 >/dev/null
  cp "$target/release/examples/network3" "$bin.$$" && mv "$bin.$$" "$bin"
}

# run NAME ARGS...: one network3 run, resumed if it has a checkpoint, skipped if recorded;
# the trained net is saved in nets/NAME.safetensors unless ARGS say where.
run() {
  local name=$1; shift
  local json=$out/$name.json ck=$out/$name.ckpt save=() short=()
  if [[ -f $json ]]; then return; fi
  local resume=(--checkpoint "$ck")
  if [[ -n $(ls -A "$ck" 2>/dev/null) ]]; then resume=(--resume "$ck"); fi
  [[ " $* " == *" --save "* ]] || save=(--save "$out/nets/$name.safetensors")
  [[ -z ${EPOCHS:-} ]] || short+=(--epochs "$EPOCHS")
  [[ -z ${TRAIN_LIMIT:-} ]] || short+=(--train-limit "$TRAIN_LIMIT")
  ensure_bin
  echo "$(date +%T) $name: $bin $* ${short[*]} ${save[*]} ${resume[*]} --json $json (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
  "$bin" "$@" "${short[@]}" "${save[@]}" "${resume[@]}" --json "$json" >"$out/$name.log" 2>&1 ||
    { echo "$name failed, see $out/$name.log" >&2; exit 1; }
}

if [[ ${1:-} == --one ]]; then
  shift
  run "$@"
  exit
fi

# job NAME ARGS...: in a job list, the line that runs it; else the run itself.
job() {
  if [[ -n ${JOBS:-} ]]; then
    local line
    line="cd $(printf %q "$root") && OUT=$(printf %q "$out")"
    [[ -z ${EPOCHS:-} ]] || line+=" EPOCHS=$(printf %q "$EPOCHS")"
    [[ -z ${TRAIN_LIMIT:-} ]] || line+=" TRAIN_LIMIT=$(printf %q "$TRAIN_LIMIT")"
    line+=" bash scripts/reproduce_ch6.sh --one"
    printf '%s' "$line"; printf ' %q' "$@"; printf '\n'
  else
    run "$@"
  fi
}
has() { [[ $only == *" $1 "* ]]; }
only=" ${ONLY:-shallow conv conv2 relu expanded extra-fc dropout ensemble} "

# Built once here, so the jobs on this machine find the binary instead of each building it.
ensure_bin
for p in shallow conv conv2 relu; do
  has "$p" || continue
  for s in 0 1 2; do job "${p}_s$s" --preset "$p" --seed "$s"; done
done
# The relu study: the relu preset with one of network3.py's semantics changed at a time.
if has relu-gap; then
  relu_first="conv:20x5x5,pool:2,relu conv:40x5x5,pool:2,relu fc:100,relu softmax:10"
  for s in 0 1 2; do
    job "relu_scale255_s$s" --preset relu --seed "$s" --pixel-scale 255
    job "relu_poolfirst_s$s" --preset relu --seed "$s" --layers "$relu_first" --pixel-scale 256
    job "relu_shuffle_s$s" --preset relu --seed "$s" --shuffle
  done
  job relu_threads1_s0 --preset relu --seed 0 --threads 1
fi
for p in expanded extra-fc; do
  if has "$p"; then job "${p}_s0" --preset "$p" --seed 0; fi
done
# The five dropout nets are the ensemble's: each saved where --vote-only looks for it.
if has dropout || has ensemble; then
  for s in 0 1 2 3 4; do
    [[ $s == 0 ]] || has ensemble || continue
    job "dropout_s$s" --preset dropout --seed "$s" --save "$out/ensemble/net${s}_seed$s.safetensors"
  done
fi
[[ -z ${JOBS:-} ]] || exit 0
if has ensemble; then
  if [[ $(ls "$out"/ensemble/*.safetensors 2>/dev/null | wc -l) -ge 5 ]]; then
    run ensemble --preset ensemble --vote-only --save "$out/ensemble" \
      --misclassified "$out/ensemble_misclassified.png"
  else
    echo "ensemble: not all five dropout nets are in $out/ensemble yet" >&2
  fi
fi
python3 scripts/summarize_ch6.py "$out"
