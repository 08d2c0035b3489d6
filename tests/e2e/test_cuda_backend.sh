#!/usr/bin/env bash
# test_cuda_backend.sh: the CUDA backend (codegen/cuda, docs/cuda.md) from the
# command line. `etch run --target cuda --host-emulate` compiles model.cu's
# kernels for the CPU (their threads run as loops, phase by phase between
# barriers) and must agree with the eager executor on the samples and on
# small models of each op family. Where nvcc is installed, `etch build
# --target cuda --exe` compiles model.cu (weights embedded) for sm_80/sm_90 with -Werror
# all-warnings; on a machine without a GPU or driver that program must fail
# with a clear message and exit status 1, not crash. The int8 forward of a
# quantized model (mlp, lenet) equals eager's bit for bit, and its integer
# GEMMs compile for sm_80 without spills. Bad input: a missing nvcc is a
# message naming where it was looked for and what provides it;
# --host-emulate without --target cuda is refused. `etch bench --target
# cuda` adds a row per entry for the cuda build.
source "$(dirname "$0")/e2e_common.sh"
# the emulated kernels' C compiled at -O1 unless told otherwise: this test checks
# results, and -O3 on a sample's model_host.c costs seconds each
export ETCH_CFLAGS=${ETCH_CFLAGS:--O1}

# same_as_eager MODEL.etch N_OUTPUTS ARGS...: emulated cuda and eager outputs within $RTOL (1e-5)
same_as_eager() {
  local model=$1 n=$2 i outs_c=() outs_e=()
  shift 2
  for ((i = 0; i < n; i++)); do outs_c+=(-o "$t/c$i.npy"); outs_e+=(-o "$t/e$i.npy"); done
  "$ETCH" run "$model" "$@" --target cuda --host-emulate "${outs_c[@]}" || fail "$model: --target cuda --host-emulate failed"
  "$ETCH" run "$model" "$@" --eager "${outs_e[@]}"
  for ((i = 0; i < n; i++)); do
    "$ETCH" compare "$t/c$i.npy" "$t/e$i.npy" --rtol "${RTOL:-1e-5}" >/dev/null ||
      fail "$model: output $i differs from eager beyond ${RTOL:-1e-5}"
  done
}

"$ETCH" make-input "$SRC/samples/mlp.etch" -D B=3 -o "$t/x_mlp.npy"
same_as_eager "$SRC/samples/mlp.etch" 1 -D B=3 --input "$t/x_mlp.npy"
# the weights embedded (.incbin of a blob laid out as the device copy): the program takes no weights file
"$ETCH" build "$SRC/samples/mlp.etch" -D B=3 --target cuda --host-emulate --embed-weights --exe -o "$t/emb"
"$t/emb/Net" "$t/x_mlp.npy" "$t/y_emb.npy"
"$ETCH" compare "$t/y_emb.npy" "$t/e0.npy" --rtol 1e-5 >/dev/null || fail "embedded weights: output differs from eager"

# the samples: every one whose ops all have CUDA kernels (make-input draws each input)
sample() { # sample NAME N_OUTPUTS -D ...: the sample at a small batch against eager
  local name=$1 n=$2
  shift 2
  "$ETCH" make-input "$SRC/samples/$name.etch" "$@" -o "$t/x_$name.npy"
  same_as_eager "$SRC/samples/$name.etch" "$n" "$@" --input "$t/x_$name.npy"
}
sample autoencoder 1 -D B=2
sample multitask 2 -D B=2
sample lenet 1 -D B=2
sample lstm 1 -D B=2
sample vae 2 -D B=2
same_as_eager "$SRC/samples/gan.etch" 1 -D B=2 # no input: the generator samples its own noise (Philox, as eager)
RTOL=1e-4 sample gpt 1 -D B=1 # as the C backend: summation order moves near-zero logits past 1e-5

# broadcasting elementwise ops, softmax and log_softmax along inner axes,
# reductions over leading and trailing axes, a batched product, two outputs
cat >"$t/ops.etch" <<'M'
model Ops {
  fn forward(x: f32[2, 3, 4], b: f32[3, 1]) -> (f32[2, 3, 4], f32[4]) {
    let y = log_softmax(x, 1) - b
    let z = softmax(x, 2) * y + tanh(sigmoid(x) + exp(b)) / sqrt(abs(x - 0.5) + 1.0)
    let p = transpose(x, 1, 2) @ x
    return z, sum(max(p, 2), 0) + mean(x, [0, 1])
  }
}
M
printf 'model X {\n  fn forward(x: f32[2, 3, 4]) -> f32[2, 3, 4] { return x }\n}\n' >"$t/x.etch"
printf 'model B {\n  fn forward(b: f32[3, 1]) -> f32[3, 1] { return b }\n}\n' >"$t/b.etch"
"$ETCH" make-input "$t/x.etch" --seed 1 -o "$t/x_ops.npy"
"$ETCH" make-input "$t/b.etch" --seed 2 -o "$t/b.npy"
same_as_eager "$t/ops.etch" 2 --input "$t/x_ops.npy" --input "$t/b.npy"

# etch bench --target cuda: a row per entry for the cuda build (emulated here)
"$ETCH" bench "$SRC/samples/mlp.etch" -D B=2 --target cuda --host-emulate >"$t/bench.txt" || fail "bench --target cuda failed"
grep -q "^inference  *cuda-emu " "$t/bench.txt" && grep -q "^train step  *cuda-emu " "$t/bench.txt" ||
  { cat "$t/bench.txt"; fail "bench: no cuda rows"; }

