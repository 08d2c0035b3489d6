"""PyTorch cross-check of the layer builtins (run by test_torch_layers.sh).

Two small models, each written once in etch and once with torch.nn on the
same weights (PyTorch initializes them; its state_dict, with random running
statistics, is written to a safetensors file and loaded by etch):
  seq: Embedding -> LayerNorm -> GELU -> BatchNorm1d over [N, C, L] -> mean -> Linear
  img: BatchNorm2d over NCHW -> LeakyReLU(0.2) -> flatten -> Linear
For each:
  1. forward in inference mode (running statistics), `etch run` compiled and
     --eager, against model.eval();
  2. the loss and every gradient of the compiled `grad` entry (training mode:
     batch statistics) against torch.autograd in model.train();
  3. after 3 compiled training steps of SGD with momentum: every weight,
     running_mean, running_var and num_batches_tracked against torch.optim,
     and etch's saved file loads back into the torch model.
Relative errors are max|etch - torch| / max|torch| per tensor. PyTorch runs
in float64 (the weights and inputs are the float32 ones, widened): the
reference is then exact to float32 rounding, and it sidesteps a float32 CPU
BatchNorm backward in some PyTorch builds (Debian's 1.13) that returns wrong
gradients for [N, C, L] inputs.
"""
import os
import tempfile

import numpy as np
import torch

from etch_test_util import Checks, CompiledNet, run, st_read, st_write

B, T, V, D = 8, 5, 12, 6
torch.manual_seed(0)
checks = Checks(55)
check = checks.check

SEQ = f"""
const B = {B}
model Net {{
  emb = Embedding({V}, {D})
  ln = LayerNorm({D})
  act = GELU()
  bn = BatchNorm1d({D})
  fc = Linear({D}, 3)
  fn forward(ids: i64[B, {T}]) -> f32[B, 3] {{
    let h = act(ln(emb(ids)))
    h = bn(transpose(h, 1, 2))
    return fc(mean(h, dim=2))
  }}
}}
train {{
  loss = cross_entropy(Net(x), y)
  optimizer = sgd(lr = 0.1, momentum = 0.9)
  x: i64[B, {T}]
}}
"""

IMG = f"""
const B = {B}
model Net {{
  bn = BatchNorm2d(3, momentum = 0.2)
  act = LeakyReLU(0.2)
  fc = Linear(48, 3)
  fn forward(x: f32[B, 3, 4, 4]) -> f32[B, 3] {{
    return fc(flatten(act(bn(x))))
  }}
}}
train {{
  loss = cross_entropy(Net(x), y)
  optimizer = sgd(lr = 0.1, momentum = 0.9)
}}
"""


class Seq(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(V, D)
        self.ln = torch.nn.LayerNorm(D)
        self.act = torch.nn.GELU()
        self.bn = torch.nn.BatchNorm1d(D)
        self.fc = torch.nn.Linear(D, 3)

    def forward(self, ids):
        h = self.act(self.ln(self.emb(ids)))
        h = self.bn(h.transpose(1, 2))
        return self.fc(h.mean(2))


class Img(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.bn = torch.nn.BatchNorm2d(3, momentum=0.2)
        self.act = torch.nn.LeakyReLU(0.2)
        self.fc = torch.nn.Linear(48, 3)

    def forward(self, x):
        return self.fc(torch.flatten(self.act(self.bn(x)), 1))


def wide(x):
    return x.double() if x.is_floating_point() else x


def reference(make_model, state):
    """The torch model on the given float32 state, widened to float64, in training mode."""
    ref = make_model()
    ref.load_state_dict(state)
    return ref.double().train()


def crosscheck(name, src, make_model, make_x, t):
    model_path = os.path.join(t, name + ".etch")
    open(model_path, "w").write(src)
    net = make_model()
    with torch.no_grad():  # running statistics that are not the initial ones
        net.bn.running_mean.copy_(torch.randn_like(net.bn.running_mean) * 0.3)
        net.bn.running_var.copy_(torch.rand_like(net.bn.running_var) + 0.5)
        net.bn.num_batches_tracked.fill_(4)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    wpath = os.path.join(t, name + ".safetensors")
    st_write(wpath, state)

    # 1. inference: running statistics
    x = make_x()
    xpath = os.path.join(t, name + "_x.npy")
    np.save(xpath, x.numpy())
    net.eval()
    want = net.double()(wide(x)).detach().numpy()
    for mode in ([], ["--eager"]):
        out = os.path.join(t, name + "_out.npy")
        run("run", model_path, "--weights", wpath, "--input", xpath, "-o", out, *mode)
        check(f"{name}: forward (eval) " + ("eager" if mode else "compiled"), np.load(out), want, 1e-5)

    # 2-3. the compiled grad and train_step entries through ctypes
    build = os.path.join(t, "build_" + name)
    run("build", model_path, "--train", "-o", build)
    lib = CompiledNet(build)
    call = lib.call

    def load():
        lib.load(wpath)

    load()
    y = torch.randint(0, 3, (B,))
    ref = reference(make_model, state)
    loss = torch.nn.functional.cross_entropy(ref(wide(x)), y)
    loss.backward()
    outs = [np.zeros((), np.float32)] + [np.zeros(p.shape, np.float32) for p in ref.parameters()]
    call("net_grad_v", [x.numpy().copy(), y.numpy().astype(np.int64).copy()], outs)
    check(f"{name}: loss (train mode)", outs[0], loss.item(), 1e-5)
    for (pname, p), g in zip(ref.named_parameters(), outs[1:]):
        check(f"{name}: grad {pname}", g, p.grad.numpy(), 1e-5)

    load()  # the grad entry updated the running statistics, as a train-mode forward does
    ref = reference(make_model, state)
    opt = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
    for step in range(3):
        xb, yb = make_x(), torch.randint(0, 3, (B,))
        opt.zero_grad()
        torch.nn.functional.cross_entropy(ref(wide(xb)), yb).backward()
        opt.step()
        loss = np.zeros((), np.float32)
        call("net_train_step_v", [xb.numpy().copy(), yb.numpy().astype(np.int64).copy()], [loss])
    after = os.path.join(t, name + "_after.safetensors")
    lib.save(after)
    got = st_read(after)
    for k, v in ref.state_dict().items():
        check(f"{name}: {k} after 3 steps", got[k].numpy(), v.numpy(), 1e-5)
    assert got["bn.num_batches_tracked"].dtype == torch.int64
    back = make_model()
    back.load_state_dict(got)  # etch's file loads into PyTorch unchanged


with tempfile.TemporaryDirectory() as t:
    crosscheck("seq", SEQ, Seq, lambda: torch.randint(0, V, (B, T)), t)
    crosscheck("img", IMG, Img, lambda: torch.randn(B, 3, 4, 4) * 2 + 0.5, t)

checks.finish()
