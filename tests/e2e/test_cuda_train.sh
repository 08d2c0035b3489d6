#!/usr/bin/env bash
# test_cuda_train.sh: `etch train --target cuda` (docs/cuda.md) builds the
# training program with the cuda backend, its kernels run on the CPU here
# (--host-emulate), and trains as the C backend does:
#  - 5 steps of samples/mlp.etch from the same init (--seed 3) in the same
#    batch order, 3 steps an epoch (--limit 192), so an epoch's end and its
#    checkpoint come between steps, with each backend: the checkpoints
#    (weights, momentum, step counter) agree within 1e-4 relative, and the
#    printed epoch losses (6 decimals) too. The weights are updated on the
#    device: the driver must fetch them (ETCH_PARAMS_TO_HOST) before writing
#    a checkpoint, or it writes the init's. The cuda driver fills batch k+1
#    while step k runs (P_E_begin / P_E_end), so it needs two batch buffers:
#    the emulation runs a step's work at its _end, so a driver that filled
#    the buffer of the step in flight would train on the wrong batch here;
#  - the begin/end protocol itself (a small C program on model_host.c):
#    begin + end gives the synchronous call's loss, and a second begin
#    before the end stops with a message and exit status 1;
#  - --resume from that checkpoint (step 5) to the end of epoch 3, with the programs just built:
#    the loaded weights go up to the device (and the step counter is read)
#    the same on both;
#  - `etch build --target cuda --train --c-only`: nvcc compiles the training
#    model.cu with -Werror all-warnings (when /usr/local/cuda/bin/nvcc exists).
# Needs a python3 with numpy (skips without); the data are random arrays.
source "$(dirname "$0")/e2e_common.sh"
py=
for p in /usr/bin/python3 python3; do
  if command -v "$p" >/dev/null && env -u LD_PRELOAD "$p" -c "import numpy" 2>/dev/null; then py=$p; break; fi
done
[ -n "$py" ] || { echo "SKIP: no python3 with numpy"; exit 77; }
mlp=$SRC/samples/mlp.etch
# the data: 640 training and 64 held-out images with labels, seeded (x.npy, y.npy, x_test.npy, y_test.npy)
mkdir "$t/data"
env -u LD_PRELOAD "$py" - "$t/data" <<'PY'
import sys
import numpy as np
rng = np.random.default_rng(7)
for name, n in (("", 640), ("_test", 64)):
    np.save(f"{sys.argv[1]}/x{name}.npy", rng.random((n, 1, 28, 28), dtype=np.float32))
    np.save(f"{sys.argv[1]}/y{name}.npy", rng.integers(0, 10, n, dtype=np.int64))
PY
run=(--data "$t/data" --seed 3 --digits 6 --limit 192 --epochs 3)

"$ETCH" train "$mlp" "${run[@]}" --steps 5 --cflags -O1 -o "$t/c" >"$t/c.log"
"$ETCH" train "$mlp" "${run[@]}" --steps 5 --cflags -O1 --target cuda --host-emulate -o "$t/cuda" >"$t/cuda.log" ||
  { cat "$t/cuda.log"; fail "etch train --target cuda --host-emulate"; }
[ -f "$t/cuda/build/model.cu" ] && [ ! -f "$t/cuda/build/model.c" ] || fail "the cuda training program is not model.cu's"
grep -q 'net_train_step_kernels' "$t/cuda/build/model.cu" || fail "model.cu has no train_step kernels"
grep -q 'etch_step_begin_fns\[\]' "$t/cuda/build/train_steps.h" && grep -q '^#define ETCH_ASYNC_ENTRIES 1' \
  "$t/cuda/build/model.h" || fail "the cuda training program does not begin its steps asynchronously"
grep -q '^#define ETCH_ASYNC_ENTRIES 0' "$t/c/build/model.h" && ! grep -q '_begin' "$t/c/build/train_steps.h" ||
  fail "the c backend's training program should call its steps synchronously"

# the protocol: begin + end is the call; a begin while one is in flight is an error
cat >"$t/protocol.c" <<'C'
#include <stdio.h>
#include <string.h>
#include "model.h"
int main(int argc, char **argv) {
    char err[512];
    if (net_load(argv[1], 0, err, sizeof err)) return fprintf(stderr, "%s\n", err), 2;
    float *x = net_host_alloc(sizeof(float) * 64 * 784);
    int64_t *y = net_host_alloc(sizeof(int64_t) * 64);
    for (int i = 0; i < 64 * 784; i++) x[i] = (float)(i % 97) / 97;
    for (int i = 0; i < 64; i++) y[i] = i % 10;
    net_ctx *ctx = net_ctx_create(err, sizeof err);
    float a = 0, b = 0;
    net_train_step_begin(ctx, x, y);
    net_train_step_end(ctx, &a);
    net_load(argv[1], 0, err, sizeof err);
    net_train_step_ctx(ctx, x, y, &b);
    if (a != b || a != a) return fprintf(stderr, "begin+end %g, the call %g\n", a, b), 3;
    printf("loss %g\n", a);
    fflush(stdout);
    net_train_step_begin(ctx, x, y);
    if (argc > 2) net_train_step_end(ctx, &a);
    net_train_step_begin(ctx, x, y);
    return 0;
}
C
b=$t/cuda/build
${CC:-cc} -std=c11 -O0 -I"$b" -o "$t/protocol" "$t/protocol.c" "$b/model_host.c" "$b/etch_rt.c" -lm ||
  fail "the protocol program does not compile"
