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

checks.finish()
