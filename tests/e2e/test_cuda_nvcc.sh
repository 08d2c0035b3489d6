#!/usr/bin/env bash
# test_cuda_nvcc.sh: every sample's model.cu (the forward; with the training
# step for mlp and lenet) compiles with nvcc for sm_80 under -Werror
# all-warnings, and ptxas reports no register spills for any kernel
# (-Xptxas -v): the default tiles fit in registers. (A stack frame alone is
# allowed: double cos() of libdevice keeps its argument reduction's table
# there, in the Box-Muller sampler of random_normal.) Skips (77)
# where nvcc is not installed. Nothing runs: no GPU is needed.
source "$(dirname "$0")/e2e_common.sh"
nvcc=${CUDA_HOME:-/usr/local/cuda}/bin/nvcc
[ -x "$nvcc" ] || { echo "SKIP: $nvcc missing (NVIDIA's cuda-toolkit)"; exit 77; }

builds=()
for s in mlp lenet lstm autoencoder vae gan multitask gpt; do
  "$ETCH" build "$SRC/samples/$s.etch" --target cuda --c-only -o "$t/$s" || fail "$s: etch build --target cuda failed"
  builds+=("$s")
done
for s in mlp lenet; do
  "$ETCH" build "$SRC/samples/$s.etch" --target cuda --train --c-only -o "$t/$s-train" || fail "$s: --train build failed"
  builds+=("$s-train")
done
compile() { # compile BUILD: nvcc's ptxas report into BUILD.log; exit status nvcc's
  "$nvcc" -std=c++17 -Werror all-warnings -Xptxas -v -gencode=arch=compute_80,code=sm_80 \
    -c "$t/$1/model.cu" -o "$t/$1.o" >"$t/$1.log" 2>&1
}
jobs=${ETCH_TEST_JOBS:-2}
running=0
for b in "${builds[@]}"; do
  compile "$b" &
  running=$((running + 1))
  if [ $running -ge "$jobs" ]; then wait -n || true; running=$((running - 1)); fi
done
wait || true
for b in "${builds[@]}"; do
  [ -s "$t/$b.o" ] || { cat "$t/$b.log" >&2; fail "$b: nvcc failed"; }
  kernels=$(grep -c "Compiling entry function" "$t/$b.log" || true)
  [ "$kernels" -gt 0 ] || { cat "$t/$b.log" >&2; fail "$b: ptxas listed no kernels"; }
  if grep -E "[1-9][0-9]* bytes (spill stores|spill loads)" "$t/$b.log" >&2; then
    fail "$b: a kernel spills registers"
  fi
  echo "$b: $kernels kernels, no spills"
done
