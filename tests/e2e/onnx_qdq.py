"""QDQ import cross-check, run by test_onnx_export.sh in its python3-onnx
step (needs onnx and numpy, not torch). Argument: a scratch folder.

Builds with onnx.helper the graph onnxruntime's static quantization writes
around a MatMul: x (FLOAT) -> QuantizeLinear -> DequantizeLinear -> MatMul
with an INT8 weight initializer through DequantizeLinear, plus an INT32 bias
through DequantizeLinear -> Add; the dequantized x is a second output. Two
variants: per tensor (UINT8 activations, zero point 128; one weight scale,
the weight's zero point absent) and per axis (INT8 activations with a scale
and zero point per column, axis -1; the weight per output column, axis 1).
Each is
imported and run by `etch run` compiled and --eager, against a NumPy
reference of ONNX's semantics: x / scale in float32, round half to even,
saturation; (q - zp) * scale. The input holds exact ties (2.5 -> 2,
-2.5 -> -2, 3.5 -> 4), values that saturate at both ends, and random values
for the inexact scales. The dequantized x must be bit-identical, y within
1e-6 relative (float32 matmul order). Then the unsupported variants: an
INT16 zero point and DequantizeLinear's block_size are errors naming the op
and what is supported.
"""
import os
import subprocess
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

t = sys.argv[1]
ETCH = os.environ["ETCH"]
failed = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failed.append(what)


def quantize_ref(x, scale, zp, lo, hi):
    """ONNX QuantizeLinear: saturate(round_half_even(x / scale) + zp), the division in float32."""
    return np.clip(np.rint(x.astype(np.float32) / scale.astype(np.float32)) + zp.astype(np.float64), lo, hi)


def model(path, x_scale, x_zp, w, w_scale, w_zp, bias, x_axis=1, w_axis=1):
    init = lambda a, name: numpy_helper.from_array(a, name)  # noqa: E731
    inits = [init(x_scale, "x_scale"), init(x_zp, "x_zp"), init(w, "w_int8"), init(w_scale, "w_scale"),
             init(bias, "bias_int32"), init((x_scale.max() * w_scale).astype(np.float32), "bias_scale")]
    w_in = ["w_int8", "w_scale"]
    if w_zp is not None:
        inits.append(init(w_zp, "w_zp"))
        w_in.append("w_zp")
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zp"], ["x_q"], name="x_q", axis=x_axis),
        helper.make_node("DequantizeLinear", ["x_q", "x_scale", "x_zp"], ["x_dq"], name="x_dq", axis=x_axis),
        helper.make_node("DequantizeLinear", w_in, ["w_dq"], name="w_dq", axis=w_axis),
        helper.make_node("DequantizeLinear", ["bias_int32", "bias_scale"], ["b_dq"], name="b_dq", axis=0),
        helper.make_node("MatMul", ["x_dq", "w_dq"], ["mm"], name="mm"),
        helper.make_node("Add", ["mm", "b_dq"], ["y"], name="add"),
    ]
    vi = lambda name, shape: helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)  # noqa: E731
    g = helper.make_graph(nodes, "qdq", [vi("x", [4, 8])], [vi("y", [4, 3]), vi("x_dq", [4, 8])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], producer_name="onnx_qdq.py")
    m.ir_version = 7
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, path)


def etch(*args, ok=True):
    r = subprocess.run([ETCH, *args], capture_output=True, text=True)
    if ok and r.returncode != 0:
        print(r.stderr)
        raise SystemExit("etch %s failed" % " ".join(args))
    return r


rng = np.random.default_rng(7)
x = rng.uniform(-3, 3, (4, 8)).astype(np.float32)
x[0, :6] = [0.625, -0.625, 0.875, 0.375, 100.0, -100.0]  # / 0.25: 2.5, -2.5, 3.5, 1.5 (ties); saturation
w = rng.integers(-127, 128, (8, 3)).astype(np.int8)
bias = rng.integers(-500, 500, (3,)).astype(np.int32)
np.save(os.path.join(t, "qdq_x.npy"), x)

