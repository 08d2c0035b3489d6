"""Writes the small ONNX files under tests/catalogue/models/onnx/ (committed, so
the catalogue's ONNX cases and the fuzz seeds need no Python): built with
onnx.helper, byte-for-byte reproducible. Rerun after changing it:

    python3 tests/catalogue/make_onnx_models.py

  tiny.onnx             models/tiny.etch as ONNX: Gemm(x, fc.weight, fc.bias),
                        x: FLOAT[batch, 4] with the symbolic dim 'batch'; the
                        weights are (i - j) / 4 and the bias 0.5, 0, -0.5
  unknown_op.onnx       tiny.onnx followed by a Selu node named 'act'
  typo_op.onnx          tiny.onnx followed by a 'Rellu' node named 'act'
  bad_raw.onnx          fc.weight's raw_data holds 40 bytes, its dims [3, 4] need 48
  external.onnx         fc.weight in an external data file, tiny_weights.bin,
                        that is not there
  external_escape.onnx  the same with the location '../w.bin'
  opset11.onnx          tiny.onnx at opset 11
  unnamed_dim.onnx      x: FLOAT[?, 4], a dim without size or name
  int8.onnx             fc.weight as INT8
  gru_lbr0.onnx         a GRU over x [2, 1, 4] with linear_before_reset=0 (PyTorch writes 1)
  scan_directions.onnx  a Scan summing x [2, 1, 4] into a state, reading forward
                        but stacking its outputs backward (scan_output_directions 1)
  scan_two_inputs.onnx  a Scan over two sequences (num_scan_inputs 2)
  opset20.onnx          ops of opsets 18 to 20 on x [2, 7]: Gelu (approximate none
                        and tanh), Split by num_outputs (3, 3, 1), Pad with axes:
                        y = cat(s0 * s1, pad(s2, 1 before 2 after on axis 1, 0.5)) + gelu_tanh(x)
                        where s0, s1, s2 = split(gelu(x)); opset20_x.npy its input,
                        opset20_y.npy the output computed here with numpy in float64
"""
import math
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models", "onnx")
W = np.array([[(i - j) / 4 for j in range(4)] for i in range(3)], np.float32)
B = np.array([0.5, 0, -0.5], np.float32)


def model(nodes=(), inits=None, opset=17, x_shape=("batch", 4), out="y"):
    gemm = helper.make_node("Gemm", ["x", "fc.weight", "fc.bias"], ["h" if nodes else "y"], name="/fc/Gemm", transB=1)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))
    y = helper.make_tensor_value_info(out, TensorProto.FLOAT, None)
    if inits is None:
        inits = [numpy_helper.from_array(W, "fc.weight"), numpy_helper.from_array(B, "fc.bias")]
    g = helper.make_graph([gemm, *nodes], "tiny", [x], [y], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="make_onnx_models.py")
    m.ir_version = 8
    return m


def save(name, m):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(m.SerializeToString())


os.makedirs(OUT, exist_ok=True)
save("tiny.onnx", model())
save("unknown_op.onnx", model([helper.make_node("Selu", ["h"], ["y"], name="act")]))
save("typo_op.onnx", model([helper.make_node("Rellu", ["h"], ["y"], name="act")]))

bad = numpy_helper.from_array(W, "fc.weight")
bad.raw_data = bad.raw_data[:40]
save("bad_raw.onnx", model(inits=[bad, numpy_helper.from_array(B, "fc.bias")]))

for name, location in (("external.onnx", "tiny_weights.bin"), ("external_escape.onnx", "../w.bin")):
    ext = numpy_helper.from_array(W, "fc.weight")
    ext.ClearField("raw_data")
    ext.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", "0"), ("length", "48")):
        e = ext.external_data.add()
        e.key, e.value = k, v
    save(name, model(inits=[ext, numpy_helper.from_array(B, "fc.bias")]))

