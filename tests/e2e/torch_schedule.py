"""PyTorch cross-check of learning-rate schedules and gradient clipping (run
by test_torch_schedule.sh). A small MLP's train block with each setting is
built with `etch build --train`; its compiled train_step runs 7 steps
(called through ctypes) from weights PyTorch initialized, and the weights
after every step must match torch.optim driven the PyTorch way:
  - lr_schedule = step(step_size, gamma): torch.optim.lr_scheduler.StepLR,
    scheduler.step() after every optimizer step;
  - lr_schedule = cosine(warmup, total, min_lr): LambdaLR with transformers'
    cosine-with-warmup factor (floored at min_lr / lr), held at min_lr after
    `total` steps (7 steps run past total = 5);
  - clip_grad_norm = C: torch.nn.utils.clip_grad_norm_(params, C) between
    backward() and step() (C well below the gradients' norm, so it clips).
Relative errors are max|etch - torch| / max|torch| per tensor.
"""
import math
import os
import tempfile

import numpy as np
import torch

from etch_test_util import Checks, CompiledNet, run, st_read, st_write

B, IN, HID, C, STEPS = 8, 20, 32, 5, 7
torch.manual_seed(0)
checks = Checks(52)

SRC = """
model Net {
  fc1 = Linear(20, 32)
  fc2 = Linear(32, 5)
  fn forward(x: f32[8, 20]) -> f32[8, 5] { return fc2(tanh(fc1(x))) }
}
train {
  loss = cross_entropy(Net(x), y)
  optimizer = OPTIMIZER
  EXTRA
}
"""


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(IN, HID)
        self.fc2 = torch.nn.Linear(HID, C)

    def forward(self, x):
        return self.fc2(torch.tanh(self.fc1(x)))


def cosine_factor(warmup, total, min_rate):
    def f(s):
        if s < warmup:
            return s / max(1, warmup)
        p = min(1.0, (s - warmup) / max(1, total - warmup))
        return min_rate + (1 - min_rate) * 0.5 * (1 + math.cos(math.pi * p))
    return f


CASES = [
    ("sgd momentum, step(2, 0.5)", "sgd(lr = 0.1, momentum = 0.9)", "lr_schedule = step(step_size = 2, gamma = 0.5)",
     lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9), lambda o: torch.optim.lr_scheduler.StepLR(o, 2, 0.5), None),
    ("adam, cosine(2, 5, 1e-4)", "adam(lr = 0.01)", "lr_schedule = cosine(warmup = 2, total = 5, min_lr = 1e-4)",
     lambda p: torch.optim.Adam(p, lr=0.01),
     lambda o: torch.optim.lr_scheduler.LambdaLR(o, cosine_factor(2, 5, 1e-4 / 0.01)), None),
    ("sgd, clip 0.1", "sgd(lr = 0.5)", "clip_grad_norm = 0.1", lambda p: torch.optim.SGD(p, lr=0.5), None, 0.1),
    ("adamw, cosine(0, 4), clip 0.05", "adamw(lr = 0.01, weight_decay = 0.1)",
     "lr_schedule = cosine(warmup = 0, total = 4)\n  clip_grad_norm = 0.05",
     lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1),
     lambda o: torch.optim.lr_scheduler.LambdaLR(o, cosine_factor(0, 4, 0.0)), 0.05),
]

with tempfile.TemporaryDirectory() as t:
    net = Net()
    wpath = os.path.join(t, "init.safetensors")
    st_write(wpath, net.state_dict())
    batches = [(torch.randn(B, IN), torch.randint(0, C, (B,))) for _ in range(STEPS)]
    for k, (label, opt_src, extra, make_opt, make_sched, clip) in enumerate(CASES):
        path = os.path.join(t, f"case{k}.etch")
        open(path, "w").write(SRC.replace("OPTIMIZER", opt_src).replace("EXTRA", extra))
        build = os.path.join(t, f"build{k}")
        run("build", path, "--train", "-o", build)
        lib = CompiledNet(build)
        lib.load(wpath)
        ref = Net()
        ref.load_state_dict(net.state_dict())
        opt = make_opt(ref.parameters())
        sched = make_sched(opt) if make_sched else None
        clipped = False
        for step, (xb, yb) in enumerate(batches):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(ref(xb), yb)
            loss.backward()
            if clip:
                clipped |= float(torch.nn.utils.clip_grad_norm_(ref.parameters(), clip)) > clip
            opt.step()
            if sched:
                sched.step()
            got_loss = np.zeros((), np.float32)
            lib.call("net_train_step_v", [xb.numpy().copy(), yb.numpy().astype(np.int64).copy()], [got_loss])
            checks.check(f"{label}: loss at step {step}", got_loss, loss.item(), 1e-5)
        assert clip is None or clipped, "the clipping case must clip"
        after = os.path.join(t, f"after{k}.safetensors")
        lib.save(after)
        got = st_read(after)
        for name, p in ref.state_dict().items():
            checks.check(f"{label}: {name} after {STEPS}", got[name].numpy(), p.numpy(), 1e-4)

checks.finish()
