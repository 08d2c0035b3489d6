#!/usr/bin/env bash
# test_onnx_export.sh: `etch export` (codegen/onnx/) on the samples mlp,
# lenet, autoencoder, gpt and lstm, on a model using most other ops the
# exporter maps (conv, both pools with padding, pad, slice, concat, the
# reductions, casts, comparisons, where, softmax/log_softmax, broadcast,
# detach, a filled constant, three outputs, one of them a param), on a
# reversed loop with a captured Linear (a reverse Scan, three outputs; a
# carry and an output take a carry's old value) and on a QDQ model
# (quantize/dequantize per tensor to u8 and i8, an int8 weight per axis:
# QuantizeLinear/DequantizeLinear, its round trip bit-identical):
#  1. each is exported with its initializers (seed 0); mlp also with
#     --opset 13 -D B=3;
#  2. with python3-onnx (Debian; skipped without it, not the rest):
#     onnx_export.py checks every file with onnx.checker (full_check), their
#     initializers' names and opsets, and writes changed weights
#     <name>.safetensors; with onnxruntime installed (PyPI only) it also
#     runs each file there against etch's outputs; onnx_qdq.py imports QDQ
#     graphs built with onnx.helper against a NumPy reference (its docstring);
#  3. round trip, for every model (the loops through import's Scan, forward
#     and reverse): export with --weights (the changed weights when written),
#     then `etch run FILE.etch --weights W` and `etch run FILE.onnx` (imported
#     in memory, its initializers the weights) give the same outputs, rtol 1e-6;
#  4. an op with no ONNX mapping (random numbers) is an error at its source
#     line, exit 1, and nothing is written (more in the catalogue).
source "$(dirname "$0")/e2e_common.sh"
here=$(cd "$(dirname "$0")" && pwd)

cat >"$t/ops.etch" <<'EOF_OPS'
model Ops {
  conv = Conv2d(2, 4, 3, padding=1)
  fc = Linear(8, 6)
  fn forward(x: f32[2, 2, 8, 8]) -> (f32[2, 6], f32[2, 4, 4, 4], f32[6]) {
    let c = conv(x)
    let a = avg_pool2d(leaky_relu(c, negative_slope=0.1), 2, padding=1)
    let m = max_pool2d(tanh(c), 3, stride=2, padding=1)
    let p = pad(slice(slice(a, 3, 1, 5), 2, 0, 3), [0, 0, 0, 1], value=0.5)
    let q = cat(m, abs(neg(p)) * 0.5, dim=1)
    let s = sum(q, dim=[2, 3]) / (max(exp(q), dim=[2, 3]) + 1.0) + mean(log(sigmoid(q) + 1.0), dim=[2, 3])
    let h = fc(cast(cast(s * 4.0, i32), f32) + flatten(detach(q), 1) @ full([128, 8], 0.01))
    let g = where((h > 0.0) == (h >= 0.1), gelu(h), minimum(h, maximum(h, -0.5)) ** 2.0) - where(h < 0.2, h, 0.0) * where(h <= -0.2, 1.0, 2.0)
    let r = softmax(g, dim=1) + log_softmax(sqrt(abs(g) + 1.0), dim=0) + broadcast_to(fc.bias, [2, 6])
    return r, permute(m, [0, 1, 3, 2]), fc.bias
  }
}
EOF_OPS
cat >"$t/loops.etch" <<'EOF_LOOPS'
model Loops {
  fc = Linear(4, 4)
  fn forward(xs: f32[5, 2, 4]) -> (f32[5, 2, 4], f32[2, 4], f32[5, 2, 4]) {
    let h = zeros([2, 4])
    let g = full([2, 4], 0.5)
    let ys, prev = for t in reversed(xs) {
      let p = h
      h = tanh(fc(t) + g)
      g = p
      yield h * 2.0, p
    }
    return ys, h, prev
  }
}
EOF_LOOPS
cat >"$t/qdq.etch" <<'EOF_QDQ'
model Qdq {
  fc = Linear(8, 3)
  frozen param w8: i8[3, 8] = uniform(-120, 120)
  frozen param w_scale: f32[3] = uniform(0.01, 0.02)
  frozen param w_zp: i32[3] = zeros()
  frozen param x_scale: f32[] = uniform(0.02, 0.03)
  fn forward(x: f32[4, 8]) -> (f32[4, 3], u8[4, 8], f32[4, 8]) {
    let q = quantize(x, x_scale, 128, u8)
    let h = dequantize(q, 0.02, 128)
    let w = dequantize(w8, w_scale, w_zp, axis=0)
    let r = dequantize(quantize(h * 3.0, x_scale * 2.5, -3, i8), 0.05, -3)
    return fc(h) + h @ transpose(w), q, r
  }
}
EOF_QDQ
for s in mlp lenet autoencoder gpt lstm; do cp "$SRC/samples/$s.etch" "$t/"; done
models="mlp lenet autoencoder gpt lstm ops loops qdq"
n_outs() { case $1 in ops | loops | qdq) echo 3 ;; *) echo 1 ;; esac; }
outs() { # outs NAME TAG: the -o flags for every output of NAME: $t/NAME.TAG0.npy, ...
  local k
  for ((k = 0; k < $(n_outs "$1"); k++)); do printf -- '-o %s ' "$t/$1.$2$k.npy"; done
}

