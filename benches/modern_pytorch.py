"""nndl's modern MNIST recipe (`cargo run --release --example modern`) in PyTorch, for accuracy
and wall time side by side on the same cores. A benchmark companion, never a dependency.

    python3 benches/modern_pytorch.py --epochs 16 --seed 0 --threads 2

Same recipe as examples/modern.rs: two blocks of two 3x3 convolutions (padding 1, no bias) with
batch norm and ReLU, each block max-pooled; Linear(3136, 128) + batch norm + ReLU + dropout 0.4;
Linear(128, 10) initialised to zero (network3's softmax layer); He-normal weights elsewhere;
Adam (lr 0.003, PyTorch defaults otherwise) with the learning rate set before epoch e to
lr * (1 + cos(pi e / epochs)) / 2; mini-batch 64, reshuffled each epoch; training on the first
50,000 training images, each mini-batch rotated by U(-10, 10) degrees, scaled by U(0.9, 1.1) and
shifted by U(-2, 2) pixels (bilinear, zeros outside, about the image centre) as nndl's
`mnist::augment` does; pixels value/255. After each epoch: validation accuracy (the last 10,000
training images) and, when it is the best so far, test accuracy, as nndl prints them;
with `--train-all`, training on all 60,000 and test accuracy after the last epoch.
Evaluation uses an exponential moving average of every parameter and batch-norm statistic
(`--ema DECAY`, nndl's `--ema`: 0.999 by default as modern's, 0 for the weights themselves),
`a <- d a + (1-d) w` after each step with `d = min(DECAY, (1+t)/(10+t))`, starting at the
weights after the first step.

Prints `Epoch E: validation accuracy V% (N images/s)` lines and a final
`{"wall_seconds": ..., "train_images_per_second": ..., "best_validation": ..., "best_epoch": ...,
"test_at_best": ...}` JSON line.
"""
import argparse
import copy
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import mnist_idx


def load(dirname):
    (x, y), (tx, ty) = mnist_idx.load(dirname)
    t = lambda a: torch.from_numpy(a.astype(np.float32) / 255.0)
    return (t(x[:50000]), torch.from_numpy(y[:50000])), (t(x[50000:]), torch.from_numpy(y[50000:])), (t(tx), torch.from_numpy(ty))


def block(c_in, c_out):
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]


class Recipe(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            *block(1, 32), *block(32, 32), nn.MaxPool2d(2),
            *block(32, 64), *block(64, 64), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(3136, 128), nn.BatchNorm1d(128), nn.ReLU(), nn.Dropout(0.4),
            nn.Linear(128, 10),
        )
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        last = self.body[-1]
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def forward(self, x):
        return self.body(x)


def augment(x, degrees=10.0, shift=2.0, scale=0.1):
    """Each image rotated, scaled and shifted at random, sampled bilinearly (zeros outside)."""
    n = x.shape[0]
    u = lambda: torch.rand(n) * 2 - 1
    theta_deg, s, dx, dy = degrees * u(), 1 + scale * u(), shift * u(), shift * u()
    a = torch.deg2rad(theta_deg)
    cos, sin = torch.cos(a), torch.sin(a)
    # Output pixel p -> source c + M (p - c - shift) / s with M = [[cos, -sin], [sin, cos]] in
    # (x, y), y down; in align_corners coordinates the centre is 0 and 13.5 pixels are 1.
    half = (x.shape[-1] - 1) / 2
    m = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1) / s[:, None, None]
    t = -(m @ torch.stack([dx, dy], 1)[:, :, None]) / half
    grid = F.affine_grid(torch.cat([m, t], 2), x.shape, align_corners=True)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def accuracy(net, x, y, batch=1000):
    net.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            correct += (net(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum().item()
    return correct / len(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lr", type=float, default=0.003)
    ap.add_argument("--mini-batch", type=int, default=64)
    ap.add_argument("--train-limit", type=int, default=50000)
    ap.add_argument("--no-augment", action="store_true")
    ap.add_argument("--train-all", action="store_true",
                    help="train on the validation images too (modern --train-all); test after the last epoch")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast (convolutions and matmuls in bf16)")
    ap.add_argument("--channels-last", action="store_true", help="channels-last tensors")
    ap.add_argument("--ema", type=float, default=0.999, help="0: evaluate the weights themselves")
    ap.add_argument("--data", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "mnist"))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    (x, y), (vx, vy), (tx, ty) = load(a.data)
    x, y = x[: a.train_limit], y[: a.train_limit]
    if a.train_all:
        x, y = torch.cat([x, vx]), torch.cat([y, vy])
    net = Recipe()
    fmt = torch.channels_last if a.channels_last else torch.contiguous_format
    net = net.to(memory_format=fmt)
    opt = torch.optim.Adam(net.parameters(), lr=a.lr)
    # The averaged copy: its parameters and floating-point buffers follow the net's.
    averaged = copy.deepcopy(net) if a.ema else None
    tensors = lambda m: list(m.parameters()) + [b for b in m.buffers() if b.is_floating_point()]
    steps = 0
    start = time.time()
    train_seconds, best = 0.0, (0.0, None, 0.0)
    for epoch in range(a.epochs):
        for g in opt.param_groups:
            g["lr"] = a.lr * 0.5 * (1 + math.cos(math.pi * epoch / a.epochs))
        net.train()
        t0 = time.time()
        order = torch.randperm(len(x))
        for i in range(0, len(x), a.mini_batch):
            idx = order[i:i + a.mini_batch]
            xb = x[idx] if a.no_augment else augment(x[idx])
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
                loss = F.cross_entropy(net(xb.contiguous(memory_format=fmt)), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if averaged is not None:
                d = 0.0 if steps == 0 else min(a.ema, (1 + steps) / (10 + steps))
                with torch.no_grad():
                    for p_avg, p in zip(tensors(averaged), tensors(net)):
                        p_avg.mul_(d).add_(p, alpha=1 - d)
            steps += 1
        seconds = time.time() - t0
        train_seconds += seconds
        judged = averaged if averaged is not None else net
        if a.train_all:
            print(f"Epoch {epoch}: ({len(x) / seconds:.0f} images/s)", flush=True)
            if epoch == a.epochs - 1:
                best = (None, epoch, accuracy(judged, tx, ty))
                print(f"Test accuracy {100 * best[2]:.2f}%", flush=True)
            continue
        v = accuracy(judged, vx, vy)
        print(f"Epoch {epoch}: validation accuracy {100 * v:.2f}% ({len(x) / seconds:.0f} images/s)", flush=True)
        if v >= best[0]:
            test = accuracy(judged, tx, ty)
            print(f"The corresponding test accuracy is {100 * test:.2f}%", flush=True)
            best = (v, epoch, test)
    wall = time.time() - start
    print(json.dumps({
        "wall_seconds": wall,
        "train_images_per_second": a.epochs * len(x) / train_seconds,
        "best_validation": best[0], "best_epoch": best[1], "test_at_best": best[2],
        "threads": a.threads, "seed": a.seed, "epochs": a.epochs, "ema": a.ema,
        "bf16": a.bf16, "channels_last": a.channels_last,
    }))


if __name__ == "__main__":
    main()
