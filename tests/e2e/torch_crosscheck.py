"""PyTorch cross-check of samples/mlp.etch (run by test_torch_crosscheck.sh).

Compares etch against PyTorch on the same weights and batch:
  1. forward: PyTorch's nn.Linear network with weights PyTorch initialized and
     wrote to a safetensors file, run by `etch run` (compiled and --eager);
  2. loss and every gradient of the compiled `grad` entry (called through
     ctypes) against torch.autograd, 1e-5 relative;
  3. the weights after 5 compiled training steps of SGD with momentum, and
     separately of Adam, against torch.optim, 1e-4 relative;
  4. trained weights written by etch load back into PyTorch.
Relative errors are max|etch - torch| / max|torch| per tensor.
"""
import os
import tempfile

import numpy as np
import torch

from etch_test_util import Checks, CompiledNet, MlpNet, run, st_read, st_write

SRC = os.environ["ETCH_SOURCE_DIR"]
MLP = os.path.join(SRC, "samples", "mlp.etch")
B = 8
torch.manual_seed(0)
checks = Checks(45)
check = checks.check


Net = MlpNet


with tempfile.TemporaryDirectory() as t:
    net = Net()
    wpath = os.path.join(t, "torch.safetensors")
    st_write(wpath, net.state_dict())
    x = torch.rand(B, 1, 28, 28)
    y = torch.randint(0, 10, (B,))
    np.save(os.path.join(t, "x.npy"), x.numpy())

    # 1. forward, compiled and eager, on weights PyTorch wrote
    want = net(x).detach().numpy()
    for mode in ([], ["--eager"]):
        out = os.path.join(t, "out.npy")
        run("run", MLP, "-D", f"B={B}", "--weights", wpath, "--input", os.path.join(t, "x.npy"), "-o", out, *mode)
        check("forward " + ("eager" if mode else "compiled"), np.load(out), want, 1e-5)

    # 2-3. the compiled grad and train_step entries through ctypes, per optimizer
    for opt_name, opt_src, make_opt in [
        ("sgd momentum", "sgd(lr = 0.01, momentum = 0.9)", lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9)),
        ("adam", "adam(lr = 0.001)", lambda p: torch.optim.Adam(p, lr=0.001)),
    ]:
        src = open(MLP).read().replace("sgd(lr = 0.01, momentum = 0.9)", opt_src)
        model_path = os.path.join(t, "mlp_opt.etch")
        open(model_path, "w").write(src)
        build = os.path.join(t, "build_" + opt_name.split()[0])
        run("build", model_path, "-D", f"B={B}", "--train", "-o", build)
        lib = CompiledNet(build)
        lib.load(wpath)
        call = lib.call

        xs, ys = x.numpy().copy(), y.numpy().astype(np.int64).copy()
        if opt_name == "sgd momentum":
            ref = Net()
            ref.load_state_dict(net.state_dict())
            loss = torch.nn.functional.cross_entropy(ref(x), y)
            loss.backward()
            outs = [np.zeros((), np.float32)] + [np.zeros(p.shape, np.float32) for p in ref.parameters()]
            call("net_grad_v", [xs, ys], outs)
            check("loss", outs[0], loss.item(), 1e-5)
            for (name, p), g in zip(ref.named_parameters(), outs[1:]):
                check("grad " + name, g, p.grad.numpy(), 1e-5)

        ref = Net()
        ref.load_state_dict(net.state_dict())
        opt = make_opt(ref.parameters())
        for step in range(5):
            xb, yb = torch.rand(B, 1, 28, 28), torch.randint(0, 10, (B,))
            opt.zero_grad()
            torch.nn.functional.cross_entropy(ref(xb), yb).backward()
            opt.step()
            loss = np.zeros((), np.float32)
            call("net_train_step_v", [xb.numpy().copy(), yb.numpy().astype(np.int64).copy()], [loss])
        after = os.path.join(t, "after.safetensors")
        lib.save(after)
        got = st_read(after)
        for name, p in ref.state_dict().items():
            check(f"{opt_name}: {name} after 5 steps", got[name].numpy(), p.numpy(), 1e-4)
        # 4. etch's file loads into PyTorch unchanged
        back = Net()
        back.load_state_dict(got)

checks.finish()
