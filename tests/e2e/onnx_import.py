"""ONNX import cross-check (run by test_onnx_import.sh; needs torch, numpy and onnx).

For each PyTorch model below, at opsets 13 and 17 (the second group at 17
only): torch.onnx.export (eval mode, the batch dim symbolic where `dynamic` is
set), `etch import` to a .etch file and weights, `etch run` (compiled) of that
file with those weights on a random input, and for the first group `etch run
--eager` of the .onnx file directly (imported in memory, its initializers as
the weights); both are compared with the PyTorch module run in float64 on the
same float32 weights. The measure is rel = max|etch - torch| /
max|torch| over the output (etch_test_util.rel); the tolerance 1e-5.

The models: an MLP (samples/mlp.etch's network), a LeNet-like CNN with
MaxPool, a residual CNN with BatchNorm2d (conv-bn pairs that the exporter
folds, and one BatchNormalization it keeps, AvgPool and global average
pooling), an MLP with LayerNorm, GELU, Tanh and Softmax (opset 17 writes
LayerNormalization, 13 the decomposed form), and a model whose shapes are
computed in the graph (x.shape[0] in a reshape, a slice, a transpose, a
constant added), which exercises the folding of Shape -> Gather -> Concat.
Then, imported only: nn.Sequential (ReLU6 as Clip, LeakyReLU), convolutions
with groups, strides, dilation, uneven padding and ceil_mode pooling that
does not count the padding, an embedding feeding a TransformerEncoderLayer,
and a mix of Split, Where, Expand, masks of -inf and BatchNorm1d.
Also checked: the imported .etch keeps the PyTorch parameter names
(fc1.weight); weights in an external data file import the same as embedded
ones, and a missing one is an error naming it.
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

from etch_test_util import Checks, MlpNet, st_read

try:
    import onnx  # noqa: F401  (torch.onnx.export needs it)
except ImportError:
    print("SKIP: no onnx module (Debian: python3-onnx)")
    sys.exit(77)

ETCH = os.environ["ETCH"]
torch.manual_seed(0)
checks = Checks(44)


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


class Seq(torch.nn.Module):  # nn.Sequential names: net.0.weight; Clip (ReLU6), LeakyRelu
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU6(), torch.nn.Linear(16, 4),
                                       torch.nn.LeakyReLU(0.2))

    def forward(self, x):
        return self.net(x)


class Convs(torch.nn.Module):  # grouped, strided, dilated convs; uneven Pad; ceil_mode pools
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Conv2d(4, 8, 3, stride=2, padding=1, groups=2)
        self.b = torch.nn.Conv2d(8, 8, (3, 1), dilation=(2, 1), padding=(2, 0), bias=False)
        self.c = torch.nn.Conv2d(8, 6, 2)
        self.bn = torch.nn.BatchNorm2d(6)

    def forward(self, x):
        h = torch.nn.functional.silu(self.a(x))
        h = torch.nn.functional.max_pool2d(self.b(h), 3, stride=2, padding=1, ceil_mode=True)
        h = self.bn(self.c(torch.nn.functional.pad(h, (0, 1, 1, 0))))
        return torch.nn.functional.avg_pool2d(h, 3, stride=2, padding=1, count_include_pad=False, ceil_mode=True)


class Attention(torch.nn.Module):  # Embedding (Gather of run-time ids), a transformer layer
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(50, 16)
        self.layer = torch.nn.TransformerEncoderLayer(16, 2, dim_feedforward=32, dropout=0.0, batch_first=True)
        self.out = torch.nn.Linear(16, 5)

    def forward(self, ids):
        return self.out(self.layer(self.emb(ids)).mean(dim=1))


class Misc(torch.nn.Module):  # BatchNorm1d, Split, Where, Clip, Expand, a -inf mask, tanh GELU, ReduceMax
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(6, 6)
        self.bn1 = torch.nn.BatchNorm1d(6)

    def forward(self, x):
        h = self.bn1(self.fc(x))
        a, b = torch.split(h, [2, 4], dim=1)
        c = torch.where(a > 0, a, torch.zeros_like(a)) + b[:, :2].clamp(-0.5, 0.5)
        d = c.unsqueeze(1).expand(-1, 3, -1).reshape(x.shape[0], -1)
        e = (d.unsqueeze(2) * h.unsqueeze(1)).masked_fill(~torch.triu(torch.ones(6, 6)).bool(), float("-inf"))
        e = e.softmax(dim=-1)
        g = torch.nn.functional.gelu(e.sum(dim=2), approximate="tanh") + e.max(dim=1).values
        return torch.cat([g, h.mean(dim=0, keepdim=True).expand(x.shape[0], -1)], 1).log_softmax(1)


class Lstm(torch.nn.Module):  # 2 layers bidirectional batch_first (module), then given initial states (a loop)
    def __init__(self):
        super().__init__()
        self.lstm = torch.nn.LSTM(5, 6, num_layers=2, bidirectional=True, batch_first=True)
        self.lstm2 = torch.nn.LSTM(12, 3)
        self.h0 = torch.nn.Parameter(torch.randn(1, 2, 3))
        self.c0 = torch.nn.Parameter(torch.randn(1, 2, 3))

    def forward(self, x):  # x [B, T, 5]
        y, (h, c) = self.lstm(x)
        y2, (h2, c2) = self.lstm2(y.transpose(0, 1), (self.h0, self.c0))
        states = torch.cat([h, c, torch.cat([h2, c2], 2)], 0).transpose(0, 1)
        return torch.cat([y.flatten(1), y2.transpose(0, 1).flatten(1), states.flatten(1)], 1)


class Gru(torch.nn.Module):  # bidirectional (module), then initial states computed at run time (loops, one reversed); Trilu
    def __init__(self):
        super().__init__()
        self.gru = torch.nn.GRU(5, 6, bidirectional=True)
        self.proj = torch.nn.Linear(5, 4)
        self.gru2 = torch.nn.GRU(12, 4, bidirectional=True)

    def forward(self, x):  # x [T, B, 5]
        y, h = self.gru(x)
        y2, h2 = self.gru2(y, torch.tanh(self.proj(x[:2])))
        return torch.cat([y.transpose(0, 1).flatten(1), torch.triu(y2.transpose(0, 1), 1).flatten(1),  # Trilu
                          torch.tril(h.transpose(0, 1), -1).flatten(1), h2.transpose(0, 1).flatten(1)], 1)


MODELS = [
    # name, constructor, input shape, dynamic batch, first group (both opsets, the .onnx run directly)
    ("mlp", MlpNet, (4, 1, 28, 28), True, True),
    ("lenet", LeNet, (3, 1, 28, 28), False, True),
    ("resnet", ResNet, (2, 3, 16, 16), True, True),
    ("normmlp", NormMLP, (2, 5, 12), False, True),
    ("shapes", Shapes, (3, 4, 6), True, True),
    ("seq", Seq, (3, 8), False, False),
    ("convs", Convs, (2, 4, 15, 13), False, False),
    ("attention", Attention, "ids", False, False),
    ("misc", Misc, (4, 6), False, False),
    ("lstm", Lstm, (2, 4, 5), False, False),
    ("gru", Gru, (4, 2, 5), False, False),
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
    for name, make, shape, dynamic, direct in MODELS:
        model = make().eval()
        randomize_bn(model)
        x = torch.randint(0, 50, (2, 7)) if shape == "ids" else torch.randn(*shape)
        want = make().double().eval()
        want.load_state_dict({k: v.double() if v.is_floating_point() else v for k, v in model.state_dict().items()})
        want = want(x if shape == "ids" else x.double()).detach().numpy()
        xpath = os.path.join(t, f"{name}_x.npy")
        np.save(xpath, x.numpy())
        for opset in (13, 17) if direct else (17,):
            onnx_path = os.path.join(t, f"{name}{opset}.onnx")
            axes = {"x": {0: "batch"}, "y": {0: "batch"}} if dynamic else None
            torch.onnx.export(model, x, onnx_path, opset_version=opset, input_names=["x"], output_names=["y"],
                              dynamic_axes=axes)
            defines = ["-D", f"batch={shape[0]}"] if dynamic else []
            src = os.path.join(t, f"{name}{opset}.etch")
            weights = os.path.join(t, f"{name}{opset}.safetensors")
            etch("import", onnx_path, "-o", src, *defines)
            out = os.path.join(t, f"{name}{opset}_out.npy")
            # the recurrent models' loops take the C compiler 15 s at etch's default flags; -O0: 2 s.
            # Opset 13 (the second import of the first group) runs the imported file --eager: the
            # compiled run of the same graph is opset 17's, and a compile per model is most of the time.
            mode = ["--eager"] if opset == 13 else ["--cflags", "-O0"] if name in ("lstm", "gru") else []
            etch("run", src, "--weights", weights, "--input", xpath, "-o", out, *mode)
            how = " --eager" if opset == 13 else ""
            checks.check(f"{name} opset {opset}: import + run{how}", np.load(out), want, 1e-5)
            if direct:
                etch("run", onnx_path, *defines, "--input", xpath, "-o", out, "--eager")
                checks.check(f"{name} opset {opset}: run .onnx --eager", np.load(out), want, 1e-5)
            text = open(src).read()
            if name in ("mlp", "lenet"):  # the weights keep PyTorch's names
                stored = st_read(weights)
                ok = all(k in stored and torch.equal(stored[k], v) for k, v in model.state_dict().items())
                print(f"{'ok' if ok else 'FAIL':4} {name} opset {opset}: weights keep the state_dict names")
                if not ok:
                    checks.failures.append(f"{name} names")
            modules = {"lstm": "lstm = LSTM(5, 6, bidirectional=true)", "gru": "gru = GRU(5, 6, bidirectional=true)"}
            loops = {"lstm": "for lstm2_xt in lstm2_xw", "gru": "for gru2_reverse_xt in reversed(gru2_reverse_xw)"}
            if name in modules and (modules[name] not in text or loops[name] not in text or
                                    (name == "gru" and "where(Trilu" not in text)):
                print(text)
                checks.failures.append(f"{name}: module and loop")
            if name == "normmlp" and opset == 17 and "LayerNorm(32, eps=1e-06)" not in text:
                print(text)
                checks.failures.append("normmlp: LayerNorm module")

    # weights in an external data file beside the model; then that file missing
    ext = os.path.join(t, "external")
    os.mkdir(ext)
    m = onnx.load(os.path.join(t, "mlp17.onnx"))
    onnx.save_model(m, os.path.join(ext, "mlp.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="mlp.weights", size_threshold=0)
    out = os.path.join(t, "external_out.npy")
    etch("run", os.path.join(ext, "mlp.onnx"), "-D", "batch=4", "--input", os.path.join(t, "mlp_x.npy"), "-o", out)
    want = st_read(os.path.join(t, "mlp17.safetensors"))  # the same weights, imported from inside the file
    stored = os.path.join(t, "external.safetensors")
    etch("import", os.path.join(ext, "mlp.onnx"), "-D", "batch=4", "-o", os.path.join(t, "external.etch"))
    got = st_read(stored)
    same = sorted(got) == sorted(want) and all(torch.equal(got[k], want[k]) for k in want)
    print(f"{'ok' if same else 'FAIL':4} external data: the weights equal the embedded ones")
    if not same:
        checks.failures.append("external data")
    os.remove(os.path.join(ext, "mlp.weights"))
    r = subprocess.run([ETCH, "run", os.path.join(ext, "mlp.onnx"), "-D", "batch=4", "--input",
                        os.path.join(t, "mlp_x.npy"), "-o", out + "2"], capture_output=True, text=True)
    missing = r.returncode == 1 and "cannot open its external data file" in r.stderr and "mlp.weights" in r.stderr
    print(f"{'ok' if missing else 'FAIL':4} external data missing: {r.stderr.strip()}")
    if not missing or os.path.exists(out + "2"):
        checks.failures.append("external data missing")
    checks.finish()
