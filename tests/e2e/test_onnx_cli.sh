#!/usr/bin/env bash
# test_onnx_cli.sh: the ONNX importer through the command line, without
# Python: tests/catalogue/models/onnx/tiny.onnx (a Gemm, fc.weight[i][j] =
# (i - j) / 4, fc.bias = 0.5, 0, -0.5, batch dim 'batch') imported with
# `etch import` gives a Linear member whose weights file loads unchanged into
# the hand-written tests/catalogue/models/tiny.etch (same names, same
# shapes), and the numbers are right: on an input of ones, y = i - 1.5 + b_i.
# `etch run`, `build` and `check` take the .onnx directly; --weights-out
# places the weights; a failed import leaves nothing behind. opset20.onnx
# (Gelu exact and tanh, Split by num_outputs, Pad with axes) gives the
# output make_onnx_models.py computed with numpy (opset20_y.npy).
source "$(dirname "$0")/e2e_common.sh"
models=$SRC/tests/catalogue/models

"$ETCH" import "$models/onnx/tiny.onnx" -D batch=2 -o "$t/tiny.etch"
[ -f "$t/tiny.safetensors" ] || fail "no weights file beside the .etch"
grep -q '^  fc = Linear(4, 3)$' "$t/tiny.etch" || fail "no Linear member: $(cat "$t/tiny.etch")"
grep -q 'fn forward(x: f32\[2, 4\]) -> f32\[2, 3\]' "$t/tiny.etch" || fail "batch not bound: $(cat "$t/tiny.etch")"

# an input of ones, written by hand as a .npy (f32 1.0 = 00 00 80 3f)
header="{'descr': '<f4', 'fortran_order': False, 'shape': (2, 4), }"
{ printf '\x93NUMPY\x01\x00'; printf "\\x$(printf %02x ${#header})\\x00"; printf '%s' "$header"
  for _ in 1 2 3 4 5 6 7 8; do printf '\x00\x00\x80\x3f'; done; } >"$t/ones.npy"

"$ETCH" run "$t/tiny.etch" --weights "$t/tiny.safetensors" --input "$t/ones.npy" -o "$t/a.npy"
"$ETCH" run "$models/tiny.etch" --weights "$t/tiny.safetensors" --input "$t/ones.npy" -o "$t/b.npy" --eager
"$ETCH" run "$models/onnx/tiny.onnx" -D batch=2 --input "$t/ones.npy" -o "$t/c.npy"
"$ETCH" compare "$t/a.npy" "$t/b.npy" >/dev/null
"$ETCH" compare "$t/a.npy" "$t/c.npy" >/dev/null
want=$'f32[2,3]\n-1 -0.5 0\n-1 -0.5 0'
got=$("$ETCH" show "$t/c.npy")
[ "$got" = "$want" ] || fail "tiny.onnx on ones: got $got, want $want"

"$ETCH" check "$models/onnx/tiny.onnx" -D batch=3
"$ETCH" build "$models/onnx/tiny.onnx" -D batch=2 -o "$t/build"
[ -f "$t/build/libtiny.so" ] && [ -f "$t/build/Tiny.safetensors" ] || fail "build: $(ls "$t/build")"

mkdir "$t/w"
"$ETCH" import "$models/onnx/tiny.onnx" -D batch=2 -o "$t/m.etch" --weights-out "$t/w/m.safetensors"
[ -f "$t/w/m.safetensors" ] && [ ! -f "$t/m.safetensors" ] || fail "--weights-out not honored"
grep -q "Its weights: $t/w/m.safetensors" "$t/m.etch" || fail "the header does not name the weights file"

"$ETCH" run "$models/onnx/opset20.onnx" --eager --input "$models/onnx/opset20_x.npy" -o "$t/o20.npy"
"$ETCH" compare "$t/o20.npy" "$models/onnx/opset20_y.npy" --rtol 1e-5 >/dev/null || fail "opset20.onnx: $("$ETCH" compare "$t/o20.npy" "$models/onnx/opset20_y.npy" --rtol 1e-5)"

# failures leave nothing behind
mkdir "$t/fail"
if "$ETCH" import "$models/onnx/unknown_op.onnx" -D batch=2 -o "$t/fail/m.etch" 2>"$t/err"; then fail "unknown op imported"; fi
grep -q "op 'Selu' is not supported" "$t/err" || fail "message: $(cat "$t/err")"
[ -z "$(ls -A "$t/fail")" ] || fail "left behind: $(ls -A "$t/fail")"
echo "onnx cli: ok"
