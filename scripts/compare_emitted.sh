#!/usr/bin/env bash
# compare_emitted.sh: is the C that etch emits for every sample byte-identical
# to what another commit's etch emits? The guard for restructurings that must
# not change output (the layering work): builds etch at REV in a temporary
# worktree, then emits every sample with both tools, with and without --train,
# at -O0 and -O2, and diffs every emitted file (model.c, model.h, the runtime).
#
#   scripts/compare_emitted.sh [REV] [ETCH]
#     REV   the commit to compare against (default HEAD)
#     ETCH  the etch binary under test (default build/etch, built if missing)
#
# Emitted sources are compared, not compiled: CC points at a stub that only
# creates the file named by -o, so the run takes seconds. Exit 0 when all
# match, 1 (with a diff summary) when any differ.
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:-HEAD}
new=${2:-build/etch}
if [ ! -x "$new" ]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build build -j "$(nproc)" >/dev/null
fi
new=$(readlink -f "$new")

tmp=$(mktemp -d)
cleanup() { git worktree remove --force "$tmp/src" >/dev/null 2>&1 || true; rm -rf "$tmp"; }
trap cleanup EXIT

git worktree add --detach "$tmp/src" "$rev" >/dev/null 2>&1
cmake -S "$tmp/src" -B "$tmp/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$tmp/build" -j "$(nproc)" --target etch >/dev/null
old=$tmp/build/etch

# A C compiler stand-in: creates the -o file and nothing else.
cat >"$tmp/cc" <<'SH'
#!/bin/sh
while [ $# -gt 0 ]; do [ "$1" = -o ] && { : >"$2"; exit 0; }; shift; done
SH
chmod +x "$tmp/cc"

fail=0
count=0
for src in samples/*.etch; do
  for train in "" --train; do
    for opt in -O0 -O2; do
      tag=$(basename "$src" .etch)${train:+-train}$opt
      for side in old new; do
        tool=$old; [ $side = new ] && tool=$new
        if ! CC=$tmp/cc "$tool" build "$src" -o "$tmp/$side/$tag" $train $opt >"$tmp/$side-$tag.log" 2>&1; then
          echo "$side etch failed on $tag:"; cat "$tmp/$side-$tag.log"; fail=1
        fi
        find "$tmp/$side/$tag" -name '*.so' -delete 2>/dev/null || true
        find "$tmp/$side/$tag" -name '.*.tmp.*' -delete 2>/dev/null || true
      done
      count=$((count + 1))
      if ! diff -r -q "$tmp/old/$tag" "$tmp/new/$tag" >/dev/null; then
        echo "DIFFERS: $tag"
        diff -r -q "$tmp/old/$tag" "$tmp/new/$tag" | sed 's/^/  /' || true  # diff exits 1 here: keep going
        fail=1
      fi
    done
  done
done
if [ $fail = 0 ]; then
  echo "emitted C identical to $rev for all $count sample builds"
else
  echo "emitted C differs from $rev (see above)"
fi
exit $fail
