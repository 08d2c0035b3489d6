#!/usr/bin/env bash
# test_cuda_train.sh: `etch train --target cuda` (docs/cuda.md) builds the
# training program with the cuda backend, its kernels run on the CPU here
# (--host-emulate), and trains as the C backend does:
#  - 5 steps of samples/mlp.etch from the same init (--seed 3) in the same
#    batch order, with each backend: the checkpoints (weights, momentum,
#    step counter) agree within 1e-4 relative, and the printed epoch losses
#    (6 decimals) too. The weights are updated on the device: the driver
#    must fetch them (ETCH_PARAMS_TO_HOST) before writing a checkpoint, or
#    it writes the init's;
#  - --resume from that checkpoint to step 8, with the programs just built:
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
run=(--data "$t/data" --seed 3 --digits 6)

"$ETCH" train "$mlp" "${run[@]}" --steps 5 --cflags -O1 -o "$t/c" >"$t/c.log"
"$ETCH" train "$mlp" "${run[@]}" --steps 5 --cflags -O1 --target cuda --host-emulate -o "$t/cuda" >"$t/cuda.log" ||
  { cat "$t/cuda.log"; fail "etch train --target cuda --host-emulate"; }
[ -f "$t/cuda/build/model.cu" ] && [ ! -f "$t/cuda/build/model.c" ] || fail "the cuda training program is not model.cu's"
grep -q 'net_train_step_kernels' "$t/cuda/build/model.cu" || fail "model.cu has no train_step kernels"

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
  lc=$(grep '^Epoch: 1, Loss: ' "$t/c$r.log") lg=$(grep '^Epoch: 1, Loss: ' "$t/cuda$r.log") ||
    fail "no epoch line: $(cat "$t/cuda$r.log")"
  awk -v a="${lc##* }" -v b="${lg##* }" 'BEGIN { d = a - b; exit !(d <= 1e-4 * a && -d <= 1e-4 * a) }' ||
    fail "losses$r: c $lc, cuda $lg"
  echo "c: $lc; cuda: $lg"
done

"$ETCH" build "$mlp" --target cuda --train --c-only -o "$t/cu"
grep -q 'net_train_step_kernels' "$t/cu/model.cu" || fail "build --train: no train_step in model.cu"
if [ -x /usr/local/cuda/bin/nvcc ]; then
  /usr/local/cuda/bin/nvcc -std=c++17 -Werror all-warnings -gencode=arch=compute_80,code=sm_80 -c "$t/cu/model.cu" \
    -o "$t/cu/model.o" || fail "nvcc: the training model.cu does not compile without warnings"
  echo "nvcc compiles the training model.cu"
else
  echo "no /usr/local/cuda/bin/nvcc: the GPU compile is not checked"
fi
echo "cuda train: all checks passed"
