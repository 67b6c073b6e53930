"""The book's architectures in PyTorch, for side-by-side training throughput with nndl.

Run by `cargo bench --bench throughput` (alternating with nndl in one invocation); by hand:
    python3 benches/pytorch_reference.py --net A --batch 10 --threads 2 --seconds 3
Prints one line `images_per_second <float>`. CPU only; never a dependency of the library.

Nets (docs/results/performance.md): A [784,30,10] sigmoid + quadratic; B FC(784,100) sigmoid + softmax;
C ConvPool(20,5x5) + FC100 + softmax (sigmoid); D two ConvPools (20, 40) + FC100, ReLU;
E = D with FC(640,1000), FC(1000,1000), dropout 0.5. Conv bias before the pool is the same
function as network3's bias after it (max(x) + b = max(x + b)).
"""
import argparse
import gzip
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def load_images(n):
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "..", "data", "mnist", "train-images-idx3-ubyte.gz")
    with gzip.open(path, "rb") as f:
        raw = f.read()
    x = np.frombuffer(raw, dtype=np.uint8, offset=16)[: n * 784].reshape(n, 784)
    labels_path = os.path.join(here, "..", "data", "mnist", "train-labels-idx1-ubyte.gz")
    with gzip.open(labels_path, "rb") as f:
        y = np.frombuffer(f.read(), dtype=np.uint8, offset=8)[:n]
    return torch.from_numpy(x.astype(np.float32) / 255.0), torch.from_numpy(y.astype(np.int64))


class Net(nn.Module):
    def __init__(self, kind):
        super().__init__()
        self.kind = kind
        if kind == "A":
            self.l1, self.l2 = nn.Linear(784, 30), nn.Linear(30, 10)
        elif kind == "B":
            self.l1, self.l2 = nn.Linear(784, 100), nn.Linear(100, 10)
        elif kind == "C":
            self.c1 = nn.Conv2d(1, 20, 5)
            self.l1, self.l2 = nn.Linear(2880, 100), nn.Linear(100, 10)
        elif kind == "D":
            self.c1, self.c2 = nn.Conv2d(1, 20, 5), nn.Conv2d(20, 40, 5)
            self.l1, self.l2 = nn.Linear(640, 100), nn.Linear(100, 10)
        elif kind == "E":
            self.c1, self.c2 = nn.Conv2d(1, 20, 5), nn.Conv2d(20, 40, 5)
            self.l1, self.l2, self.l3 = nn.Linear(640, 1000), nn.Linear(1000, 1000), nn.Linear(1000, 10)
        else:
            raise SystemExit(f"unknown net {kind}")

    def forward(self, x):
        k = self.kind
        if k in ("A", "B"):
            return self.l2(torch.sigmoid(self.l1(x)))
        x = x.view(-1, 1, 28, 28)
        if k == "C":
            x = torch.sigmoid(F.max_pool2d(self.c1(x), 2)).flatten(1)
            return self.l2(torch.sigmoid(self.l1(x)))
        x = F.relu(F.max_pool2d(self.c1(x), 2))
        x = F.relu(F.max_pool2d(self.c2(x), 2)).flatten(1)
        if k == "D":
            return self.l2(F.relu(self.l1(x)))
        x = F.relu(self.l1(F.dropout(x, 0.5, self.training)))
        x = F.relu(self.l2(F.dropout(x, 0.5, self.training)))
        return self.l3(F.dropout(x, 0.5, self.training))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--net", required=True)
    ap.add_argument("--batch", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=3.0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    x, y = load_images(10000)
    net = Net(a.net)
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    onehot = F.one_hot(y, 10).float()

    def step(i):
        lo = (i * a.batch) % (10000 - a.batch)
        xb, yb = x[lo : lo + a.batch], y[lo : lo + a.batch]
        out = net(xb)
        if a.net == "A":
            loss = 0.5 * ((torch.sigmoid(out) - onehot[lo : lo + a.batch]) ** 2).sum() / a.batch
        else:
            loss = F.cross_entropy(out, yb)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for i in range(20):  # warm-up
        step(i)
    n, i, t0 = 0, 0, time.perf_counter()
    while time.perf_counter() - t0 < a.seconds:
        step(i)
        i += 1
        n += a.batch
    print(f"images_per_second {n / (time.perf_counter() - t0):.1f}")


if __name__ == "__main__":
    main()
