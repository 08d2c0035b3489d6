"""PyTorch eager timings for samples/mlp.etch's network, one thread.

Prints one line per measurement, `torch <what> B=<batch> <median us>`, for
bench/bench_mlp.sh to put next to etch's numbers: inference (no grad) and
one training step (forward, cross-entropy, backward, SGD with momentum) at
the given batch sizes. Median over repeats after warm-up, like `etch bench`.
"""
import sys
import time

import torch

torch.set_num_threads(1)
torch.manual_seed(0)


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(784, 128)
        self.fc2 = torch.nn.Linear(128, 10)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(torch.flatten(x, 1))))


def median_us(fn, budget=1.0):
    for _ in range(5):
        fn()
    times, start = [], time.perf_counter()
    while len(times) < 5 or (time.perf_counter() - start < budget and len(times) < 5000):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2] * 1e6


if __name__ == "__main__":
    net = Net()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    for b in [int(a) for a in sys.argv[1:]] or [1, 64]:
        x, y = torch.rand(b, 1, 28, 28), torch.randint(0, 10, (b,))

        def infer():
            with torch.no_grad():
                net(x)

        def step():
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x), y).backward()
            opt.step()

        print(f"torch inference B={b} {median_us(infer):.1f}")
        print(f"torch train_step B={b} {median_us(step):.1f}")
