#!/usr/bin/env bash
# test_cuda_run.sh: `etch run --target cuda --host-emulate` runs the cuda
# backend's kernels (model.cu compiled for the CPU, codegen/cuda) and agrees
# with --eager: a float64 convolution, pooling and padding model, which the
# llvm backend refuses (float32 only), so the run cannot have taken the
# JIT path the other backends use in `etch run`.
source "$(dirname "$0")/e2e_common.sh"
cat >"$t/m.etch" <<'EOM'
model M {
  param w: f64[8, 3, 3, 3] = uniform(-0.5, 0.5)
  fn forward(x: f64[2, 3, 12, 12]) -> f64[2, 8, 7, 7] {
    return max_pool2d(conv2d(pad(x, [1, 1, 1, 1]), w, 1, 1), 3, 2, 1)
  }
}
EOM
"$ETCH" make-input "$t/m.etch" -o "$t/in.npy"
"$ETCH" run "$t/m.etch" --input "$t/in.npy" -o "$t/eager.npy" --eager
"$ETCH" run "$t/m.etch" --target cuda --host-emulate --input "$t/in.npy" -o "$t/cuda.npy" 2>"$t/err" ||
  { cat "$t/err"; fail "etch run --target cuda --host-emulate failed"; }
"$ETCH" compare "$t/cuda.npy" "$t/eager.npy"
