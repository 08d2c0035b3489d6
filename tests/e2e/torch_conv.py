"""PyTorch cross-check of convolution and pooling (run by test_torch_conv.sh).

Two models, each also written here with torch.nn:
  - samples/lenet.etch (LeNet-5: Conv2d with padding, ReLU, MaxPool2d);
  - a model written below that covers the rest of the attributes: stride,
    dilation, groups, rectangular kernels, AvgPool2d with padding (PyTorch's
    count_include_pad=True), overlapping padded MaxPool2d, tanh.
For each, on weights PyTorch initialized and wrote to a safetensors file:
  1. forward with `etch run`, compiled and --eager, against the torch module;
  2. the loss and every gradient of the compiled `grad` entry (through ctypes)
     against torch.autograd;
  3. LeNet only: the weights after 3 compiled steps of SGD with momentum
     against torch.optim (the sample trains with Adam; Adam's update
     m / (sqrt(v) + eps) magnifies float32 rounding in near-zero gradients,
     and torch_crosscheck.py already checks etch's Adam against PyTorch's).
Relative errors are max|etch - torch| / max|torch| per tensor.
"""
import os
import tempfile

import numpy as np
import torch

from etch_test_util import Checks, CompiledNet, run, st_read, st_write

SRC = os.environ["ETCH_SOURCE_DIR"]
LENET = os.path.join(SRC, "samples", "lenet.etch")
B = 8
torch.manual_seed(0)
checks = Checks(50)
check = checks.check


class LeNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 6, 5, padding=2)
        self.pool = torch.nn.MaxPool2d(2)
        self.conv2 = torch.nn.Conv2d(6, 16, 5)
        self.fc1 = torch.nn.Linear(400, 120)
        self.fc2 = torch.nn.Linear(120, 84)
        self.fc3 = torch.nn.Linear(84, 10)

    def forward(self, x):
        h = self.pool(torch.relu(self.conv1((x - 0.2860) / 0.3530)))
        h = self.pool(torch.relu(self.conv2(h)))
        h = torch.relu(self.fc1(torch.flatten(h, 1)))
        return self.fc3(torch.relu(self.fc2(h)))


VARIANTS_SRC = """
const B = 8
model Net {
  a = Conv2d(1, 4, [3, 2], stride=[2, 1], padding=[1, 2], dilation=[1, 2])
  b = Conv2d(4, 6, 3, padding=1, groups=2, bias=false)
  c = Conv2d(6, 6, 3, stride=2, groups=6)
  avg = AvgPool2d(3, stride=2, padding=1)
  mp = MaxPool2d([3, 2], stride=[1, 2], padding=[1, 0])
  fc = Linear(6 * 3 * 3, 10)
  fn forward(x: f32[B, 1, 28, 28]) -> f32[B, 10] {
    let h = tanh(a(x))
    h = avg(relu(b(h)))
    h = mp(c(h))
    return fc(flatten(h, 1))
  }
}
train {
  loss = cross_entropy(Net(x), y)
  optimizer = adam(lr = 0.001)
  batch = B
}
"""


class Variants(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Conv2d(1, 4, (3, 2), stride=(2, 1), padding=(1, 2), dilation=(1, 2))
        self.b = torch.nn.Conv2d(4, 6, 3, padding=1, groups=2, bias=False)
        self.c = torch.nn.Conv2d(6, 6, 3, stride=2, groups=6)
        self.avg = torch.nn.AvgPool2d(3, stride=2, padding=1)
        self.mp = torch.nn.MaxPool2d((3, 2), stride=(1, 2), padding=(1, 0))
        self.fc = torch.nn.Linear(6 * 3 * 3, 10)

    def forward(self, x):
        h = torch.tanh(self.a(x))
        h = self.avg(torch.relu(self.b(h)))
        h = self.mp(self.c(h))
        return self.fc(torch.flatten(h, 1))


def cross_check(t, label, path, make, steps):
    net = make()
    wpath = os.path.join(t, label + ".safetensors")
    st_write(wpath, net.state_dict())
    x = torch.rand(B, 1, 28, 28)
    y = torch.randint(0, 10, (B,))
    np.save(os.path.join(t, "x.npy"), x.numpy())
    want = net(x).detach().numpy()
    for mode in ([], ["--eager"]):
        out = os.path.join(t, "out.npy")
        run("run", path, "-D", f"B={B}", "--weights", wpath, "--input", os.path.join(t, "x.npy"), "-o", out, *mode)
        check(f"{label}: forward " + ("eager" if mode else "compiled"), np.load(out), want, 1e-5)

    build = os.path.join(t, "build_" + label)
    run("build", path, "-D", f"B={B}", "--train", "-o", build)
    lib = CompiledNet(build)
    lib.load(wpath)
    call = lib.call

    ref = make()
    ref.load_state_dict(net.state_dict())
    loss = torch.nn.functional.cross_entropy(ref(x), y)
    loss.backward()
    outs = [np.zeros((), np.float32)] + [np.zeros(p.shape, np.float32) for p in ref.parameters()]
    call("net_grad_v", [x.numpy().copy(), y.numpy().astype(np.int64).copy()], outs)
    check(f"{label}: loss", outs[0], loss.item(), 1e-5)
    for (name, p), g in zip(ref.named_parameters(), outs[1:]):
        check(f"{label}: grad {name}", g, p.grad.numpy(), 1e-4)

    if not steps:
        return
    ref = make()
    ref.load_state_dict(net.state_dict())
    opt = torch.optim.SGD(ref.parameters(), lr=0.01, momentum=0.9)
    for _ in range(steps):
        xb, yb = torch.rand(B, 1, 28, 28), torch.randint(0, 10, (B,))
        opt.zero_grad()
        torch.nn.functional.cross_entropy(ref(xb), yb).backward()
        opt.step()
        call("net_train_step_v", [xb.numpy().copy(), yb.numpy().astype(np.int64).copy()], [np.zeros((), np.float32)])
    after = os.path.join(t, "after.safetensors")
    lib.save(after)
    got = st_read(after)
    for name, p in ref.state_dict().items():
        check(f"{label}: sgd: {name} after {steps} steps", got[name].numpy(), p.numpy(), 1e-4)
    make().load_state_dict(got)  # etch's file loads into PyTorch unchanged


with tempfile.TemporaryDirectory() as t:
    lenet = os.path.join(t, "lenet.etch")
    src = open(LENET).read()
    assert "optimizer = adam(lr = 0.001)" in src
    open(lenet, "w").write(src.replace("optimizer = adam(lr = 0.001)", "optimizer = sgd(lr = 0.01, momentum = 0.9)"))
    cross_check(t, "lenet", lenet, LeNet, 3)
    variants = os.path.join(t, "variants.etch")
    open(variants, "w").write(VARIANTS_SRC)
    cross_check(t, "variants", variants, Variants, 0)

checks.finish()
