#!/usr/bin/env bash
# Prints each packaged crate's size and file count and fails if one is 1 MB or more, or ships
# data, records or figures (a crate user gets MNIST by download, not in the package).
#   bash scripts/check_package_sizes.sh [DIR]    # DIR: where `cargo package` wrote .crate files
set -euo pipefail
dir=${1:-target/package}
limit=$((1024 * 1024))
status=0
shopt -s nullglob
crates=("$dir"/*.crate)
if ((${#crates[@]} == 0)); then
  echo "no .crate files in $dir: run cargo package --workspace first" >&2
  exit 1
fi
for c in "${crates[@]}"; do
  bytes=$(stat -c %s "$c")
  files=$(tar -tzf "$c" | grep -vc '/$')
  printf '%-36s %9d bytes %4d files\n' "$(basename "$c")" "$bytes" "$files"
  if ((bytes >= limit)); then
    echo "  $c is $bytes bytes, over the 1 MB a crate may weigh" >&2
    status=1
  fi
  if tar -tzf "$c" | grep -v '/.cargo_vcs_info.json$' | grep -E '\-ubyte(\.gz)?$|\.(json|log|png)$|/(data|docs|runs)/'; then
    echo "  $c ships data, records or figures (listed above)" >&2
    status=1
  fi
done
exit $status
