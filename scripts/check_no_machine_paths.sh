#!/usr/bin/env bash
# Fails when a tracked file names a path of one particular machine (a home or work directory)
# or a folder beside the checkout (../nndl-runs, ../shared): such a file works only where it
# was written, and a fresh clone cannot follow the reference. Prints every offending line.
#   bash scripts/check_no_machine_paths.sh
set -euo pipefail
cd "$(dirname "$0")/.."
pattern='/work/|/root/|/home/|\.\./nndl-runs|\.\./shared'
# This script has to spell the pattern out, so it is the one file not searched.
if hits=$(git grep -nE "$pattern" -- . ':(exclude)scripts/check_no_machine_paths.sh'); then
  echo "absolute machine paths or folders outside the repository in tracked files:" >&2
  echo "$hits" >&2
  exit 1
fi
echo "no machine paths in tracked files"
