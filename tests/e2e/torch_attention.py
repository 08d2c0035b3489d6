"""PyTorch cross-check of MultiheadAttention and TransformerEncoderLayer from
nn.etch (run by test_torch_attention.sh).

Each model is written once in etch and once with torch.nn on the same weights
(PyTorch initializes them; its state_dict is written to a safetensors file that
etch loads unchanged, so names, shapes and order agree):
  mha, mha_causal: MultiheadAttention(batch_first) -> mean over T -> Linear
  pre_gelu_causal: TransformerEncoderLayer(norm_first, gelu, causal mask) -> mean -> Linear
  post_relu:       TransformerEncoderLayer(post-norm, relu) -> mean -> Linear
For each: 1. the forward in eval mode, `etch run` compiled and --eager,
against torch; 2. the loss and every gradient of the compiled `grad` entry
against torch.autograd (dropout 0, so training and eval agree); 3. the weights
etch writes load back into the torch module with strict=True. PyTorch runs
in float64 on the float32 weights and inputs; relative errors are
max|etch - torch| / max|torch| per tensor.
"""
import tempfile

import torch

from etch_test_util import Checks, crosscheck_classifier

B, T, E, H, F = 4, 6, 8, 2, 16
torch.manual_seed(0)
checks = Checks(60)


def etch_src(body):
    return f"""
const B = {B}
model Net {{
  {body}
  fc = Linear({E}, 3)
  fn forward(x: f32[B, {T}, {E}]) -> f32[B, 3] {{ return fc(mean(blk(x), dim=1)) }}
}}
train {{
  loss = cross_entropy(Net(x), y)
  optimizer = sgd(lr = 0.1)
}}
"""


def causal_mask():
    return torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)  # True: not allowed to attend


class MHA(torch.nn.Module):
    def __init__(self, causal):
        super().__init__()
        self.causal = causal
        self.blk = torch.nn.MultiheadAttention(E, H, batch_first=True)
        self.fc = torch.nn.Linear(E, 3)

    def forward(self, x):
        m = causal_mask() if self.causal else None
        return self.fc(self.blk(x, x, x, attn_mask=m, need_weights=False)[0].mean(1))


class Layer(torch.nn.Module):
    def __init__(self, norm_first, act, causal):
        super().__init__()
        self.causal = causal
        self.blk = torch.nn.TransformerEncoderLayer(E, H, F, dropout=0.0, activation=act, batch_first=True,
                                                    norm_first=norm_first)
        self.fc = torch.nn.Linear(E, 3)

    def forward(self, x):
        return self.fc(self.blk(x, src_mask=causal_mask() if self.causal else None).mean(1))


def crosscheck(name, body, make_model, t):
    state = {k: v.clone() for k, v in make_model().state_dict().items()}
    with torch.no_grad():  # biases that are not the initial zeros
        for k in state:
            if k.endswith("bias"):
                state[k] = torch.randn_like(state[k]) * 0.1
    crosscheck_classifier(checks, t, name, etch_src(body), make_model, state, torch.randn(B, T, E), 3)


with tempfile.TemporaryDirectory() as t:
    crosscheck("mha", f"blk = MultiheadAttention({E}, {H})", lambda: MHA(False), t)
    crosscheck("mha_causal", f"blk = MultiheadAttention({E}, {H}, causal = true)", lambda: MHA(True), t)
    crosscheck("pre_gelu_causal",
               f"blk = TransformerEncoderLayer({E}, {H}, {F}, dropout = 0.0, use_gelu = true, causal = true)",
               lambda: Layer(True, "gelu", True), t)
    crosscheck("post_relu", f"blk = TransformerEncoderLayer({E}, {H}, {F}, dropout = 0.0, norm_first = false)",
               lambda: Layer(False, "relu", False), t)

checks.finish()