# the int8 forward (qmatmul; LeNet's qconv2d too: codegen/cuda/ops/qgemm.c), calibrated
# on one batch: the emulated kernels bit-identical to the eager executor. The quantize
# pass decides per target (the C target keeps LeNet's 25-tap first conv in float, the
# cuda target makes it int8), so the eager run names --target cuda too.
if [ -d /usr/share/datasets/fashion-mnist ]; then
  for m in mlp lenet; do
    "$ETCH" calibrate "$SRC/samples/$m.etch" -D B=8 --data /usr/share/datasets/fashion-mnist --batches 1 \
      -o "$t/calib_$m.json" >/dev/null || fail "$m: calibrate failed"
    "$ETCH" make-input "$SRC/samples/$m.etch" -D B=8 --seed 4 -o "$t/q_in.npy"
    q=(-D B=8 --quantize int8 --calib "$t/calib_$m.json" --target cuda --input "$t/q_in.npy")
    "$ETCH" run "$SRC/samples/$m.etch" "${q[@]}" --host-emulate -o "$t/q_cuda.npy" ||
      fail "$m int8: --target cuda --host-emulate failed"
    "$ETCH" run "$SRC/samples/$m.etch" "${q[@]}" --eager -o "$t/q_eager.npy"
    cmp -s "$t/q_cuda.npy" "$t/q_eager.npy" || fail "$m int8: the cuda kernels' logits differ from eager's"
  done
  # etch eval --target cuda: the emulated kernels' accuracy and NLL are the C backend's
  "$ETCH" build "$SRC/samples/mlp.etch" -o "$t/w_mlp" >/dev/null
  ev=(--weights "$t/w_mlp/Net.safetensors" --data /usr/share/datasets/fashion-mnist --limit 256)
  "$ETCH" eval "$SRC/samples/mlp.etch" "${ev[@]}" --target cuda --host-emulate >"$t/eval_cuda.txt" || fail "eval --target cuda failed"
  "$ETCH" eval "$SRC/samples/mlp.etch" "${ev[@]}" >"$t/eval_c.txt"
  grep -q "^Test accuracy" "$t/eval_cuda.txt" && cmp -s "$t/eval_cuda.txt" "$t/eval_c.txt" ||
    { cat "$t/eval_cuda.txt" "$t/eval_c.txt"; fail "eval --target cuda differs from the c backend's"; }
  # and for the GPU (nvcc, where installed): the integer GEMMs compile with -Werror all-warnings and keep
  # their int32 sums in registers (no spills, no stack frame)
  nvcc_q=${CUDA_HOME:-/usr/local/cuda}/bin/nvcc
  if [ -x "$nvcc_q" ]; then
    "$ETCH" build "$SRC/samples/lenet.etch" -D B=8 --quantize int8 --calib "$t/calib_lenet.json" --target cuda --c-only \
      -o "$t/q_gpu" || fail "lenet int8: etch build --target cuda failed"
    grep -q "qconv2d" "$t/q_gpu/model.cu" && grep -q "qmatmul" "$t/q_gpu/model.cu" || fail "lenet int8: no qconv2d/qmatmul kernels"
    "$nvcc_q" -std=c++17 -Werror all-warnings -gencode=arch=compute_80,code=sm_80 -Xptxas -v -c "$t/q_gpu/model.cu" \
      -o "$t/q_gpu/model.o" >"$t/ptxas" 2>&1 || { cat "$t/ptxas" >&2; fail "lenet int8: nvcc failed"; }
    if grep "bytes stack frame" "$t/ptxas" | grep -v "^ *0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads$"; then
      cat "$t/ptxas" >&2
      fail "lenet int8: a kernel spills or has a stack frame"
    fi
  fi
else
  echo "note: fashion-mnist missing: the int8 check is skipped"
fi

if "$ETCH" run "$SRC/samples/mlp.etch" --host-emulate --input "$t/x_mlp.npy" -o "$t/y.npy" 2>"$t/err"; then
  fail "--host-emulate without --target cuda was accepted"
fi
grep -q "needs --target cuda" "$t/err" || { cat "$t/err"; fail "--host-emulate alone: unclear message"; }

# no nvcc anywhere: the message says where etch looked and what provides it
if env -u ETCH_NVCC CUDA_HOME="$t/no-cuda" PATH=/usr/bin:/bin "$ETCH" build "$SRC/samples/mlp.etch" --target cuda --exe \
  -o "$t/no_nvcc" 2>"$t/err"; then
  command -v nvcc >/dev/null || fail "built for the GPU without nvcc"
else
  grep -q "nvcc not found" "$t/err" && grep -q "cuda-toolkit" "$t/err" || { cat "$t/err"; fail "no nvcc: unclear message"; }
fi

# nvcc, where installed: the program builds with -Werror all-warnings; without
# a usable GPU it exits 1 with the reason
nvcc=${CUDA_HOME:-/usr/local/cuda}/bin/nvcc
if [ -x "$nvcc" ]; then
  "$ETCH" build "$SRC/samples/mlp.etch" -D B=3 --target cuda --embed-weights --exe -o "$t/gpu" || fail "nvcc build of mlp failed"
  if ! nvidia-smi -L >/dev/null 2>&1; then
    set +e
    "$t/gpu/Net" "$t/x_mlp.npy" "$t/y_gpu.npy" 2>"$t/err"
    rc=$?
    set -e
    [ $rc = 1 ] || { cat "$t/err"; fail "without a GPU the program exited $rc, not 1"; }
    grep -q "no usable CUDA device" "$t/err" || { cat "$t/err"; fail "without a GPU: unclear message"; }
    [ ! -e "$t/y_gpu.npy" ] || fail "without a GPU the program wrote an output"
  fi
else
  echo "note: $nvcc missing: the nvcc half is skipped"
fi
echo "ok"
