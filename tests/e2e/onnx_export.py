"""The python3-onnx half of test_onnx_export.sh (one process; needs onnx and
numpy, not torch). Arguments: the test's folder, then the model names whose
<name>.0.onnx `etch export` wrote there (params from their initializers).

For each model: onnx.checker.check_model with full_check (ONNX's own shape
inference agrees with every static shape etch wrote, scan bodies included);
the producer is etch,
the opset 17; the initializers are exactly the params, under their
PyTorch-style dotted names (the names the .etch file gives, listed in
<name>.params, one per line); then <name>.safetensors is written: every
float initializer scaled by 1.5 plus 0.01 (integer ones, quantized weights
and zero points, as they are), so the shell half's round trip shows
that `etch export --weights` writes those values and not the initializers.
mlp13.onnx (`--opset 13 -D B=3`) declares opset 13, IR version 7 and an
input of [3, 1, 28, 28]. With onnxruntime installed (PyPI only; not needed),
each <name>.0.onnx also runs there on <name>.in.npy against etch's
<name>.ref<k>.npy outputs (max|ort - etch| / max|etch| at most 1e-5), a
check of the Scan loops' numbers independent of etch import.
"""
import os
import sys

import numpy as np
import onnx
from onnx import numpy_helper

import safetensors_np

t, names = sys.argv[1], sys.argv[2:]
failed = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failed.append(what)


try:
    import onnxruntime
except ImportError:
    onnxruntime = None
    print("note: no onnxruntime (PyPI only): the exported models run through etch import only")

for name in names:
    path = os.path.join(t, name + ".0.onnx")
    m = onnx.load(path)
    try:
        onnx.checker.check_model(m, full_check=True)
        check(True, name + ": onnx.checker (full_check)")
    except onnx.checker.ValidationError as e:
        check(False, "%s: onnx.checker: %s" % (name, str(e).splitlines()[0]))
    check(m.producer_name == "etch" and [(o.domain, o.version) for o in m.opset_import] == [("", 17)],
          name + ": producer etch, opset 17")
    params = open(os.path.join(t, name + ".params")).read().split()
    inits = [i.name for i in m.graph.initializer]
    check(inits == params, "%s: initializers %s are the params" % (name, inits[:4]))
    changed = lambda a: (a * np.float32(1.5) + np.float32(0.01)).astype(np.float32) if a.dtype.kind == "f" else a  # noqa: E731
    safetensors_np.write(os.path.join(t, name + ".safetensors"),
                         {i.name: changed(numpy_helper.to_array(i)) for i in m.graph.initializer})
    if onnxruntime:
        sess = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        x = np.load(os.path.join(t, name + ".in.npy"))
        outs = sess.run(None, {sess.get_inputs()[0].name: x})
        for k, y in enumerate(outs):
            ref = np.load(os.path.join(t, "%s.ref%d.npy" % (name, k)))
            err = np.abs(y.astype(np.float64) - ref).max() / max(np.abs(ref).max(), 1e-30)
            check(err <= 1e-5, "%s: onnxruntime output %d: rel %.2e" % (name, k, err))

m = onnx.load(os.path.join(t, "mlp13.onnx"))
onnx.checker.check_model(m, full_check=True)
dims = [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim]
check(m.ir_version == 7 and m.opset_import[0].version == 13 and dims == [3, 1, 28, 28],
      "mlp13: IR %d, opset %d, input %s" % (m.ir_version, m.opset_import[0].version, dims))
if failed:
    sys.exit(1)
