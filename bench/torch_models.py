"""PyTorch eager timings for the sample models, one thread (bench/bench_models.sh).

Prints `torch <model> <inference|train_step> B=<batch> <median us>` lines:
inference (no grad) at batch 1 and one training step (Adam; AdamW for gpt)
at the batch size of the benchmark (64; 8 for gpt), for the PyTorch twins of
samples/lenet.etch, autoencoder.etch, lstm.etch and gpt.etch. Median over
repeats after warm-up, like `etch bench`.
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


class LSTMNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(28, 128, batch_first=True)
        self.fc = nn.Linear(128, 10)

    def forward(self, x):
        out, (h, c) = self.lstm(x.reshape(x.shape[0], 28, 28))
        return self.fc(h[0])


class GPT(nn.Module):
    def __init__(self, T=64, V=256, D=128):
        super().__init__()
        self.tok_emb, self.pos_emb = nn.Embedding(V, D), nn.Embedding(T, D)
        self.blocks = nn.ModuleList([nn.TransformerEncoderLayer(D, 4, 4 * D, dropout=0.0, activation="gelu",
                                                                batch_first=True, norm_first=True)
                                     for _ in range(2)])
        self.ln_f, self.head = nn.LayerNorm(D), nn.Linear(D, V)
        self.register_buffer("mask", torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1))

    def forward(self, x):
        h = self.tok_emb(x) + self.pos_emb.weight[None]
        for b in self.blocks:
            h = b(h, src_mask=self.mask)
        return self.head(self.ln_f(h))


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


image = (lambda b: torch.rand(b, 1, 28, 28), lambda b: torch.randint(0, 10, (b,)))
tokens = (lambda b: torch.randint(0, 256, (b, 64)), lambda b: torch.randint(0, 256, (b, 64)))


def twins():
    """(name, module, loss(out, x, y), (x maker, y maker) by batch, benchmark batch, optimizer class) of each
    sample's PyTorch twin; bench/torch_cuda.py times the same ones on the GPU."""
    return [
        ("lenet", LeNet(), lambda out, x, y: F.cross_entropy(out, y), image, 64, torch.optim.Adam),
        ("autoencoder", AE(), lambda out, x, y: F.mse_loss(out, torch.flatten(x, 1)), image, 64, torch.optim.Adam),
        ("lstm", LSTMNet(), lambda out, x, y: F.cross_entropy(out, y), image, 64, torch.optim.Adam),
        ("gpt", GPT(), lambda out, x, y: F.cross_entropy(out.reshape(-1, 256), y.reshape(-1)), tokens, 8,
         torch.optim.AdamW),
    ]


def main():
    for name, net, loss_fn, data, batch, opt_cls in twins():
        if sys.argv[1:] and name not in sys.argv[1:]:
            continue
        opt = opt_cls(net.parameters(), lr=1e-3)
        x1 = data[0](1)
        x, y = data[0](batch), data[1](batch)

        def infer():
            with torch.no_grad():
                net(x1)

        def step():
            opt.zero_grad()
            loss_fn(net(x), x, y).backward()
            opt.step()

        print(f"torch {name} inference B=1 {median_us(infer):.1f}")
        print(f"torch {name} train_step B={batch} {median_us(step):.1f}")


if __name__ == "__main__":
    main()
