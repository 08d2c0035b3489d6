"""PyTorch cross-check of the recurrent layers of nn.etch (RNN, LSTM, GRU),
run by test_torch_recurrent.sh.

Each model is written once in etch and once with torch.nn on the same weights
(PyTorch initializes them; its state_dict, written as safetensors, loads into
etch unchanged). The recurrences are etch 'for' loops (one scan node each);
the stacked case feeds one loop's per-step outputs into another, so the
gradient also flows through a loop's sequence input. For each model:
1. the forward, `etch run` compiled and --eager, against torch;
2. the loss and every gradient of the compiled `grad` entry (the backward
   loops run in reverse) against torch.autograd;
3. etch's written weights load back into the torch module with strict=True.
PyTorch runs in float64 on the float32 weights and inputs.
"""
import ctypes
import os
import sys
import tempfile

import numpy as np
import torch

from etch_test_util import Checks, run, st_read, st_write

B, T, E, H = 3, 7, 5, 6
torch.manual_seed(0)
checks = Checks(60)


def etch_src(layers, combine):
    return f"""
const B = {B}
model Net {{
  {layers}
  fc = Linear({H}, 3)
  fn forward(x: f32[B, {T}, {E}]) -> f32[B, 3] {{
    {combine}
  }}
}}
train {{
  loss = cross_entropy(Net(x), y)
  optimizer = sgd(lr = 0.1)
}}
"""


class Single(torch.nn.Module):
    def __init__(self, kind, **kw):
        super().__init__()
        self.kind = kind
        self.rnn = getattr(torch.nn, kind)(E, H, batch_first=True, **kw)
        self.fc = torch.nn.Linear(H, 3)

    def forward(self, x):
        out, state = self.rnn(x)
        h = state[0] if self.kind == "LSTM" else state
        return self.fc(out.mean(1) + h[0])


class Stacked(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = torch.nn.LSTM(E, H, batch_first=True)
        self.rnn2 = torch.nn.GRU(H, H)  # time-major
        self.fc = torch.nn.Linear(H, 3)

    def forward(self, x):
        out, (h, c) = self.rnn(x)
        out2, h2 = self.rnn2(out.transpose(0, 1))
        return self.fc(out2[-1] + c[0])


SINGLE = """let o, h = rnn(x)
    return fc(mean(o, dim=1) + reshape(h, [B, {H}]))""".replace("{H}", str(H))
CASES = [
    ("rnn_tanh", f"rnn = RNN({E}, {H}, batch_first = true)", SINGLE, lambda: Single("RNN")),
    ("rnn_relu", f"rnn = RNN({E}, {H}, use_relu = true, batch_first = true)", SINGLE,
     lambda: Single("RNN", nonlinearity="relu")),
    ("gru", f"rnn = GRU({E}, {H}, batch_first = true)", SINGLE, lambda: Single("GRU")),
    ("lstm", f"rnn = LSTM({E}, {H}, batch_first = true)",
     f"""let o, h, c = rnn(x)
    return fc(mean(o, dim=1) + reshape(h, [B, {H}]))""", lambda: Single("LSTM")),
    ("lstm_gru_stacked", f"rnn = LSTM({E}, {H}, batch_first = true)\n  rnn2 = GRU({H}, {H})",
     f"""let o, h, c = rnn(x)
    let o2, h2 = rnn2(permute(o, [1, 0, 2]))
    return fc(reshape(narrow(o2, 0, {T - 1}, 1), [B, {H}]) + reshape(c, [B, {H}]))""", Stacked),
]


def crosscheck(name, layers, combine, make_model, t):
    model_path = os.path.join(t, name + ".etch")
    open(model_path, "w").write(etch_src(layers, combine))
    net = make_model()
    state = {k: v.clone() for k, v in net.state_dict().items()}
    wpath = os.path.join(t, name + ".safetensors")
    st_write(wpath, state)
    ref = make_model()
    ref.load_state_dict(state)
    ref = ref.double()
    x = torch.randn(B, T, E)
    xpath = os.path.join(t, name + "_x.npy")
    np.save(xpath, x.numpy())
    want = ref(x.double()).detach().numpy()
    for mode in ([], ["--eager"]):
        out = os.path.join(t, name + "_out.npy")
        run("run", model_path, "--weights", wpath, "--input", xpath, "-o", out, *mode)
        checks.check(f"{name}: forward " + ("eager" if mode else "compiled"), np.load(out), want, 1e-5)

    build = os.path.join(t, "build_" + name)
    run("build", model_path, "--train", "--weights", wpath, "-o", build)
    lib = ctypes.CDLL(os.path.join(build, "libnet.so"))
    err = ctypes.create_string_buffer(1024)
    if lib.net_load(wpath.encode(), 0, err, 1024) != 0:
        sys.exit("net_load: " + err.value.decode())
    y = torch.randint(0, 3, (B,))
    loss = torch.nn.functional.cross_entropy(ref(x.double()), y)
    loss.backward()
    outs = [np.zeros((), np.float32)] + [np.zeros(p.shape, np.float32) for p in ref.parameters()]
    ins = [x.numpy().copy(), y.numpy().astype(np.int64).copy()]
    lib.net_grad_v((ctypes.c_void_p * 2)(*[a.ctypes.data for a in ins]),
                   (ctypes.c_void_p * len(outs))(*[a.ctypes.data for a in outs]))
    checks.check(f"{name}: loss", outs[0], loss.item(), 1e-5)
    for (pname, p), g in zip(ref.named_parameters(), outs[1:]):
        checks.check(f"{name}: grad {pname}", g, p.grad.numpy(), 1e-5)

    back = make_model()
    back.load_state_dict(st_read(os.path.join(build, "Net.safetensors")), strict=True)


with tempfile.TemporaryDirectory() as t:
    for case in CASES:
        crosscheck(*case, t)

checks.finish()