save("opset11.onnx", model(opset=11))
save("unnamed_dim.onnx", model(x_shape=(None, 4)))
save("int8.onnx", model(inits=[numpy_helper.from_array(W.astype(np.int8), "fc.weight"), numpy_helper.from_array(B, "fc.bias")]))
gru = helper.make_node("GRU", ["x", "W", "R"], ["y"], name="/gru/GRU", hidden_size=2, linear_before_reset=0)
gru_w = [numpy_helper.from_array(np.full((1, 6, n), 0.25, np.float32), name) for name, n in (("W", 4), ("R", 2))]
g = helper.make_graph([gru], "gru", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 1, 4])],
                      [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], gru_w)
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], producer_name="make_onnx_models.py")
m.ir_version = 8
save("gru_lbr0.onnx", m)


def scan_model(n_xs, **attrs):
    """x [2, 1, 4] (n_xs times) scanned into s = s + xt (+ ...), yielding s."""
    xs = ["x%d" % k for k in range(n_xs)]
    vi = lambda name, shape: helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)
    adds = [helper.make_node("Add", ["s", "xt0"], ["s_out" if n_xs == 1 else "a0"])]
    if n_xs == 2:
        adds.append(helper.make_node("Add", ["a0", "xt1"], ["s_out"]))
    body = helper.make_graph(adds + [helper.make_node("Identity", ["s_out"], ["y_t"])], "body",
                             [vi("s", [1, 4])] + [vi("xt%d" % k, [1, 4]) for k in range(n_xs)],
                             [vi("s_out", [1, 4]), vi("y_t", [1, 4])])
    scan = helper.make_node("Scan", ["s0"] + xs, ["s_final", "y"], name="/scan", body=body, num_scan_inputs=n_xs, **attrs)
    g = helper.make_graph([scan], "scan", [vi(x, [2, 1, 4]) for x in xs], [vi("y", None)],
                          [numpy_helper.from_array(np.zeros((1, 4), np.float32), "s0")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], producer_name="make_onnx_models.py")
    m.ir_version = 8
    return m


save("scan_directions.onnx", scan_model(1, scan_output_directions=[1]))
save("scan_two_inputs.onnx", scan_model(2))


def opset20():
    vi = lambda name, shape: helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)
    nodes = [
        helper.make_node("Gelu", ["x"], ["g"]),
        helper.make_node("Gelu", ["x"], ["gt"], approximate="tanh"),
        helper.make_node("Split", ["g"], ["s0", "s1", "s2"], axis=1, num_outputs=3),
        helper.make_node("Mul", ["s0", "s1"], ["m"]),
        helper.make_node("Pad", ["s2", "pads", "half", "axes"], ["p"]),
        helper.make_node("Concat", ["m", "p"], ["c"], axis=1),
        helper.make_node("Add", ["c", "gt"], ["y"]),
    ]
    inits = [numpy_helper.from_array(np.array([1, 2], np.int64), "pads"),
             numpy_helper.from_array(np.array(0.5, np.float32), "half"),
             numpy_helper.from_array(np.array([-1], np.int64), "axes")]
    g = helper.make_graph(nodes, "opset20", [vi("x", [2, 7])], [vi("y", [2, 7])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 20)], producer_name="make_onnx_models.py")
    m.ir_version = 9
    save("opset20.onnx", m)
    x = np.linspace(-3, 3, 14, dtype=np.float32).reshape(2, 7)
    x64 = x.astype(np.float64)
    gelu = x64 * 0.5 * (1 + np.vectorize(math.erf)(x64 / math.sqrt(2)))
    gelu_tanh = 0.5 * x64 * (1 + np.tanh(math.sqrt(2 / math.pi) * (x64 + 0.044715 * x64 ** 3)))
    s0, s1, s2 = gelu[:, 0:3], gelu[:, 3:6], gelu[:, 6:7]
    p = np.pad(s2, ((0, 0), (1, 2)), constant_values=0.5)
    y = np.concatenate([s0 * s1, p], axis=1) + gelu_tanh
    np.save(os.path.join(OUT, "opset20_x.npy"), x)
    np.save(os.path.join(OUT, "opset20_y.npy"), y.astype(np.float32))


opset20()
print("wrote", sorted(os.listdir(OUT)))
