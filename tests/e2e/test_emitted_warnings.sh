#!/usr/bin/env bash
# test_emitted_warnings.sh: the C that etch emits for every sample builds
# warning-free with gcc and clang under -std=c11 -Wall -Wextra -Werror:
# model.c, the runtime etch_rt.c and the driver main.c, for inference
# (`build --exe`, at -O2 and -O0, and split over threads), for `build --train`
# (forward, grad and train_step entries; -O2 and -O0) and for the training
# program `etch train` compiles (its own driver; with --ranks also its MPI
# part). Emission only: CC points at
# a stub that creates the -o file (as scripts/compare_emitted.sh does), and the
# compilers then check the sources with -fsyntax-only, so the test takes
# seconds. A compiler that is not installed is skipped with a message.
source "$(dirname "$0")/e2e_common.sh"

compilers=()
for cc in gcc clang; do
  if command -v "$cc" >/dev/null; then compilers+=("$cc"); else echo "skipping $cc: not installed"; fi
done
[ ${#compilers[@]} -gt 0 ] || { echo "SKIP: neither gcc nor clang is installed"; exit 77; }

# A C compiler stand-in: creates the -o file and nothing else.
cat >"$t/cc" <<'SH'
#!/bin/sh
while [ $# -gt 0 ]; do [ "$1" = -o ] && { : >"$2"; exit 0; }; shift; done
SH
chmod +x "$t/cc"
mkdir "$t/data"

# check DIR [ARGS]: every compiler, the three sources (and ARGS: more flags
# and files), no diagnostics at all
check() {
  local dir=$1 cc
  shift
  for f in model.c etch_rt.c main.c; do [ -f "$dir/$f" ] || fail "$dir/$f was not emitted"; done
  for cc in "${compilers[@]}"; do
    if ! "$cc" -std=c11 -Wall -Wextra -Werror -O0 -fsyntax-only "$dir/model.c" "$dir/etch_rt.c" "$dir/main.c" "$@" \
      >"$t/out" 2>&1 || [ -s "$t/out" ]; then
      cat "$t/out" >&2
      fail "$cc: warnings in the C emitted for $dir"
    fi
  done
}

# etch train checks that --data names the IDX files before compiling; their
# contents are read only by the program, which never runs here
mkdir -p "$t/data"
for f in train-images-idx3 train-labels-idx1 t10k-images-idx3 t10k-labels-idx1; do printf x >"$t/data/$f-ubyte"; done
n=0
for src in "$SRC"/samples/*.etch; do
  name=$(basename "$src" .etch)
  i=0
  for flags in "" "-O0" "--threads 4" "--train" "--train -O0"; do
    dir=$t/$name-$i
    # shellcheck disable=SC2086
    CC=$t/cc "$ETCH" build "$src" --exe $flags -o "$dir" >"$t/log" 2>&1 || { cat "$t/log"; fail "etch build $name $flags"; }
    check "$dir"
    i=$((i + 1)) n=$((n + 1))
  done
  # the training program: built into OUT/build/, then run, which fails here
  # (the stub made an empty file); only its sources are checked
  CC=$t/cc "$ETCH" train "$src" --data "$t/data" --steps 1 -o "$t/$name-train" >"$t/log" 2>&1 || true
  check "$t/$name-train/build"
  n=$((n + 1))
done
# the data-parallel training program (etch train --ranks): main.c built with
# -DETCH_MPI, and the MPI driver part etch_mpi.c, with Open MPI's flags
if command -v mpicc >/dev/null && command -v mpirun >/dev/null; then
  CC=$t/cc "$ETCH" train "$SRC/samples/lenet.etch" --data "$t/data" --steps 1 --ranks 2 -o "$t/lenet-mpi" >"$t/log" 2>&1 || true
  [ -f "$t/lenet-mpi/build/etch_mpi.c" ] || { cat "$t/log"; fail "etch train --ranks wrote no etch_mpi.c"; }
  # shellcheck disable=SC2046
  check "$t/lenet-mpi/build" -DETCH_MPI $(mpicc --showme:compile) "$t/lenet-mpi/build/etch_mpi.c"
  n=$((n + 1))
else
  echo "skipping the MPI training program: Open MPI (mpicc, mpirun) not installed"
fi
echo "emitted C of $n builds warning-free with ${compilers[*]}"
