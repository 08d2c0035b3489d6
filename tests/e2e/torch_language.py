"""PyTorch cross-check of the language features of docs/dsl.md that have a
torch equivalent (run by test_torch_language.sh):
  detach   `h * detach(sigmoid(h))`, `x.detach()`  vs  Tensor.detach();
  index    `h[:, -1]`, `h[:, 1:4, ::2]`, `h[..., 2:]`, integer indices  vs
           the same subscripts in torch (gradients through the slices);
  birnn    a bidirectional RNN as two etch loops, the second
           `for x in reversed(xs)`, with PyTorch's parameter names  vs
           torch.nn.RNN(bidirectional=True);
  randn    mu + exp(0.5 log_var) * randn(...): the noise etch draws is read
           back from `etch run`, then the loss and gradients of the compiled
           `grad` entry (train mode, step 0: the same numbers) vs torch with
           that noise as a constant;
  frozen   `frozen trunk = Trunk()`: 3 SGD steps with momentum vs torch with
           trunk.requires_grad_(False); the trunk's weights stay put;
  gan      a train block with named steps d and g (a GAN: D's loss on
           detach(G(z)), G's through D), each with its own optimizer over its
           own modules (d: SGD with momentum and weight decay over Net.D; g:
           Adam with a parameter group of its own lr for Net.G.fc1), run
           alternately for 3 batches vs torch's two optimizers; the latent is
           fed as the train block's y, so both sides see the same noise.
  samples  samples/multitask.etch and samples/vae.etch at batch 4 (-D B=4):
           the forward's outputs, then the loss of 3 Adam steps and the
           weights after them vs torch.optim.Adam. The VAE's noise is
           reproduced here (etch_randn: Philox4x32-10 keyed by the sample's
           randn seeds, counted by the step, Box-Muller as docs/dsl.md
           describes), so torch sees the same eps at every step.
The first three go through crosscheck_classifier (forward compiled and
--eager, loss and every gradient, weights loading back with strict=True).
PyTorch runs in float64 on the float32 weights and inputs.
"""
import os
import tempfile

import numpy as np
import torch

from etch_test_util import Checks, CompiledNet, crosscheck_classifier, run, st_read, st_write

B, T, E, H = 4, 6, 5, 7
torch.manual_seed(0)
checks = Checks(60)


def source(members, forward_sig, body):
    return f"""
const B = {B}
{members}
  fn forward({forward_sig}) -> f32[B, 3] {{
    {body}
  }}
}}
train {{
  loss = cross_entropy(Net(x), y)
  optimizer = sgd(lr = 0.1, momentum = 0.9)
}}
"""


DETACH = source("model Net {\n  fc = Linear(5, 3)", f"x: f32[B, 5]",
                "let h = fc(x)\n    return h * detach(sigmoid(h)) + x[:, 1:4] * fc.bias.detach()")