# 1. the exports with the initializers, the inputs, etch's reference outputs
for s in $models; do
  "$ETCH" export "$t/$s.etch" -o "$t/$s.0.onnx"
  "$ETCH" ir "$t/$s.etch" | sed -n 's/.* = param "\([^"]*\)".*/\1/p' >"$t/$s.params"
  "$ETCH" make-input "$t/$s.etch" -o "$t/$s.in.npy" >/dev/null
  # shellcheck disable=SC2046
  "$ETCH" run "$t/$s.etch" --eager --input "$t/$s.in.npy" $(outs "$s" ref)
done
"$ETCH" export "$t/mlp.etch" --opset 13 -D B=3 -o "$t/mlp13.onnx"

# 2. python3-onnx: the checker, names, opsets; the changed weights
py=""
for cand in python3 /usr/bin/python3; do
  if command -v "$cand" >/dev/null && env -u LD_PRELOAD "$cand" -c "import onnx, numpy" 2>/dev/null; then py=$cand; break; fi
done
if [ -n "$py" ]; then
  # shellcheck disable=SC2086
  env -u LD_PRELOAD "$py" "$here/onnx_export.py" "$t" $models
  env -u LD_PRELOAD "$py" "$here/onnx_qdq.py" "$t"
else
  echo "note: no python3 with onnx and numpy (Debian: python3-onnx): onnx.checker skipped"
fi

# 3. the round trip: etch -> ONNX -> etch gives the same numbers
for s in $models; do
  w=()
  [ -f "$t/$s.safetensors" ] && w=(--weights "$t/$s.safetensors")
  "$ETCH" export "$t/$s.etch" "${w[@]}" -o "$t/$s.onnx"
  # shellcheck disable=SC2046
  "$ETCH" run "$t/$s.etch" "${w[@]}" --eager --input "$t/$s.in.npy" $(outs "$s" a)
  # shellcheck disable=SC2046
  "$ETCH" run "$t/$s.onnx" --eager --input "$t/$s.in.npy" $(outs "$s" b)
  for ((k = 0; k < $(n_outs "$s"); k++)); do
    "$ETCH" compare "$t/$s.a$k.npy" "$t/$s.b$k.npy" --rtol 1e-6 >/dev/null || fail "$s: output $k differs after the round trip"
    if [ "$s" = qdq ]; then cmp -s "$t/$s.a$k.npy" "$t/$s.b$k.npy" || fail "qdq: output $k not bit-identical after the round trip"; fi
    if [ ${#w[@]} -gt 0 ] && cmp -s "$t/$s.a$k.npy" "$t/$s.ref$k.npy"; then fail "$s: --weights made no difference"; fi
  done
done

# 4. no ONNX mapping: a located error, and no file
mkdir "$t/fail"
printf 'model R {\n  fn forward(x: f32[2]) -> f32[2] {\n    return x + rand([2])\n  }\n}\n' >"$t/rand.etch"
if "$ETCH" export "$t/rand.etch" -o "$t/fail/rand.onnx" 2>"$t/err"; then fail "random numbers exported"; fi
grep -q "rand.etch:3:16: error: op 'random_uniform' has no ONNX mapping" "$t/err" || fail "message: $(cat "$t/err")"
[ -z "$(ls -A "$t/fail")" ] || fail "left behind: $(ls -A "$t/fail")"
echo "onnx export: ok"