variants = {
    # per tensor: UINT8 x (zero point 128), one weight scale, the weight's zero point absent
    "tensor": dict(x_scale=np.array(0.25, np.float32), x_zp=np.array(128, np.uint8), w=w,
                   w_scale=np.array(0.013, np.float32), w_zp=None, bias=bias),
    # per axis: INT8 x with a scale and zero point per column (axis -1), the weight per output column (axis 1)
    "axis": dict(x_scale=np.array([0.25, 0.25, 0.25, 0.25, 0.5, 0.03, 0.1, 0.07], np.float32),
                 x_zp=np.array([0, 0, 0, 0, -3, 5, 0, 127], np.int8), w=w,
                 w_scale=np.array([0.01, 0.02, 0.003], np.float32), w_zp=np.array([0, 0, 0], np.int8), bias=bias,
                 x_axis=-1, w_axis=1),
}
for name, v in variants.items():
    path = os.path.join(t, "qdq_%s.onnx" % name)
    model(path, **v)
    lo, hi = (0, 255) if v["x_zp"].dtype == np.uint8 else (-128, 127)
    q = quantize_ref(x, v["x_scale"], v["x_zp"], lo, hi)
    x_dq = ((q - v["x_zp"].astype(np.float64)) * v["x_scale"].astype(np.float64)).astype(np.float32)
    w_zp = v["w_zp"] if v["w_zp"] is not None else np.zeros(1, np.int8)
    w_dq = ((w.astype(np.float64) - w_zp) * v["w_scale"]).astype(np.float32)
    b_dq = (bias.astype(np.float64) * (v["x_scale"].max() * v["w_scale"]).astype(np.float32)).astype(np.float32)
    y = x_dq.astype(np.float64) @ w_dq.astype(np.float64) + b_dq
    for mode in ("compiled", "eager"):
        outs = [os.path.join(t, "qdq_%s_%s_%d.npy" % (name, mode, k)) for k in range(2)]
        etch("run", path, "--input", os.path.join(t, "qdq_x.npy"), "-o", outs[0], "-o", outs[1],
             *(["--eager"] if mode == "eager" else []))
        got_y, got_dq = np.load(outs[0]), np.load(outs[1])
        diff = int((got_dq != x_dq).sum())
        check(diff == 0, "qdq %s, %s: dequantized x bit-identical to the ONNX reference (%d differ)" % (name, mode, diff))
        rel = np.abs(got_y - y).max() / np.abs(y).max()
        check(rel <= 1e-6, "qdq %s, %s: y rel %.1e" % (name, mode, rel))
    text = etch("import", path, "-o", os.path.join(t, "qdq_%s.etch" % name)).returncode == 0 and \
        open(os.path.join(t, "qdq_%s.etch" % name)).read()
    want = "quantize(x, 0.25, 128, u8)" if name == "tensor" else "quantize(x, x_scale, x_zp, i8, axis=1)"
    check(want in text, "qdq %s: import writes %s" % (name, want))

# unsupported variants: the op named, and what is supported
x16 = helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"], name="q16")
blocked = helper.make_node("DequantizeLinear", ["w", "s2"], ["y"], name="blocked", axis=0, block_size=2)
cases = [
    ("int16", x16, [numpy_helper.from_array(np.array(0.1, np.float32), "s"), numpy_helper.from_array(np.array(0, np.int16), "z")],
     "tensor 'z' has element type INT16; etch supports FLOAT, DOUBLE, INT32, INT64, BOOL, INT8 and UINT8 (read by the "
     "QuantizeLinear node 'q16': etch imports QuantizeLinear to INT8 or UINT8 and DequantizeLinear of INT8, UINT8 or "
     "INT32, per tensor or per axis)"),
    ("block", blocked, [numpy_helper.from_array(np.ones((4, 8), np.int8), "w"), numpy_helper.from_array(np.ones((2, 8), np.float32), "s2")],
     "node 'blocked' (DequantizeLinear, opset 13): block_size (blocked quantization) is not supported; etch imports "
     "QuantizeLinear to INT8 or UINT8"),
]
for name, node, inits, message in cases:
    g = helper.make_graph([node], "bad", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 7
    path = os.path.join(t, "qdq_bad_%s.onnx" % name)
    onnx.save(m, path)
    r = etch("import", path, "-o", os.path.join(t, "qdq_bad_%s.etch" % name), ok=False)
    check(r.returncode == 1 and message in r.stderr, "qdq %s: refused: %s" % (name, r.stderr.strip()[:160]))
    check(not os.path.exists(os.path.join(t, "qdq_bad_%s.etch" % name)), "qdq %s: nothing written" % name)
if failed:
    sys.exit(1)
