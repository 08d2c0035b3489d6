#!/usr/bin/env bash
# mpi.sh: data-parallel training step time (etch train --ranks N,
# docs/passes.md) of a sample model on Fashion-MNIST (gpt: on the fortunes
# corpus, --text), 1 rank against 2. Not
# a test. Each configuration is compiled once, then its program runs S0 and
# S1 steps; the step time is the difference over S1 - S0 steps. Loading the
# data and the test report cancel out that way.
#   bench/mpi.sh [MODEL [B [S0 S1]]]      (default: lenet 64 10 110; e.g. gpt 8 5 45)
# Rows: 1 rank x B (the plain program, no MPI), 2 ranks x B/2 (the same
# global batch: strong scaling) and 2 ranks x B (twice the examples per step:
# weak scaling). Efficiency, 100% ideal: strong t1 / (2 t2) (the second rank
# halves the step), weak t1 / t2 (twice the work in the same time). On a
# machine whose cores other work shares, time several runs.
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-lenet} batch=${2:-64} s0=${3:-10} s1=${4:-110}
src=(--data /usr/share/datasets/fashion-mnist)
[ "$model" != gpt ] || src=(--text /usr/share/games/fortunes/fortunes)
etch=${ETCH:-build/etch}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1

# build NAME B [--ranks 2]: compiles into $out/NAME (one step taken)
build() {
  local name=$1 b=$2
  shift 2
  "$etch" train "samples/$model.etch" "${src[@]}" -D B="$b" --steps 1 "$@" -o "$out/$name" >/dev/null
}
# seconds RANKS NAME STEPS: wall time of the program for STEPS steps
seconds() {
  local ranks=$1 name=$2 steps=$3 start end
  local dir=$out/$name/run$steps
  mkdir -p "$dir"
  local cmd=("$out/$name/build/"*-train "${src[@]}" --init "$out/$name/build/init.safetensors" -o "$dir"
    --name m --epochs 1 --steps "$steps")
  [ "$ranks" = 1 ] || cmd=(mpirun -np "$ranks" --oversubscribe "${cmd[@]}")
  start=$(date +%s.%N)
  "${cmd[@]}" >/dev/null || { echo "failed: ${cmd[*]}" >&2; exit 1; }
  end=$(date +%s.%N)
  echo "$end - $start" | bc -l
}
# ms RANKS NAME: milliseconds per step
ms() {
  local a b
  a=$(seconds "$1" "$2" "$s0")
  b=$(seconds "$1" "$2" "$s1")
  echo "($b - $a) * 1000 / ($s1 - $s0)" | bc -l
}

half=$((batch / 2))
build one "$batch"
build two_half "$half" --ranks 2
build two_full "$batch" --ranks 2
t1=$(ms 1 one)
t2h=$(ms 2 two_half)
t2f=$(ms 2 two_full)
printf 'samples/%s.etch, %s cores, steps %s..%s\n' "$model" "$(getconf _NPROCESSORS_ONLN)" "$s0" "$s1"
printf '%-22s %12s %14s %12s\n' "configuration" "ms/step" "examples/s" "efficiency"
printf '%-22s %12.2f %14.0f %12s\n' "1 rank x $batch" "$t1" "$(echo "$batch * 1000 / $t1" | bc -l)" "-"
printf '%-22s %12.2f %14.0f %11.0f%%\n' "2 ranks x $half" "$t2h" "$(echo "$batch * 1000 / $t2h" | bc -l)" \
  "$(echo "100 * $t1 / (2 * $t2h)" | bc -l)"
printf '%-22s %12.2f %14.0f %11.0f%%\n' "2 ranks x $batch" "$t2f" "$(echo "2 * $batch * 1000 / $t2f" | bc -l)" \
  "$(echo "100 * $t1 / $t2f" | bc -l)"
