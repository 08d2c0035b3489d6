"""PyTorch on CUDA for bench/cuda_check.sh: the samples' PyTorch twins
(torch_mlp.py's Net; torch_models.py's lenet, autoencoder, lstm, gpt), eager
and torch.compile(mode="reduce-overhead") (CUDA graphs), timed on the GPU.

    torch_cuda.py MODEL BATCH

Prints one line per measurement, for inference at batch 1 and BATCH and one
training step at BATCH (forward, the sample's loss, backward, its twin's
optimizer; under torch.compile the module is compiled, backward and the
optimizer step run as PyTorch runs them):
    torch MODEL WHAT B=N eager_us X compiled_us Y eager_kernels K compiled_kernels L
Times are medians over about a second of calls after warm-up, each call
followed by torch.cuda.synchronize(); the inputs are on the GPU already.
Kernels: the CUDA kernels one call launches (torch.profiler; "-" when the
profiler cannot say). Exits 3 when MODEL has no twin here.
"""
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_mlp  # noqa: E402
import torch_models  # noqa: E402


def median_us(fn, budget=1.0):
    for _ in range(5):
        fn()
    torch.cuda.synchronize()
    times, start = [], time.perf_counter()
    while len(times) < 5 or (time.perf_counter() - start < budget and len(times) < 20000):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2] * 1e6


def kernels(fn):
    try:
        from torch.profiler import ProfilerActivity, profile
        fn()
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            fn()
            torch.cuda.synchronize()
        return str(sum(1 for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA
                       and "memcpy" not in e.name.lower() and "memset" not in e.name.lower()))
    except Exception:  # an old profiler, or no CUPTI: the count is unknown, the timing still stands
        return "-"


def twin(name):
    if name == "mlp":
        return (torch_mlp.Net(), lambda out, x, y: F.cross_entropy(out, y), torch_models.image,
                lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9))
    for n, net, loss_fn, data, _, opt_cls in torch_models.twins():
        if n == name:
            return net, loss_fn, data, lambda p, opt_cls=opt_cls: opt_cls(p, lr=1e-3)
    return None


def measure(name, what, b, eager, compiled):
    """One line; compiled is None without torch.compile (PyTorch 1.x): its columns say "-"."""
    c = f"{median_us(compiled):.1f}" if compiled else "-"
    print(f"torch {name} {what} B={b} eager_us {median_us(eager):.1f} compiled_us {c} eager_kernels {kernels(eager)} "
          f"compiled_kernels {kernels(compiled) if compiled else '-'}", flush=True)


def main():
    name, batch = sys.argv[1], int(sys.argv[2])
    found = twin(name)
    if not found:
        print(f"no PyTorch twin of {name}", file=sys.stderr)
        sys.exit(3)
    net, loss_fn, data, make_opt = found
    dev = torch.device("cuda")
    net = net.to(dev)
    opt = make_opt(net.parameters())
    mark_step = getattr(getattr(torch, "compiler", None), "cudagraph_mark_step_begin", None) or (lambda: None)
    if not hasattr(torch, "compile"):
        print(f"PyTorch {torch.__version__} has no torch.compile: eager only", file=sys.stderr)
    for b in sorted({1, batch}):
        x = data[0](b).to(dev)
        cnet = torch.compile(net, mode="reduce-overhead", dynamic=False) if hasattr(torch, "compile") else None

        def infer(m):
            def run():
                with torch.no_grad():
                    mark_step()
                    m(x)
            return run

        measure(name, "inference", b, infer(net), cnet and infer(cnet))
        if b != batch:
            continue
        y = data[1](b).to(dev)

        def step(m):
            def run():
                mark_step()
                opt.zero_grad(set_to_none=True)
                loss_fn(m(x), x, y).backward()
                opt.step()
            return run

        measure(name, "train_step", b, step(net), cnet and step(cnet))


if __name__ == "__main__":
    main()
