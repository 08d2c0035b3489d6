#!/usr/bin/env bash
# test_cuda_run_ops.sh: `etch run --target cuda --host-emulate` builds model.cu
# with the CUDA backend, compiles its kernels for the CPU (model_host.c) and
# runs the program (not the LLVM JIT, which `run` once took for every backend
# but c): the lstm sample at batch 2 (a scan whose body's kernels a host loop
# launches per step) within 1e-5 of eager, and a model of ops the llvm
# backend lacks (quantize, dequantize per channel; rand, randn) equal to
# eager bit for bit. No GPU and no nvcc are needed.
source "$(dirname "$0")/e2e_common.sh"

# same_as_eager MODEL.etch RTOL ARGS...: one output, cuda (emulated) against eager
same_as_eager() {
  local model=$1 rtol=$2
  shift 2
  "$ETCH" run "$model" "$@" --target cuda --host-emulate -o "$t/c.npy" || fail "$model: --target cuda --host-emulate failed"
  "$ETCH" run "$model" "$@" --eager -o "$t/e.npy"
  "$ETCH" compare "$t/c.npy" "$t/e.npy" --rtol "$rtol" >/dev/null || fail "$model: differs from eager beyond $rtol"
}

"$ETCH" make-input "$SRC/samples/lstm.etch" -D B=2 -o "$t/x_lstm.npy"
same_as_eager "$SRC/samples/lstm.etch" 1e-5 -D B=2 --input "$t/x_lstm.npy"

cat >"$t/q.etch" <<'ETCH'
model Q {
  param s: f32[4] = uniform(0.05, 0.1)
  fn forward(x: f32[3, 4]) -> f32[3, 4] {
    let z = zeros([4], dtype = i32)
    let q = quantize(x, s, z, dtype = i8, axis = 1)
    return dequantize(q, s, z, axis = 1) + rand([3, 4]) * randn([3, 4])
  }
}
ETCH
"$ETCH" make-input "$t/q.etch" -o "$t/x_q.npy"
same_as_eager "$t/q.etch" 0 --input "$t/x_q.npy"
echo "ok: cuda --host-emulate matches eager (lstm; quantize, dequantize, rand, randn exactly)"
