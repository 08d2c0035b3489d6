"""ONNX import cross-check (run by test_onnx_import.sh; needs torch, numpy and onnx).

For each PyTorch model below, at opsets 13 and 17: torch.onnx.export (eval
mode, the batch dim symbolic where `dynamic` is set), `etch import` to a .etch
file and weights, `etch run` of that file with those weights on a random
input, and `etch run` of the .onnx file directly (imported in memory, its
initializers as the weights); both are compared with the PyTorch module run in
float64 on the same float32 weights. The measure is rel = max|etch - torch| /
max|torch| over the output (etch_test_util.rel); the tolerance 1e-5.

The models: an MLP (samples/mlp.etch's network), a LeNet-like CNN with
MaxPool, a residual CNN with BatchNorm2d (conv-bn pairs that the exporter
folds, and one BatchNormalization it keeps, AvgPool and global average
pooling), an MLP with LayerNorm, GELU, Tanh and Softmax (opset 17 writes
LayerNormalization, 13 the decomposed form), and a model whose shapes are
computed in the graph (x.shape[0] in a reshape, a slice, a transpose, a
constant added), which exercises the folding of Shape -> Gather -> Concat.
Also checked: the imported .etch keeps the PyTorch parameter names
(fc1.weight), and the weights file holds exactly the DSL's params.
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

from etch_test_util import Checks, st_read

try:
    import onnx  # noqa: F401  (torch.onnx.export needs it)
except ImportError:
    print("SKIP: no onnx module (Debian: python3-onnx)")
    sys.exit(77)

ETCH = os.environ["ETCH"]
torch.manual_seed(0)
checks = Checks(44)


class MLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(784, 128)
        self.fc2 = torch.nn.Linear(128, 10)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(torch.flatten(x, 1))))


class LeNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = torch.nn.Conv2d(6, 16, 5)
        self.fc1 = torch.nn.Linear(400, 120)
        self.fc2 = torch.nn.Linear(120, 84)
        self.fc3 = torch.nn.Linear(84, 10)

    def forward(self, x):
        h = torch.nn.functional.max_pool2d(torch.relu(self.conv1(x)), 2)
        h = torch.nn.functional.max_pool2d(torch.relu(self.conv2(h)), 2)
        h = torch.relu(self.fc1(torch.flatten(h, 1)))
        return self.fc3(torch.relu(self.fc2(h)))


class Block(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(c)
        self.conv2 = torch.nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = torch.nn.BatchNorm2d(c)

    def forward(self, x):
        return torch.relu(x + self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))


class ResNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.block1 = Block(8)
        self.block2 = Block(8)
        self.norm = torch.nn.BatchNorm2d(8)  # after an add: the exporter keeps it
        self.pool = torch.nn.AvgPool2d(2)
        self.fc = torch.nn.Linear(8, 5)

    def forward(self, x):
        h = self.block2(self.block1(torch.relu(self.stem(x))))
        h = self.pool(self.norm(h + 1.0))
        return self.fc(torch.flatten(torch.nn.functional.adaptive_avg_pool2d(h, 1), 1))


class NormMLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Linear(12, 32)
        self.norm1 = torch.nn.LayerNorm(32)
        self.hidden = torch.nn.Linear(32, 64)
        self.act = torch.nn.GELU()
        self.proj = torch.nn.Linear(64, 32)
        self.norm2 = torch.nn.LayerNorm(32, eps=1e-6)
        self.head = torch.nn.Linear(32, 7)

    def forward(self, x):  # x: [B, T, 12]: the Linears see 3-D inputs (MatMul + Add)
        h = self.norm1(self.embed(x))
        h = h + self.proj(self.act(self.hidden(h)))
        h = torch.tanh(self.norm2(h))
        return torch.softmax(self.head(h), dim=-1)


class Shapes(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(6, 6)
        self.register_buffer("offset", torch.linspace(-1, 1, 6))

    def forward(self, x):  # x: [B, 4, 6]
        b = x.shape[0]
        h = self.fc(x) + self.offset
        h = h.transpose(1, 2)[:, 1:5, :]  # [B, 4, 4]
        h = h.reshape(b, -1) * 0.5  # the batch dim read from the input's shape
        return torch.cat([h, torch.sigmoid(h[:, :3])], dim=1).abs().exp().log().sqrt()


MODELS = [
    # name, constructor, input shape, dynamic batch
    ("mlp", MLP, (4, 1, 28, 28), True),
    ("lenet", LeNet, (3, 1, 28, 28), False),
    ("resnet", ResNet, (2, 3, 16, 16), True),
    ("normmlp", NormMLP, (2, 5, 12), False),
    ("shapes", Shapes, (3, 4, 6), True),
]


def etch(*args):
    r = subprocess.run([ETCH, *args], capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stderr)
        raise SystemExit(f"etch {' '.join(args)} failed")
    return r


def randomize_bn(model):
    """Non-trivial running statistics, so the BatchNorms matter."""
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)


with tempfile.TemporaryDirectory() as t:
    for name, make, shape, dynamic in MODELS:
        model = make().eval()
        randomize_bn(model)
        x = torch.randn(*shape)
        want = make().double().eval()
        want.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
        want = want(x.double()).detach().numpy()
        xpath = os.path.join(t, f"{name}_x.npy")
        np.save(xpath, x.numpy())
        for opset in (13, 17):
            onnx_path = os.path.join(t, f"{name}{opset}.onnx")
            axes = {"x": {0: "batch"}, "y": {0: "batch"}} if dynamic else None
            torch.onnx.export(model, x, onnx_path, opset_version=opset, input_names=["x"], output_names=["y"],
                              dynamic_axes=axes)
            defines = ["-D", f"batch={shape[0]}"] if dynamic else []
            src = os.path.join(t, f"{name}{opset}.etch")
            weights = os.path.join(t, f"{name}{opset}.safetensors")
            etch("import", onnx_path, "-o", src, *defines)
            out = os.path.join(t, f"{name}{opset}_out.npy")
            etch("run", src, "--weights", weights, "--input", xpath, "-o", out)
            checks.check(f"{name} opset {opset}: import + run", np.load(out), want, 1e-5)
            etch("run", onnx_path, *defines, "--input", xpath, "-o", out)
            checks.check(f"{name} opset {opset}: run .onnx", np.load(out), want, 1e-5)
            # the weights file holds exactly the params the text declares, under PyTorch's names
            stored = st_read(weights)
            text = open(src).read()
            if name in ("mlp", "lenet"):
                ok = all(k in stored and torch.equal(stored[k], v) for k, v in model.state_dict().items())
                print(f"{'ok' if ok else 'FAIL':4} {name} opset {opset}: weights keep the state_dict names")
                if not ok:
                    checks.failures.append(f"{name} names")
            if name == "normmlp" and opset == 17 and "LayerNorm(32, eps=1e-06)" not in text:
                print(text)
                checks.failures.append("normmlp: LayerNorm module")
    checks.finish()
