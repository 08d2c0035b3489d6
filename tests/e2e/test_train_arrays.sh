#!/usr/bin/env bash
# test_train_arrays.sh: `etch train --data DIR` on a folder of .npy arrays
# named after the train block's inputs (x.npy, y.npy; x_test.npy and
# y_test.npy optional):
#  - a regression MLP (y = x·w + 0.5 + noise, y f32[N, 1], loss = mse) trains
#    from 256 generated examples: its last epoch's loss and the held-out
#    tenth's "Test MSE" fall below thresholds the untrained model is far
#    above; with x_test.npy/y_test.npy the report names them;
#    `etch eval` prints the same report for the trained weights;
#  - with an lr schedule, 1 epoch then 2 resumed end bit-identical to 3;
#  - integer labels with f32 logits get the accuracy report;
#  - hostile files exit 1 naming the file, what was expected and what was
#    found: a wrong dtype, a wrong shape, a truncated file, counts that
#    differ, y.npy missing, x_test.npy without y_test.npy, labels outside the
#    model's classes.
source "$(dirname "$0")/e2e_common.sh"

cat >"$t/reg.etch" <<'ETCH'
const B = 16
model Reg {
  fc1 = Linear(3, 16)
  fc2 = Linear(16, 1)
  fn forward(x: f32[B, 3]) -> f32[B, 1] { return fc2(tanh(fc1(x))) }
}
train {
  loss = mse(Reg(x), y)
  optimizer = adam(lr = 0.02)
  batch = B
  epochs = 15
  y: f32[B, 1]
}
ETCH

# npy DIR NAME DTYPE SHAPE KIND: writes DIR/NAME.npy (npy_stdlib.py); KIND:
# x (uniform in [-1, 1]), y (the linear function of x's rows + noise, needs
# x's rows), labels (i % 3).
here=$(cd "$(dirname "$0")" && pwd)
npy() {
  PYTHONPATH=$here python3 - "$@" <<'PY'
import random, struct, sys, os
from npy_stdlib import write_npy
d, name, dtype, shape, kind = sys.argv[1:6]
shape = [int(s) for s in shape.split(",")]
rng = random.Random(sum(name.encode()))  # hash() of a str differs per process
n = 1
for s in shape: n *= s
if kind == "x":
    vals = [rng.uniform(-1, 1) for _ in range(n)]
elif kind == "y":
    xs = struct.unpack("<%df" % (shape[0] * 3), open(os.path.join(d, name.replace("y", "x") + ".npy"), "rb").read()[128:])
    vals = [0.8 * xs[3 * i] - 0.5 * xs[3 * i + 1] + 0.3 * xs[3 * i + 2] + 0.5 + rng.gauss(0, 0.01) for i in range(shape[0])]
else:
    vals = [i % 3 for i in range(n)]
write_npy(os.path.join(d, name + ".npy"), dtype, shape, vals)
PY
}

mkdir -p "$t/data"
npy "$t/data" x "<f4" 256,3 x
npy "$t/data" y "<f4" 256,1 y
"$ETCH" train "$t/reg.etch" --data "$t/data" -o "$t/out" --seed 1 --digits 6 >"$t/log"
head -3 "$t/log"; tail -3 "$t/log"
grep -q "^Epoch: 15, Loss: " "$t/log" || fail "no 15th epoch line"
last=$(sed -n 's/^Epoch: 15, Loss: //p' "$t/log")
first=$(sed -n 's/^Epoch: 1, Loss: //p' "$t/log")
test_mse=$(sed -n 's/^Test MSE: \([0-9.]*\) (25 examples of the held-out tenth of x.npy)$/\1/p' "$t/log")
[ -n "$test_mse" ] || fail "no Test MSE line over the 25 held-out examples"
python3 -c "import sys; f, l, m = map(float, sys.argv[1:]); sys.exit(not (l < 0.01 and m < 0.01 and f > 5 * l))" \
  "$first" "$last" "$test_mse" || fail "regression did not learn: first $first last $last test $test_mse"
[ -f "$t/out/Reg.safetensors" ] || fail "no weights"

# an evaluation set of its own, and etch eval on it
npy "$t/data" x_test "<f4" 40,3 x
npy "$t/data" y_test "<f4" 40,1 y
"$ETCH" eval "$t/reg.etch" --data "$t/data" --weights "$t/out/Reg.safetensors" >"$t/eval"
grep -q "^Test MSE: 0\.00[0-9]* (40 examples of x_test.npy)$" "$t/eval" || { cat "$t/eval"; fail "etch eval on x_test.npy"; }

# a schedule continues exactly on --resume (the lr is computed from the
# checkpoint's optimizer.step): 1 epoch + 2 resumed = 3 epochs, bit for bit
sed 's/^  optimizer = adam(lr = 0.02)$/&\n  lr_schedule = cosine(warmup = 5, total = 40)/' "$t/reg.etch" >"$t/sched.etch"
grep -q "lr_schedule" "$t/sched.etch" || fail "no schedule in the test model"
"$ETCH" train "$t/sched.etch" --data "$t/data" --epochs 3 --seed 2 -o "$t/full" >/dev/null
mkdir -p "$t/half" "$t/rest"
sprog=$t/full/build/Reg-train
"$sprog" --data "$t/data" --init "$t/full/build/init.safetensors" --epochs 1 --seed 2 --name Reg -o "$t/half" >/dev/null
"$sprog" --data "$t/data" --resume "$t/half/checkpoint.safetensors" --epochs 3 --name Reg -o "$t/rest" >/dev/null
cmp -s "$t/full/Reg.safetensors" "$t/rest/Reg.safetensors" || fail "a resumed run with a schedule differs"

