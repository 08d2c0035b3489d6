"""etch vs onnxruntime on imported models, one thread (bench/onnx_ort.sh runs it in its venv).

For the PyTorch twins of samples/lenet.etch, autoencoder.etch and lstm.etch
(the classes of bench/torch_models.py): torch.onnx.export at opset 17 with a
symbolic batch, then `etch import` + `etch build` (timed) and `etch bench -D
batch=B` (its -O2 inference median) against onnxruntime's median over the
same file (intra- and inter-op threads 1, all graph optimizations) at batch 1
and at the samples' batch 64. Prints one table; ratio > 1: etch is faster.
"""
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnxruntime as ort
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ETCH = sys.argv[1]
src = open(os.path.join(HERE, "torch_models.py")).read()
exec(src[:src.index("def median_us")])  # the model classes, without the benchmark loop below them
torch.set_num_threads(1)


def median_us(fn, budget=1.0):
    for _ in range(3):
        fn()
    times, start = [], time.perf_counter()
    while len(times) < 5 or (time.perf_counter() - start < budget and len(times) < 5000):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2] * 1e6


def timed(*args):
    t0 = time.perf_counter()
    r = subprocess.run([ETCH, *args], capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"etch {' '.join(args)}: {r.stderr}")
    return time.perf_counter() - t0, r.stdout


print(f"onnxruntime {ort.__version__}, torch {torch.__version__}, 1 thread")
print(f"{'model':12} {'batch':>5} {'etch us':>10} {'ort us':>10} {'ort/etch':>8} {'import s':>9} {'build s':>8}")
with tempfile.TemporaryDirectory() as t:
    for name, net in (("lenet", LeNet()), ("autoencoder", AE()), ("lstm", LSTMNet())):  # noqa: F821
        net.eval()
        path = os.path.join(t, f"{name}.onnx")
        torch.onnx.export(net, torch.rand(2, 1, 28, 28), path, opset_version=17, input_names=["x"],
                          output_names=["y"], dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        for batch in (1, 64):
            etch_src = os.path.join(t, f"{name}{batch}.etch")
            t_import, _ = timed("import", path, "-o", etch_src, "-D", f"batch={batch}")
            t_build, _ = timed("build", etch_src, "-o", os.path.join(t, f"{name}{batch}_out"))
            _, out = timed("bench", path, "-D", f"batch={batch}", "--threads", "1")
            etch_us = float(re.search(r"inference\s+-O2\s+([0-9.]+) us", out).group(1))
            x = np.random.rand(batch, 1, 28, 28).astype(np.float32)
            ort_us = median_us(lambda: sess.run(None, {"x": x}))
            print(f"{name:12} {batch:5d} {etch_us:10.1f} {ort_us:10.1f} {ort_us / etch_us:7.2f}x"
                  f" {t_import:9.3f} {t_build:8.2f}")
