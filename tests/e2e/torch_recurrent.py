"""PyTorch cross-check of the recurrent layers of nn.etch (RNN, LSTM, GRU),
run by test_torch_recurrent.sh.

Each model is written once in etch and once with torch.nn on the same weights
(PyTorch initializes them; its state_dict, written as safetensors, loads into
etch unchanged). The recurrences are etch 'for' loops (one scan node each);
the stacked case feeds one loop's per-step outputs into another, so the
gradient also flows through a loop's sequence input. The deep cases use
num_layers, bidirectional and batch_first (torch's own layer on one side,
nn.etch's RNNLayer_ stack on the other; the state_dict names must match
exactly, and h_n/c_n are checked through a linear layer over all of them).
For each model:
1. the forward, `etch run` compiled and --eager, against torch;
2. the loss and every gradient of the compiled `grad` entry (the backward
   loops run in reverse) against torch.autograd;
3. etch's written weights load back into the torch module with strict=True.
PyTorch runs in float64 on the float32 weights and inputs.
"""
import tempfile

import torch

from etch_test_util import Checks, crosscheck_classifier

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


class Deep(torch.nn.Module):
    """torch.nn.<kind>(E, H, **kw); the output's time mean through fc and
    every final state (h_n, plus c_n for the LSTM), flattened, through fh."""

    def __init__(self, kind, **kw):
        super().__init__()
        self.kind, self.batch_first = kind, kw.get("batch_first", False)
        self.rnn = getattr(torch.nn, kind)(E, H, **kw)
        d, layers = (2 if kw.get("bidirectional") else 1), kw.get("num_layers", 1)
        self.fc = torch.nn.Linear(d * H, 3)
        self.fh = torch.nn.Linear(d * layers * H, 3)

    def forward(self, x):
        out, state = self.rnn(x if self.batch_first else x.transpose(0, 1))
        states = state[0] + state[1] if self.kind == "LSTM" else state
        return self.fc(out.mean(1 if self.batch_first else 0)) + self.fh(states.transpose(0, 1).reshape(B, -1))


def deep_case(name, kind, etch_args, **kw):
    """A Deep model and its etch twin: `kind(E, H, etch_args)`."""
    d, layers = (2 if kw.get("bidirectional") else 1), kw.get("num_layers", 1)
    if kw.get("batch_first"):
        x, time_dim = "x", 1
    else:
        x, time_dim = "permute(x, [1, 0, 2])", 0
    states = "h + c" if kind == "LSTM" else "h"
    unpack = "o, h, c" if kind == "LSTM" else "o, h"
    src = f"""
const B = {B}
model Net {{
  rnn = {kind}({E}, {H}, {etch_args})
  fc = Linear({d * H}, 3)
  fh = Linear({d * layers * H}, 3)
  fn forward(x: f32[B, {T}, {E}]) -> f32[B, 3] {{
    let {unpack} = rnn({x})
    return fc(mean(o, dim={time_dim})) + fh(reshape(permute({states}, [1, 0, 2]), [B, {d * layers * H}]))
  }}
}}
train {{
  loss = cross_entropy(Net(x), y)
  optimizer = sgd(lr = 0.1)
}}
"""
    return name, src, lambda: Deep(kind, **kw)


DEEP = [
    deep_case("lstm_2layer_bidir", "LSTM", "num_layers = 2, bidirectional = true, batch_first = true",
              num_layers=2, bidirectional=True, batch_first=True),
    deep_case("gru_2layer", "GRU", "num_layers = 2", num_layers=2),
    deep_case("rnn_bidir", "RNN", "bidirectional = true, batch_first = true", bidirectional=True, batch_first=True),
    deep_case("rnn_relu_3layer_bidir_nobias", "RNN", "use_relu = true, bias = false, num_layers = 3, bidirectional = true",
              nonlinearity="relu", bias=False, num_layers=3, bidirectional=True),
]


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


with tempfile.TemporaryDirectory() as t:
    for name, layers, combine, make_model in CASES:
        state = {k: v.clone() for k, v in make_model().state_dict().items()}
        crosscheck_classifier(checks, t, name, etch_src(layers, combine), make_model, state, torch.randn(B, T, E), 3)
    for name, src, make_model in DEEP:
        state = {k: v.clone() for k, v in make_model().state_dict().items()}
        crosscheck_classifier(checks, t, name, src, make_model, state, torch.randn(B, T, E), 3)

checks.finish()
