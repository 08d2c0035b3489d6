#!/usr/bin/env bash
# llvm.sh: compile-to-first-output wall time of `etch run` (process start to
# the output file written) for inference at batch 1, the LLVM backend's
# in-process JIT (--backend llvm) against the C path (emit C, cc -O3, run),
# with the ratio. Issue 17's target: at most 150 ms with llvm and at least
# 5x faster than cc. Not a test: machine load moves these numbers; compare
# the rows of one run only. Each cell is the median of REPS runs.
#   bench/llvm.sh [ETCH] [REPS]        (default build/etch, 5)
#   bench/llvm.sh build-release/etch 9
set -euo pipefail
cd "$(dirname "$0")/.."
etch=${1:-build/etch} reps=${2:-5}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
ms_now() { date +%s%N | cut -c1-13; }
median_ms() { # median_ms CMD...: the median wall time of reps runs, in ms
  local t=() s i
  for ((i = 0; i < reps; i++)); do
    s=$(ms_now)
    "$@" >/dev/null
    t+=($(($(ms_now) - s)))
  done
  printf '%s\n' "${t[@]}" | sort -n | sed -n "$(((reps + 1) / 2))p"
}
printf '%-8s %10s %10s %8s\n' model "llvm ms" "cc ms" "cc/llvm"
for model in mlp lenet; do
  "$etch" make-input "samples/$model.etch" -D B=1 -o "$out/x.npy"
  llvm=$(median_ms "$etch" run "samples/$model.etch" -D B=1 --backend llvm --input "$out/x.npy" -o "$out/y.npy")
  c=$(median_ms "$etch" run "samples/$model.etch" -D B=1 --backend c --input "$out/x.npy" -o "$out/y.npy")
  printf '%-8s %10d %10d %8.1f\n' "$model" "$llvm" "$c" "$(echo "$c / $llvm" | bc -l)"
done
