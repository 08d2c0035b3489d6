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
import ctypes
import os
import sys
import tempfile

import numpy as np
import torch

from etch_test_util import Checks, run, st_read, st_write

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
    model_path = os.path.join(t, name + ".etch")
    open(model_path, "w").write(etch_src(body))
    net = make_model()
    state = {k: v.clone() for k, v in net.state_dict().items()}
    with torch.no_grad():  # biases that are not the initial zeros
        for k in state:
            if k.endswith("bias"):
                state[k] = torch.randn_like(state[k]) * 0.1
    wpath = os.path.join(t, name + ".safetensors")
    st_write(wpath, state)

    ref = make_model()
    ref.load_state_dict(state)
    ref = ref.double().eval()
    x = torch.randn(B, T, E)
    xpath = os.path.join(t, name + "_x.npy")
    np.save(xpath, x.numpy())
    want = ref(x.double()).detach().numpy()
    for mode in ([], ["--eager"]):
        out = os.path.join(t, name + "_out.npy")
        run("run", model_path, "--weights", wpath, "--input", xpath, "-o", out, *mode)
        checks.check(f"{name}: forward (eval) " + ("eager" if mode else "compiled"), np.load(out), want, 1e-5)

    build = os.path.join(t, "build_" + name)
    run("build", model_path, "--train", "--weights", wpath, "-o", build)
    lib = ctypes.CDLL(os.path.join(build, "libnet.so"))
    err = ctypes.create_string_buffer(1024)
    if lib.net_load(wpath.encode(), 0, err, 1024) != 0:
        sys.exit("net_load: " + err.value.decode())
    y = torch.randint(0, 3, (B,))
    loss = torch.nn.functional.cross_entropy(ref.train()(x.double()), y)
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
    crosscheck("mha", f"blk = MultiheadAttention({E}, {H})", lambda: MHA(False), t)
    crosscheck("mha_causal", f"blk = MultiheadAttention({E}, {H}, causal = true)", lambda: MHA(True), t)
    crosscheck("pre_gelu_causal",
               f"blk = TransformerEncoderLayer({E}, {H}, {F}, dropout = 0.0, use_gelu = true, causal = true)",
               lambda: Layer(True, "gelu", True), t)
    crosscheck("post_relu", f"blk = TransformerEncoderLayer({E}, {H}, {F}, dropout = 0.0, norm_first = false)",
               lambda: Layer(False, "relu", False), t)

checks.finish()
