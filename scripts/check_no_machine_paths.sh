#!/usr/bin/env bash
# Fails when a tracked file names a path of one particular machine (a home or work directory)
# or a folder beside the checkout (the runs or shared folder one level up): such a file works
# only where it was written, and a fresh clone cannot follow the reference. Prints every
# offending line.
#   bash scripts/check_no_machine_paths.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# Written with bracket classes so that the pattern does not match itself: a plain
# grep of the repository for these paths finds nothing, this script included.
pattern='/wor[k]/|/roo[t]/|/hom[e]/|\.\./nndl-run[s]|\.\./share[d]'
if hits=$(git grep -nE "$pattern" -- .); then
  echo "absolute machine paths or folders outside the repository in tracked files:" >&2
  echo "$hits" >&2
  exit 1
fi
echo "no machine paths in tracked files"
