#!/usr/bin/env bash
# test_train_partial.sh: `--partial` loads a weights file that lacks some of
# the model's tensors (fine-tuning a pretrained trunk under a new head):
#  - `etch train --init W --partial` starts from W's tensors (fc1.*, byte for
#    byte) and the initializers of the rest (fc2.*, the same bytes as a run
#    without --init and the same --seed), naming the ones left on stderr;
#  - `etch run --weights W --partial` (eager and compiled) and `etch build`
#    take it too and name them;
#  - still errors, exit 1: a present tensor with another shape or dtype
#    (naming it, found and expected), a file with none of the model's
#    tensors, --partial without --init/--weights; without --partial the
#    missing tensor is an error as before.
source "$(dirname "$0")/e2e_common.sh"

cat >"$t/reg.etch" <<'ETCH'
model Reg {
  fc1 = Linear(3, 6)
  fc2 = Linear(6, 1)
  fn forward(x: f32[4, 3]) -> f32[4, 1] { return fc2(tanh(fc1(x))) }
}
train {
  loss = mse(Reg(x), y)
  optimizer = sgd(lr = 0.1)
  y: f32[4, 1]
}
ETCH

# st OUT NAME:DTYPE:SHAPE... : a safetensors file, values 0.01 * (i + 1)
st() {
  python3 - "$@" <<'PY'
import json, struct, sys
out, specs = sys.argv[1], sys.argv[2:]
header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
for spec in specs:
    name, dt, shape = spec.split(":")
    shape = [int(s) for s in shape.split(",")] if shape else []
    n = 1
    for s in shape: n *= s
    b = struct.pack("<%d%s" % (n, {"F32": "f", "F64": "d"}[dt]), *[0.01 * (i + 1) for i in range(n)])
    header[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(b)]}
    blobs.append(b); off += len(b)
h = json.dumps(header).encode(); h += b" " * (-len(h) % 8)
open(out, "wb").write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
PY
}
# tensor FILE NAME: the tensor's raw bytes in hex
tensor() {
  python3 - "$@" <<'PY'
import json, struct, sys
b = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", b[:8])[0]
e = json.loads(b[8:8 + n])[sys.argv[2]]; lo, hi = e["data_offsets"]
print(b[8 + n + lo:8 + n + hi].hex())
PY
}
expect_error() { # expected-substring command...
  local want=$1; shift
  set +e
  "$@" >"$t/stdout" 2>"$t/stderr"
  local rc=$?
  set -e
  [ $rc -eq 1 ] || { cat "$t/stderr" >&2; fail "exit status $rc (want 1) for: $*"; }
  grep -qF -- "$want" "$t/stderr" || { cat "$t/stderr" >&2; fail "missing '$want' for: $*"; }
}

# data: 8 examples (x.npy f32[8,3], y.npy f32[8,1]), numpy's .npy layout
PYTHONPATH=$(cd "$(dirname "$0")" && pwd) python3 - "$t/data" <<'PY'
import os, sys
from npy_stdlib import write_npy
d = sys.argv[1]; os.makedirs(d)
write_npy(f"{d}/x.npy", "<f4", (8, 3), [((i * 7) % 11) / 11 for i in range(24)])
write_npy(f"{d}/y.npy", "<f4", (8, 1), [i / 8 for i in range(8)])
PY

st "$t/trunk.safetensors" fc1.weight:F32:6,3 fc1.bias:F32:6
"$ETCH" train "$t/reg.etch" --data "$t/data" --init "$t/trunk.safetensors" --partial --steps 0 --seed 3 -o "$t/p" \
  >"$t/log" 2>"$t/err"
grep -qF "note: $t/trunk.safetensors has 2 of the model's 4 tensors; these keep their initializers (seed 3): fc2.weight, fc2.bias" "$t/err" ||
  { cat "$t/err"; fail "train --partial did not name the tensors left"; }
"$ETCH" train "$t/reg.etch" --data "$t/data" --steps 0 --seed 3 -o "$t/fresh" >/dev/null 2>&1
for name in fc1.weight fc1.bias; do
  [ "$(tensor "$t/p/Reg.safetensors" $name)" = "$(tensor "$t/trunk.safetensors" $name)" ] || fail "$name not loaded from the file"
done
for name in fc2.weight fc2.bias; do
  [ "$(tensor "$t/p/Reg.safetensors" $name)" = "$(tensor "$t/fresh/Reg.safetensors" $name)" ] || fail "$name not at its initializer"
done
# it trains from there
"$ETCH" train "$t/reg.etch" --data "$t/data" --init "$t/trunk.safetensors" --partial --epochs 2 -o "$t/p2" >"$t/log" 2>/dev/null
grep -q "^Epoch: 2, Loss: " "$t/log" || fail "no training after --partial"

# without --partial: the missing tensor is an error, as before
expect_error "missing tensor 'fc2.weight'" "$ETCH" train "$t/reg.etch" --data "$t/data" --init "$t/trunk.safetensors" -o "$t/q"
# a present tensor of another shape or dtype: an error naming it
st "$t/shape.safetensors" fc1.weight:F32:3,6 fc1.bias:F32:6
expect_error "$t/shape.safetensors: tensor 'fc1.weight' is f32[3,6], expected f32[6,3]" \
  "$ETCH" train "$t/reg.etch" --data "$t/data" --init "$t/shape.safetensors" --partial -o "$t/q"
st "$t/dtype.safetensors" fc1.weight:F32:6,3 fc1.bias:F64:6
expect_error "$t/dtype.safetensors: tensor 'fc1.bias' is f64[6], expected f32[6]" \
  "$ETCH" train "$t/reg.etch" --data "$t/data" --init "$t/dtype.safetensors" --partial -o "$t/q"
st "$t/other.safetensors" encoder.weight:F32:6,3
expect_error "$t/other.safetensors: none of the model's tensors is in the file (the model's are named like 'fc1.weight')" \
  "$ETCH" train "$t/reg.etch" --data "$t/data" --init "$t/other.safetensors" --partial -o "$t/q"
expect_error "--partial needs --init W" "$ETCH" train "$t/reg.etch" --data "$t/data" --partial -o "$t/q"

# etch run and etch build share the loading
"$ETCH" make-input "$t/reg.etch" -o "$t/in.npy" >/dev/null
for mode in --eager ""; do
  "$ETCH" run "$t/reg.etch" --weights "$t/trunk.safetensors" --partial --input "$t/in.npy" -o "$t/out.npy" $mode 2>"$t/err"
  grep -qF "these keep their initializers (seed 0): fc2.weight, fc2.bias" "$t/err" || { cat "$t/err"; fail "run $mode --partial"; }
done
expect_error "missing tensor 'fc2.weight'" "$ETCH" run "$t/reg.etch" --weights "$t/trunk.safetensors" --input "$t/in.npy" -o "$t/out.npy" --eager
expect_error "--partial needs --weights W" "$ETCH" run "$t/reg.etch" --partial --input "$t/in.npy" -o "$t/out.npy" --eager
"$ETCH" build "$t/reg.etch" --weights "$t/trunk.safetensors" --partial -o "$t/b" 2>"$t/err"
[ "$(tensor "$t/b/Reg.safetensors" fc1.weight)" = "$(tensor "$t/trunk.safetensors" fc1.weight)" ] || fail "build --partial: fc1.weight"
echo "partial loading: ok"