"$t/protocol" "$b/init.safetensors" ok >"$t/protocol.log" 2>&1 || { cat "$t/protocol.log"; fail "begin/end/begin"; }
if "$t/protocol" "$b/init.safetensors" >"$t/protocol.log" 2>&1; then fail "a second begin in flight was accepted"; fi
grep -q "error: net_train_step_begin: a call begun in this context has not ended" "$t/protocol.log" ||
  fail "the second begin's message: $(cat "$t/protocol.log")"

# the same programs, resumed from the C run's checkpoint to step 8
for b in c cuda; do
  mkdir -p "$t/$b-resumed"
  "$t/$b/build/Net-train" "${run[@]}" --resume "$t/c/checkpoint.safetensors" --steps 8 -o "$t/$b-resumed" \
    >"$t/$b-resumed.log" || { cat "$t/$b-resumed.log"; fail "$b: --resume"; }
done

# compare.py C_DIR CUDA_DIR INIT: checkpoints within 1e-4 of the largest value of each tensor, and the
# cuda run moved the weights away from INIT (or the comparison would say nothing)
cat >"$t/compare.py" <<'PY'
import sys
import numpy as np
import safetensors_np as st
c, g, init = st.read(sys.argv[1] + "/checkpoint.safetensors"), st.read(sys.argv[2] + "/checkpoint.safetensors"), st.read(sys.argv[3])
assert sorted(c) == sorted(g), (sorted(c), sorted(g))
for k in sorted(c):
    err = float(np.abs(c[k].astype(np.float64) - g[k]).max())
    scale = float(np.abs(c[k]).max()) or 1.0
    assert err <= 1e-4 * scale, f"{k}: cuda differs from c by {err:.3g} (largest value {scale:.3g})"
    if k in init and not k.startswith("optimizer."):
        assert np.abs(g[k] - init[k]).max() > 1e-3 * scale, f"{k}: the cuda run wrote the initial weights"
print(f"{sys.argv[2]}: {len(c)} tensors within 1e-4 of the c backend's")
PY
for r in "" -resumed; do
  PYTHONPATH=$SRC/tests/e2e env -u LD_PRELOAD "$py" "$t/compare.py" "$t/c$r" "$t/cuda$r" "$t/c/build/init.safetensors" ||
    fail "the cuda backend's training$r differs from the c backend's"
  grep -q '^Epoch: 2, Loss: ' "$t/c$r.log" || fail "c$r: no second epoch: $(cat "$t/c$r.log")"
  paste -d' ' <(grep '^Epoch: ' "$t/c$r.log") <(grep '^Epoch: ' "$t/cuda$r.log") |
    awk 'NF != 8 || $2 != $6 { exit 1 } { d = $4 - $8; if (d > 1e-4 * $4 || -d > 1e-4 * $4) exit 1 }' ||
    fail "losses$r: c $(grep '^Epoch' "$t/c$r.log"), cuda $(grep '^Epoch' "$t/cuda$r.log")"
  echo "c: $(grep -c '^Epoch' "$t/c$r.log") epoch lines as cuda's"
done

"$ETCH" build "$mlp" --target cuda --train --c-only -o "$t/cu"
grep -q 'net_train_step_kernels' "$t/cu/model.cu" || fail "build --train: no train_step in model.cu"
grep -q 'cudaHostAlloc' "$t/cu/etch_cuda.h" && grep -q 'etch_host_alloc' "$t/cu/model.cu" &&
  grep -q '^void net_train_step_begin(' "$t/cu/model.cu" && grep -q '^void net_train_step_end(' "$t/cu/model.cu" ||
  fail "build --train: model.cu has no pinned memory or no begin/end pair"
if [ -x /usr/local/cuda/bin/nvcc ]; then
  /usr/local/cuda/bin/nvcc -std=c++17 -Werror all-warnings -gencode=arch=compute_80,code=sm_80 -c "$t/cu/model.cu" \
    -o "$t/cu/model.o" || fail "nvcc: the training model.cu does not compile without warnings"
  echo "nvcc compiles the training model.cu"
else
  echo "no /usr/local/cuda/bin/nvcc: the GPU compile is not checked"
fi
echo "cuda train: all checks passed"