# classification from arrays: i64 labels, f32 logits
cat >"$t/cls.etch" <<'ETCH'
model Cls {
  fc = Linear(3, 3)
  fn forward(x: f32[8, 3]) -> f32[8, 3] { return fc(x) }
}
train {
  loss = cross_entropy(Cls(x), y)
  optimizer = sgd(lr = 0.1)
}
ETCH
mkdir -p "$t/cls"
npy "$t/cls" x "<f4" 40,3 x
npy "$t/cls" y "<i8" 40 labels
"$ETCH" train "$t/cls.etch" --data "$t/cls" -o "$t/cout" --epochs 2 >"$t/clog"
grep -q "^Test accuracy: [0-9.]*%, mean NLL: [0-9.]* (4 examples of the held-out tenth of x.npy)$" "$t/clog" ||
  { cat "$t/clog"; fail "classification report"; }

# hostile files: the compiled program is reused (etch train checks the folder, the program the files)
prog=$t/out/build/Reg-train
expect_error() { # expected-substring data-dir
  set +e
  timeout 60 "$prog" --data "$2" --init "$t/out/Reg.safetensors" -o "$t/h" --epochs 1 >"$t/stdout" 2>"$t/stderr"
  local rc=$?
  set -e
  [ $rc -eq 1 ] || { cat "$t/stderr" >&2; fail "exit status $rc (want 1) for $2"; }
  grep -qF -- "$1" "$t/stderr" || { cat "$t/stderr" >&2; fail "missing '$1' for $2"; }
  sed 's/^/  /' "$t/stderr"
}
mkdir -p "$t/h"
fresh() { rm -rf "$t/bad"; mkdir -p "$t/bad"; cp "$t/data/x.npy" "$t/data/y.npy" "$t/bad/"; }
fresh; npy "$t/bad" y "<f8" 256,1 y
expect_error "$t/bad/y.npy: expected f32[N,1] (the train block's y: f32[16,1], its first dim the number of examples N >= 1), found f64[256,1]" "$t/bad"
fresh; npy "$t/bad" x "<f4" 256,4 x
expect_error "$t/bad/x.npy: expected f32[N,3] (the train block's x: f32[16,3], its first dim the number of examples N >= 1), found f32[256,4]" "$t/bad"
fresh; npy "$t/bad" y "<f4" 256 x
expect_error "$t/bad/y.npy: expected f32[N,1]" "$t/bad"
fresh; head -c 600 "$t/data/x.npy" >"$t/bad/x.npy"
expect_error "$t/bad/x.npy: " "$t/bad"
grep -qi "truncat\|short\|bytes" "$t/stderr" || { cat "$t/stderr"; fail "truncated x.npy not reported as such"; }
fresh; npy "$t/bad" y "<f4" 200,1 x
expect_error "$t/bad: x.npy has 256 examples, y.npy 200; they must agree" "$t/bad"
fresh; rm "$t/bad/y.npy"
expect_error "y.npy" "$t/bad"
fresh; cp "$t/data/x_test.npy" "$t/bad/"
expect_error "$t/bad: has x_test.npy but not y_test.npy (the evaluation set takes both)" "$t/bad"
# etch train checks the folder before compiling
rm -rf "$t/bad"; mkdir -p "$t/bad"; cp "$t/data/x.npy" "$t/bad/"
set +e; "$ETCH" train "$t/reg.etch" --data "$t/bad" -o "$t/o2" 2>"$t/stderr"; rc=$?; set -e
[ $rc -eq 1 ] && grep -qF -- "--data $t/bad: no readable y.npy in the folder (a folder of arrays holds x.npy and y.npy)" "$t/stderr" ||
  { cat "$t/stderr"; fail "etch train without y.npy"; }
# labels outside the classes
prog=$t/cout/build/Cls-train
rm -rf "$t/bad"; mkdir -p "$t/bad"; cp "$t/cls/x.npy" "$t/bad/"
python3 - "$t/cls/y.npy" "$t/bad/y.npy" <<'PY'
import struct, sys
b = bytearray(open(sys.argv[1], "rb").read()); b[128 + 8 * 5:128 + 8 * 6] = struct.pack("<q", 7)
open(sys.argv[2], "wb").write(b)
PY
set +e; timeout 60 "$prog" --data "$t/bad" --init "$t/cout/Cls.safetensors" -o "$t/h" 2>"$t/stderr"; rc=$?; set -e
[ $rc -eq 1 ] && grep -qF "$t/bad/y.npy: label 5 is 7, outside the model's 3 classes (0 to 2)" "$t/stderr" ||
  { cat "$t/stderr"; fail "label outside the classes"; }
echo "train on arrays: ok"
