#!/usr/bin/env bash
# matmul.sh: etch's emitted matmul kernels (codegen/c/gemm.c) against OpenBLAS
# sgemm on one thread, in one process: the 512^3 product and the MLP's
# forward, gradient and batch-1 shapes. Prints GFLOP/s of both and their
# ratio (the goal: >= 0.8 at 512^3). `bench/matmul.sh N` adds a column for
# etch's kernels built with --threads N. Not a test: machines are noisy;
# compare numbers from the same run. ETCH_BUILD picks the build folder.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${ETCH_BUILD:-build}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
[ -f "$build/build.ninja" ] || [ -f "$build/Makefile" ] || cmake -S . -B "$build" -G Ninja >"$out/log" 2>&1 ||
  { cat "$out/log"; exit 1; }
cmake --build "$build" --target etch_codegen_c >"$out/log" 2>&1 || { cat "$out/log"; exit 1; }
cblas=$(dirname "$(find /usr/include -name cblas.h -path '*openblas*' | head -1)")
cc -std=c11 -O2 -D_POSIX_C_SOURCE=200809L -I. -I"$cblas" bench/matmul_bench.c \
  "$build/libetch_codegen_c.a" "$build/libetch_passes.a" "$build/libetch_ir.a" "$build/libetch_runtime.a" \
  -lopenblas -lm -ldl -pthread -o "$out/matmul_bench"
(unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE; OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 "$out/matmul_bench" "${1:-1}")
