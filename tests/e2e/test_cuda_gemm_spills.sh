#!/usr/bin/env bash
# test_cuda_gemm_spills.sh: the cuda backend's GEMM kernels (codegen/cuda/ops/
# matmul.c: 64 x 64 tiles, a 4 x 4 register micro-tile per thread) keep
# their accumulators in registers: ptxas (nvcc -Xptxas -v, for sm_80 and
# sm_90) reports no spill stores or loads and no stack frame (an array
# indexed by a value unknown at compile time would live in local memory)
# for an f32 and an f64 product, each plain, with a fused epilogue
# (relu(x @ w + b): one kernel) and batched with a transposed operand. Compile only: no GPU needed. Skips (77)
# where the CUDA toolkit is not installed.
source "$(dirname "$0")/e2e_common.sh"

nvcc=/usr/local/cuda/bin/nvcc
[ -x "$nvcc" ] || { echo "SKIP: $nvcc missing (the CUDA toolkit)"; exit 77; }

cat >"$t/gemm.etch" <<'EOF'
model Gemm {
  fn forward(x: f32[100, 70], w: f32[70, 90], b: f32[90], p: f32[33, 70],
             y: f64[100, 70], v: f64[70, 90], c: f64[90], q: f64[33, 70],
             s: f32[3, 70, 40], u: f64[2, 65, 70])
      -> (f32[100, 90], f32[33, 90], f64[100, 90], f64[33, 90], f32[3, 40, 90], f64[2, 100, 65]) {
    return relu(x @ w + b), p @ w, relu(y @ v + c), q @ v, transpose(s, 1, 2) @ w, y @ transpose(u, 1, 2)
  }
}
EOF
"$ETCH" build "$t/gemm.etch" --target cuda --c-only -o "$t/out" || fail "etch build --target cuda failed"
launches=$(grep -c "ETCH_LAUNCH(stream" "$t/out/model.cu" || true)
fused=$(grep -c "ETCH_LAUNCH(stream.*fused: 3 ops -> relu" "$t/out/model.cu" || true)
[ "$launches" = 6 ] && [ "$fused" = 2 ] || fail "expected 6 GEMM kernels, 2 of them with the bias and relu fused; got $launches, $fused fused"

"$nvcc" -std=c++17 -O3 -Werror all-warnings -gencode=arch=compute_80,code=sm_80 -gencode=arch=compute_90,code=sm_90 \
  -Xptxas -v -c "$t/out/model.cu" -o "$t/model.o" >"$t/ptxas" 2>&1 || { cat "$t/ptxas" >&2; fail "nvcc failed"; }
frames=$(grep -c "bytes stack frame" "$t/ptxas" || true)
[ "$frames" = 12 ] || { cat "$t/ptxas" >&2; fail "expected ptxas reports for 6 kernels x 2 architectures, got $frames"; }
if grep "bytes stack frame" "$t/ptxas" | grep -v "^ *0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads$"; then
  cat "$t/ptxas" >&2
  fail "a GEMM kernel spills or keeps its accumulators in local memory"
fi
grep -o "Used [0-9]* registers" "$t/ptxas" | sort | uniq -c
echo "PASS: 6 GEMM kernels (f32, f64; plain, fused, batched with transposed operands), no spills, no stack frame"