class Detach(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(5, 3)

    def forward(self, x):
        h = self.fc(x)
        return h * torch.sigmoid(h).detach() + x[:, 1:4] * self.fc.bias.detach()


INDEX = source("model Net {\n  fc1 = Linear(8, 8)\n  fc2 = Linear(6, 3)", f"x: f32[B, 5, 8]",
               """let h = tanh(fc1(x))
    let mid = h[:, 1:4, ::2]
    let feats = h[:, -1][..., 2:] + cat(mid[:, 0, 1:], mid[:, 2, :3], dim = 1) * h[0, -2, 7]
    return fc2(feats)""")


class Index(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(8, 8)
        self.fc2 = torch.nn.Linear(6, 3)

    def forward(self, x):
        h = torch.tanh(self.fc1(x))
        mid = h[:, 1:4, ::2]
        feats = h[:, -1][..., 2:] + torch.cat([mid[:, 0, 1:], mid[:, 2, :3]], dim=1) * h[0, -2, 7]
        return self.fc2(feats)


def rnn_params(suffix):
    return "\n".join(f"  param {n}_l0{suffix}: f32[{s}] = uniform(-k, k)" for n, s in
                     [("weight_ih", f"h, i"), ("weight_hh", "h, h"), ("bias_ih", "h"), ("bias_hh", "h")])


BIRNN = f"""
module BiRNN(i, h) {{
  const k = 1 / sqrt(h)
{rnn_params("")}
{rnn_params("_reverse")}
  fn forward(x) {{            // x: [B, T, i] -> [T, B, 2h], torch's output
    let xs = transpose(x, 0, 1)
    let pf = xs @ transpose(weight_ih_l0) + bias_ih_l0
    let pr = xs @ transpose(weight_ih_l0_reverse) + bias_ih_l0_reverse
    let hf = zeros([x.shape[0], h])
    let hr = zeros([x.shape[0], h])
    let fw = for p in pf {{ hf = tanh(p + hf @ transpose(weight_hh_l0) + bias_hh_l0) yield hf }}
    let bw = for p in reversed(pr) {{
      hr = tanh(p + hr @ transpose(weight_hh_l0_reverse) + bias_hh_l0_reverse)
      yield hr
    }}
    return cat(fw, bw, dim = 2)
  }}
}}
""" + source("model Net {\n  rnn = BiRNN(%d, %d)\n  fc = Linear(%d, 3)" % (E, H, 2 * H), f"x: f32[B, {T}, {E}]",
             f"""let out = rnn(x)
    return fc(cat(out[-1, :, :{H}], out[0, :, {H}:], dim = 1) + mean(out, dim = 0))""")


class BiRNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = torch.nn.RNN(E, H, bidirectional=True)
        self.fc = torch.nn.Linear(2 * H, 3)

    def forward(self, x):
        out, _ = self.rnn(x.transpose(0, 1))
        return self.fc(torch.cat([out[-1, :, :H], out[0, :, H:]], dim=1) + out.mean(0))


def initial_state(make_model):
    return {k: v.clone() for k, v in make_model().state_dict().items()}


def reparameterization(t):
    """etch's noise, read back from the forward, then the grad entry against torch."""
    src = source("model Net {\n  enc = Linear(4, 6)", "x: f32[B, 4]",
                 "let mu, log_var = chunk(enc(x), 2, dim = 1)\n    return mu + exp(0.5 * log_var) * randn([B, 3])")
    enc = torch.nn.Linear(4, 6)
    state = {"enc." + k: v.clone() for k, v in enc.state_dict().items()}
    path, wpath, xpath, out = (os.path.join(t, "vae" + s) for s in (".etch", ".safetensors", "_x.npy", "_out.npy"))
    open(path, "w").write(src)
    st_write(wpath, state)
    x = torch.randn(B, 4)
    np.save(xpath, x.numpy())
    run("run", path, "--weights", wpath, "--input", xpath, "-o", out)
    z = torch.from_numpy(np.load(out)).double()
    run("run", path, "--weights", wpath, "--input", xpath, "-o", out, "--eager")
    checks.check("randn: forward eager vs compiled", np.load(out), z.numpy(), 1e-6)  # the same noise, bit for bit
    enc = enc.double()
    mu, log_var = enc(x.double()).chunk(2, dim=1)
    eps = ((z - mu) / torch.exp(0.5 * log_var)).detach()
    build = os.path.join(t, "build_vae")
    run("build", path, "--train", "--weights", wpath, "-o", build)
    net = CompiledNet(build)
    net.load(wpath)
    y = torch.randint(0, 3, (B,))
    loss = torch.nn.functional.cross_entropy(mu + torch.exp(0.5 * log_var) * eps, y)
    loss.backward()
    outs = [np.zeros((), np.float32)] + [np.zeros(p.shape, np.float32) for p in enc.parameters()]
    net.call("net_grad_v", [x.numpy().copy(), y.numpy().astype(np.int64).copy()], outs)
    checks.check("randn: loss (same noise in train step 0)", outs[0], loss.item(), 1e-5)
    for (name, p), g in zip(enc.named_parameters(), outs[1:]):
        checks.check(f"randn: grad enc.{name} (noise a constant)", g, p.grad.numpy(), 1e-4)


FROZEN = """
const B = %d
module Trunk {
  fc = Linear(6, 6)
  fn forward(x) { return relu(fc(x)) }
}
model Net {
  frozen trunk = Trunk()
  head = Linear(6, 3)
  fn forward(x: f32[B, 6]) -> f32[B, 3] { return head(trunk(x)) }
}
train {
  loss = cross_entropy(Net(x), y)
  optimizer = sgd(lr = 0.1, momentum = 0.9)
}
""" % B


class Frozen(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.trunk = torch.nn.Sequential()
        self.trunk.fc = torch.nn.Linear(6, 6)
        self.head = torch.nn.Linear(6, 3)

    def forward(self, x):
        return self.head(torch.relu(self.trunk.fc(x)))


def train_lib(t, name, src, state, *flags):
    """`etch build --train` of src, loaded with the weights `state`."""
    path, wpath = os.path.join(t, name + ".etch"), os.path.join(t, name + ".safetensors")
    open(path, "w").write(src)
    st_write(wpath, state)
    build = os.path.join(t, "build_" + name)
    run("build", path, "--train", "-o", build, *flags)
    lib = CompiledNet(build)
    lib.load(wpath)
    return lib


def frozen_steps(t):
    net = Frozen()
    state = {k: v.clone() for k, v in net.state_dict().items()}
    lib = train_lib(t, "frozen", FROZEN, state)
    ref = Frozen()
    ref.load_state_dict(state)
    ref = ref.double()
    ref.trunk.requires_grad_(False)
    opt = torch.optim.SGD([p for p in ref.parameters() if p.requires_grad], lr=0.1, momentum=0.9)
    for _ in range(3):
        xb, yb = torch.randn(B, 6), torch.randint(0, 3, (B,))
        opt.zero_grad()
        torch.nn.functional.cross_entropy(ref(xb.double()), yb).backward()
        opt.step()
        loss = np.zeros((), np.float32)
        lib.call("net_train_step_v", [xb.numpy().copy(), yb.numpy().astype(np.int64).copy()], [loss])
    after = os.path.join(t, "frozen_after.safetensors")
    lib.save(after)
    got = st_read(after)
    for k, v in ref.state_dict().items():
        checks.check(f"frozen: {k} after 3 steps", got[k].numpy(), v.numpy(), 1e-5)
    for k in ("trunk.fc.weight", "trunk.fc.bias"):
        checks.check(f"frozen: {k} unchanged", got[k].numpy(), state[k].numpy(), 0)


GAN = """
const B = %d
module Gen {
  fc1 = Linear(3, 8)
  fc2 = Linear(8, 6)
  fn forward(z) { return tanh(fc2(relu(fc1(z)))) }
}
module Disc {
  fc1 = Linear(6, 8)
  fc2 = Linear(8, 1)
  fn forward(x) { return fc2(leaky_relu(fc1(x), 0.2)) }
}
fn softplus(x) { return relu(x) + log(1 + exp(-abs(x))) }
model Net {
  G = Gen()
  D = Disc()
  fn forward(z: f32[B, 3]) -> f32[B, 6] { return G(z) }
}
train {
  x: f32[B, 6]
  y: f32[B, 3]
  step d {
    loss = mean(softplus(-Net.D(x))) + mean(softplus(Net.D(detach(Net.G(y)))))
    optimizer = sgd(Net.D, lr = 0.05, momentum = 0.9, weight_decay = 1e-3)
  }
  step g {
    loss = mean(softplus(-Net.D(Net.G(y))))
    optimizer = adam([group(Net.G.fc1, lr = 1e-2), Net.G.fc2], lr = 5e-3, betas = [0.5, 0.999])
  }
  schedule = [d, g]
}
""" % B


class Gan(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.G = torch.nn.Sequential()
        self.G.fc1, self.G.fc2 = torch.nn.Linear(3, 8), torch.nn.Linear(8, 6)
        self.D = torch.nn.Sequential()
        self.D.fc1, self.D.fc2 = torch.nn.Linear(6, 8), torch.nn.Linear(8, 1)

    def gen(self, z):
        return torch.tanh(self.G.fc2(torch.relu(self.G.fc1(z))))

    def disc(self, x):
        return self.D.fc2(torch.nn.functional.leaky_relu(self.D.fc1(x), 0.2))


def gan_steps(t):
    """3 batches of the schedule [d, g]: losses and every weight vs torch."""
    ref = Gan()
    state = {k: v.clone() for k, v in ref.state_dict().items()}
    lib = train_lib(t, "gan", GAN, state, "--cflags", "-O1")  # tiny shapes: the C compiler's time dominates
    ref = ref.double()
    sp = torch.nn.functional.softplus
    opt_d = torch.optim.SGD(ref.D.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)
    opt_g = torch.optim.Adam([{"params": ref.G.fc1.parameters(), "lr": 1e-2}, {"params": ref.G.fc2.parameters()}],
                             lr=5e-3, betas=(0.5, 0.999))
    for i in range(3):
        x, z = torch.randn(B, 6), torch.randn(B, 3)
        ins = [x.numpy().copy(), z.numpy().copy()]
        opt_d.zero_grad()
        loss_d = sp(-ref.disc(x.double())).mean() + sp(ref.disc(ref.gen(z.double()).detach())).mean()
        loss_d.backward()
        opt_d.step()
        opt_g.zero_grad()
        loss_g = sp(-ref.disc(ref.gen(z.double()))).mean()
        loss_g.backward()
        opt_g.step()
        got_d, got_g = np.zeros((), np.float32), np.zeros((), np.float32)
        lib.call("net_train_step_d_v", ins, [got_d])
        lib.call("net_train_step_g_v", ins, [got_g])
        checks.check(f"gan: loss d, batch {i + 1}", got_d, loss_d.item(), 1e-5)
        checks.check(f"gan: loss g, batch {i + 1}", got_g, loss_g.item(), 1e-5)
    after = os.path.join(t, "gan_after.safetensors")
    lib.save(after)
    got = st_read(after)
    for k, v in ref.state_dict().items():
        checks.check(f"gan: {k} after 3 batches", got[k].numpy(), v.numpy(), 1e-5)


def philox4x32(key, hi, lo):
    """etch_philox4x32 (runtime/rt/philox.c) on arrays of counters lo (uint64)."""
    m = np.uint64(0xFFFFFFFF)
    lo = np.asarray(lo, dtype=np.uint64)
    c0, c1 = lo & m, lo >> np.uint64(32)
    c2, c3 = np.full_like(lo, hi & 0xFFFFFFFF), np.full_like(lo, hi >> 32)
    k0, k1 = np.uint64(key & 0xFFFFFFFF), np.uint64(key >> 32)
    for _ in range(10):
        p0, p1 = np.uint64(0xD2511F53) * c0, np.uint64(0xCD9E8D57) * c2  # 32 x 32 bits: exact in uint64
        c0, c1, c2, c3 = (p1 >> np.uint64(32)) ^ c1 ^ k0, p1 & m, (p0 >> np.uint64(32)) ^ c3 ^ k1, p0 & m
        k0, k1 = (k0 + np.uint64(0x9E3779B9)) & m, (k1 + np.uint64(0xBB67AE85)) & m
    return c0, c1, c2, c3


def etch_randn(shape, seed, step):
    """randn(shape, seed = seed) at a training step (the forward: step 0), as float32:
    element i from the Philox block (seed, step, i / 2), words 2k and 2k + 1 (k = i % 2)."""
    i = np.arange(int(np.prod(shape)), dtype=np.uint64)
    r = philox4x32(seed, step, i // np.uint64(2))
    odd = (i % np.uint64(2)).astype(bool)
    a, b = np.where(odd, r[2], r[0]), np.where(odd, r[3], r[1])
    u = lambda w: (w >> np.uint64(8)).astype(np.float64) / 16777216.0
    z = np.sqrt(-2.0 * np.log(1.0 - u(a))) * np.cos(6.283185307179586476925 * u(b))
    return torch.from_numpy(z.astype(np.float32).reshape(shape))


SB, Z = 4, 20  # the samples' batch here (-D B=4) and the VAE's latent size


class MultiTask(torch.nn.Module):
    """samples/multitask.etch"""

    def __init__(self):
        super().__init__()
        self.trunk1, self.trunk2 = torch.nn.Linear(784, 256), torch.nn.Linear(256, 64)
        self.classify = torch.nn.Linear(64, 10)
        self.decode1, self.decode2 = torch.nn.Linear(64, 256), torch.nn.Linear(256, 784)

    def forward(self, x, step=0):
        h = torch.relu(self.trunk2(torch.relu(self.trunk1(torch.flatten(x, 1)))))
        return self.classify(h), torch.sigmoid(self.decode2(torch.relu(self.decode1(h))))

    def loss(self, x, y, step):
        logits, recon = self(x)
        return torch.nn.functional.cross_entropy(logits, y) + torch.nn.functional.mse_loss(recon, torch.flatten(x, 1))


class VAE(torch.nn.Module):
    """samples/vae.etch, its noise from etch_randn"""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc21, self.fc22 = torch.nn.Linear(784, 400), torch.nn.Linear(400, Z), torch.nn.Linear(400, Z)
        self.fc3, self.fc4 = torch.nn.Linear(Z, 400), torch.nn.Linear(400, 784)

    def encode(self, x):
        h = torch.relu(self.fc1(torch.flatten(x, 1)))
        return self.fc21(h), self.fc22(h)

    def decode(self, z):
        return self.fc4(torch.relu(self.fc3(z)))

    def latent(self, x, step):
        mu, log_var = self.encode(x)
        return mu, log_var, mu + torch.exp(0.5 * log_var) * etch_randn((SB, Z), 1, step).double()

    def forward(self, x, step=0):
        prior = etch_randn((SB, Z), 2, 0).double()
        return torch.sigmoid(self.decode(self.latent(x, step)[2])), torch.sigmoid(self.decode(prior))

    def loss(self, x, y, step):
        mu, log_var, z = self.latent(x, step)
        bce = torch.nn.functional.binary_cross_entropy_with_logits(self.decode(z), torch.flatten(x, 1), reduction="sum")
        return (bce - 0.5 * torch.sum(1 + log_var - mu * mu - torch.exp(log_var))) / SB


def sample_steps(t, name, make_model, n_steps=3):
    """samples/NAME.etch at batch SB against make_model() on the same weights:
    the forward's outputs (eval), then n_steps Adam steps (the sample's lr,
    1e-3) on random batches: each step's loss and the weights after them.
    Seeded here, so its batches do not depend on the checks run before it:
    Adam moves a weight whose gradient is float32 rounding noise (~1e-7 of
    the gradient's scale, exactly 0 in float64) by up to lr, so a batch can
    make one weight differ by ~lr; these seeds' batches do not."""
    torch.manual_seed(sum(map(ord, name)))
    ref = make_model()
    state = initial_state(make_model)
    ref.load_state_dict(state)
    ref = ref.double()
    wpath, build = os.path.join(t, name + ".safetensors"), os.path.join(t, "build_sample_" + name)
    st_write(wpath, state)
    src = os.path.join(os.environ["ETCH_SOURCE_DIR"], "samples", name + ".etch")
    run("build", src, "-D", f"B={SB}", "--train", "--prefix", "net", "--weights", wpath, "--cflags", "-O1", "-o", build)
    net = CompiledNet(build)
    net.load(wpath)
    x = torch.rand(SB, 1, 28, 28)
    want = [o.detach().numpy() for o in ref(x.double())]
    outs = [np.zeros(w.shape, np.float32) for w in want]
    net.call("net_forward_v", [x.numpy().copy()], outs)
    for k, (got, w) in enumerate(zip(outs, want)):
        checks.check(f"{name}: forward output {k}", got, w, 1e-5)
    opt = torch.optim.Adam(ref.parameters(), lr=1e-3)
    for step in range(n_steps):
        xb, yb = torch.rand(SB, 1, 28, 28), torch.randint(0, 10, (SB,))
        opt.zero_grad()
        loss = ref.loss(xb.double(), yb, step)
        loss.backward()
        opt.step()
        got = np.zeros((), np.float32)
        net.call("net_train_step_v", [xb.numpy().copy(), yb.numpy().astype(np.int64).copy()], [got])
        checks.check(f"{name}: loss of Adam step {step}", got, loss.item(), 1e-5)
    after = os.path.join(t, name + "_after.safetensors")
    net.save(after)
    got = st_read(after)
    for k, v in ref.state_dict().items():
        # 1e-3: Adam divides by sqrt(v), so a gradient element near eps (a pixel on a unit barely used)
        # moves by up to lr whatever its size: float32 rounding of such an element shows here
        checks.check(f"{name}: {k} after {n_steps} steps", got[k].numpy(), v.numpy(), 1e-3)


with tempfile.TemporaryDirectory() as t:
    crosscheck_classifier(checks, t, "detach", DETACH, Detach, initial_state(Detach), torch.randn(B, 5), 3)
    crosscheck_classifier(checks, t, "index", INDEX, Index, initial_state(Index), torch.randn(B, 5, 8), 3)
    crosscheck_classifier(checks, t, "birnn", BIRNN, BiRNN, initial_state(BiRNN), torch.randn(B, T, E), 3)
    reparameterization(t)
    frozen_steps(t)
    gan_steps(t)
    sample_steps(t, "multitask", MultiTask)
    sample_steps(t, "vae", VAE)

checks.finish()
