"""Helpers shared by the PyTorch cross-check scripts in tests/e2e (imported
from the script's directory; not a test itself):
  - st_write / st_read: safetensors_np on torch tensors (F32, F64, I64);
  - rel: max|a - b| / max|b|, the relative error every cross-check reports;
  - Checks: records and prints ok/FAIL lines against a tolerance and ends the
    script with exit status 1 if any failed;
  - run: the etch tool ($ETCH) with its stdout discarded;
  - CompiledNet: a library built by `etch build --train` (libnet.so), loaded
    with ctypes: load/save weights, call an entry's _v form;
  - crosscheck_classifier: one etch model against its torch.nn twin on the
    same weights: forward (compiled and eager), loss and every gradient,
    weights loading back;
  - MlpNet: samples/mlp.etch's network as a torch.nn module.
"""
import ctypes
import os
import subprocess
import sys

import numpy as np
import torch

import safetensors_np

def st_write(path, tensors):
    """path <- {name: torch tensor} as safetensors (safetensors_np.write)."""
    safetensors_np.write(path, {k: t.detach().cpu().contiguous().numpy() for k, t in tensors.items()})


def st_read(path):
    """Every tensor of a safetensors file, as torch tensors."""
    return {k: torch.from_numpy(a) for k, a in safetensors_np.read(path).items()}


def rel(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


class Checks:
    """check(what, a, b, tol) prints one line (the label padded to `width`) and
    records a failure when rel(a, b) > tol; finish() reports and exits."""

    def __init__(self, width):
        self.width = width
        self.failures = []

    def check(self, what, a, b, tol):
        r = rel(a, b)
        status = "ok" if r <= tol else "FAIL"  # a NaN error fails too
        print(f"{status:4} {what:{self.width}} rel err {r:.2e} (tol {tol:g})")
        if not r <= tol:
            self.failures.append(what)

    def finish(self):
        failures = self.failures
        print(f"{len(failures)} failed" if failures else "all cross-checks passed")
        sys.exit(1 if failures else 0)


class MlpNet(torch.nn.Module):
    """samples/mlp.etch: flatten, Linear(784, 128), ReLU, Linear(128, 10)."""

    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(784, 128)
        self.fc2 = torch.nn.Linear(128, 10)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(torch.flatten(x, 1))))


def run(*args):
    subprocess.run([os.environ["ETCH"], *args], check=True, stdout=subprocess.DEVNULL)


class CompiledNet:
    def __init__(self, build):
        self.lib = ctypes.CDLL(os.path.join(build, "libnet.so"))
        self.err = ctypes.create_string_buffer(1024)

    def load(self, path):
        if self.lib.net_load(path.encode(), 0, self.err, 1024) != 0:
            sys.exit("net_load: " + self.err.value.decode())

    def save(self, path):
        if self.lib.net_save(path.encode(), 0, self.err, 1024) != 0:
            sys.exit("net_save: " + self.err.value.decode())

    def call(self, entry, inputs, outputs):
        ins = (ctypes.c_void_p * len(inputs))(*[a.ctypes.data for a in inputs])
        outs = (ctypes.c_void_p * len(outputs))(*[a.ctypes.data for a in outputs])
        getattr(self.lib, entry)(ins, outs)


def crosscheck_classifier(checks, t, name, src, make_model, state, x, classes, grad_tol=1e-5):
    """`src` (an etch file whose train block is cross_entropy(Net(x), y)) and
    make_model() (its torch.nn twin) on the weights `state` (written as
    safetensors, loaded unchanged by etch): 1. the forward in eval mode,
    compiled (the `forward` entry of the one library built here: a second
    compile for `etch run` doubled these scripts' time, and the CLI path is
    checked by the other e2e tests) and `etch run --eager`, against torch in
    float64; 2. the loss and every gradient of the compiled `grad` entry
    against torch.autograd (in train mode; the models use no dropout); 3. the
    weights etch writes load back into the torch module with strict=True."""
    model_path = os.path.join(t, name + ".etch")
    open(model_path, "w").write(src)
    wpath = os.path.join(t, name + ".safetensors")
    st_write(wpath, state)
    ref = make_model()
    ref.load_state_dict(state)
    ref = ref.double().eval()
    xpath = os.path.join(t, name + "_x.npy")
    np.save(xpath, x.numpy())
    want = ref(x.double()).detach().numpy()
    out = os.path.join(t, name + "_out.npy")
    run("run", model_path, "--weights", wpath, "--input", xpath, "-o", out, "--eager")
    checks.check(f"{name}: forward eager", np.load(out), want, 1e-5)

    build = os.path.join(t, "build_" + name)
    run("build", model_path, "--train", "--weights", wpath, "-o", build)
    net = CompiledNet(build)
    net.load(wpath)
    got = np.zeros(want.shape, np.float32)
    net.call("net_forward_v", [x.numpy().copy()], [got])
    checks.check(f"{name}: forward compiled", got, want, 1e-5)
    y = torch.randint(0, classes, (x.shape[0],))
    loss = torch.nn.functional.cross_entropy(ref.train()(x.double()), y)
    loss.backward()
    outs = [np.zeros((), np.float32)] + [np.zeros(p.shape, np.float32) for p in ref.parameters()]
    net.call("net_grad_v", [x.numpy().copy(), y.numpy().astype(np.int64).copy()], outs)
    checks.check(f"{name}: loss", outs[0], loss.item(), 1e-5)
    for (pname, p), g in zip(ref.named_parameters(), outs[1:]):
        checks.check(f"{name}: grad {pname}", g, p.grad.numpy(), grad_tol)

    back = make_model()
    back.load_state_dict(st_read(os.path.join(build, "Net.safetensors")), strict=True)
