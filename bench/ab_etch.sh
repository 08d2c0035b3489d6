#!/usr/bin/env bash
# ab_etch.sh: the same model's entry compiled by several etch binaries (say,
# two git revisions built side by side), timed in one process in turns by
# bench/entry_ab.c. Not a test: compare the rows of one run only.
#   bench/ab_etch.sh MODEL B ENTRY REPS ETCH_BINARY...
#   bench/ab_etch.sh gpt 8 train_step 20 /tmp/old/build/etch build/etch
# An ETCH_BINARY may carry build flags after commas, e.g. build/etch,--threads,2
# (so one run can time 1 against 2 threads, of one etch or of several).
# AB_IDX=IMAGES.idx.gz: input 0 is the first B images of that IDX file (etch
# make-input --idx) and the weights are the seed-0 initializers (the first
# build's weights file), so data-dependent kernels see real values (default:
# zeros everywhere):
#   AB_IDX=/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz bench/ab_etch.sh lenet 64 forward 200 build/etch
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 5 ] || { sed -n '2,12p' "$0"; exit 2; }
model=$1 batch=$2 entry=$3 reps=$4
shift 4
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
cc -std=c11 -O2 -Wall -Wextra -D_POSIX_C_SOURCE=200809L bench/entry_ab.c -ldl -o "$out/entry_ab"
libs=()
i=0
for spec in "$@"; do
  IFS=, read -r -a cmd <<<"$spec"
  "${cmd[@]:0:1}" build "samples/$model.etch" -D B="$batch" --train "${cmd[@]:1}" -o "$out/b$i" >/dev/null
  libs+=("$(ls "$out/b$i"/lib*.so)")
  i=$((i + 1))
done
prefix=$(sed -n 's/^void \([a-z0-9_]*\)_forward_v(.*/\1/p' "$out/b0/model.h" | head -1)
if [ -n "${AB_IDX:-}" ]; then
  "${1%%,*}" make-input "samples/$model.etch" -D B="$batch" --idx "$AB_IDX" -o "$out/input0.npy"
  export ENTRY_AB_INPUT0="$out/input0.npy" ENTRY_AB_LOAD="${prefix}_load"
  ENTRY_AB_WEIGHTS=$(ls "$out/b0"/*.safetensors)
  export ENTRY_AB_WEIGHTS
fi
echo "samples/$model.etch B=$batch ${prefix}_${entry}, $reps calls each, in turns, inputs ${AB_IDX:-zero}:"
"$out/entry_ab" "${prefix}_${entry}_v" "$reps" "${libs[@]}" | sed "s|$out/||"
i=0
for etch in "$@"; do echo "  b$i = $etch"; i=$((i + 1)); done
