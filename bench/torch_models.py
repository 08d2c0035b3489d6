"""PyTorch eager timings for the sample models, one thread (bench/bench_models.sh).

Prints `torch <model> <inference|train_step> B=<batch> <median us>` lines:
inference (no grad) at batch 1 and one Adam training step at the batch size
etch trains with, for the PyTorch twins of samples/lenet.etch and
samples/autoencoder.etch. Median over repeats after warm-up, like `etch bench`.
"""
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(1)
torch.manual_seed(0)


class LeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1, self.fc2, self.fc3 = nn.Linear(400, 120), nn.Linear(120, 84), nn.Linear(84, 10)

    def forward(self, x):
        h = (x - 0.2860) / 0.3530
        h = F.max_pool2d(F.relu(self.conv1(h)), 2)
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(torch.flatten(h, 1))))))


class AE(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc1, self.enc2 = nn.Linear(784, 128), nn.Linear(128, 32)
        self.dec1, self.dec2 = nn.Linear(32, 128), nn.Linear(128, 784)

    def forward(self, x):
        z = self.enc2(F.relu(self.enc1(torch.flatten(x, 1))))
        return torch.sigmoid(self.dec2(F.relu(self.dec1(z))))


def median_us(fn, budget=1.0):
    for _ in range(3):
        fn()
    times, start = [], time.perf_counter()
    while len(times) < 5 or (time.perf_counter() - start < budget and len(times) < 2000):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2] * 1e6


for name, net, loss_fn in [
    ("lenet", LeNet(), lambda out, x, y: F.cross_entropy(out, y)),
    ("autoencoder", AE(), lambda out, x, y: F.mse_loss(out, torch.flatten(x, 1))),
]:
    if sys.argv[1:] and name not in sys.argv[1:]:
        continue
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x1 = torch.rand(1, 1, 28, 28)
    x, y = torch.rand(64, 1, 28, 28), torch.randint(0, 10, (64,))

    def infer():
        with torch.no_grad():
            net(x1)

    def step():
        opt.zero_grad()
        loss_fn(net(x), x, y).backward()
        opt.step()

    print(f"torch {name} inference B=1 {median_us(infer):.1f}")
    print(f"torch {name} train_step B=64 {median_us(step):.1f}")
