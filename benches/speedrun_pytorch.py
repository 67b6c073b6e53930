"""nndl's time-to-accuracy recipes (`cargo run --release --example speedrun -- --target T`) in
PyTorch, set up as a user tuning for speed on a CPU would: bf16 autocast, channels-last
tensors, the thread count given. A benchmark companion, never a dependency.

    python3 benches/speedrun_pytorch.py --target 99.0 --seed 0 --threads 2
    python3 benches/speedrun_pytorch.py --target 99.0 --validate      # 50k / validation

The same recipes as examples/speedrun.rs: stages of a 3x3 convolution (padding 1, no bias),
a 2x2 max-pool (the last stage of the 99.5 and 99.7 recipes unpooled), batch norm and ReLU;
flatten; a Linear layer to the 10 classes initialised to zero (nndl's softmax layer);
He-normal convolution weights; SGD with Nesterov momentum 0.9 and weight decay 5e-4 on the
weights (batch norm's scale included), not the biases; mini-batch 128 over the images reshuffled each epoch;
the learning rate of step t (from 0, of T steps, W = round(0.2 T) of warm-up) is
peak (t + 1) / W during warm-up and peak (T - t) / (T - W) after; label smoothing and random
shifts (bilinear, zeros outside, U(-s, s) pixels in x and y) where the recipe has them;
pixels value/255. Trains on all 60,000 training images and reports the test accuracy after
the last epoch (with --validate: on the first 50,000, reporting the other 10,000).

Prints `Epoch E: training cost C (N images/s)`, `Test accuracy A%` (or `Validation accuracy`)
and a JSON line with the accuracy and the wall time since the interpreter started (import,
loading, training and evaluating).
"""
import time

START = time.time()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import mnist_idx  # noqa: E402

# channels, whether the last stage pools, epochs, label smoothing, shift (pixels)
RECIPES = {
    "99.0": ([16, 32, 64], True, 1, 0.0, 0.0),
    "99.5": ([16, 32, 64, 128], False, 3, 0.1, 2.0),
    "99.7": ([32, 64, 128, 256], False, 15, 0.1, 2.0),
}


def load(dirname):
    (x, y), (tx, ty) = mnist_idx.load(dirname)
    t = lambda a: torch.from_numpy(a.astype(np.float32) / 255.0)
    return (t(x), torch.from_numpy(y)), (t(tx), torch.from_numpy(ty))


def net_of(channels, pool_last):
    layers, c_in, side = [], 1, 28
    for k, c in enumerate(channels):
        layers.append(nn.Conv2d(c_in, c, 3, padding=1, bias=False))
        if pool_last or k + 1 < len(channels):
            layers.append(nn.MaxPool2d(2))
            side //= 2
        layers += [nn.BatchNorm2d(c), nn.ReLU()]
        c_in = c
    last = nn.Linear(c_in * side * side, 10)
    net = nn.Sequential(*layers, nn.Flatten(), last)
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return net


def shifted(x, shift):
    """Each image shifted by U(-shift, shift) pixels in x and y, sampled bilinearly."""
    n = x.shape[0]
    half = (x.shape[-1] - 1) / 2
    t = -(torch.rand(n, 2) * 2 - 1) * shift / half
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, :, 2] = t
    grid = F.affine_grid(theta, x.shape, align_corners=True)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", choices=sorted(RECIPES), default="99.0")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=int, help="default: the recipe's")
    ap.add_argument("--eta", type=float, default=0.2, help="peak learning rate")
    ap.add_argument("--mini-batch", type=int, default=128)
    ap.add_argument("--validate", action="store_true")
    ap.add_argument("--fp32", action="store_true", help="no bf16 autocast")
    ap.add_argument("--nchw", action="store_true", help="no channels-last")
    ap.add_argument("--data", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "mnist"))
    a = ap.parse_args()
    channels, pool_last, epochs, smoothing, shift = RECIPES[a.target]
    epochs = a.epochs if a.epochs is not None else epochs
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    (x, y), (tx, ty) = load(a.data)
    if a.validate:
        x, y, tx, ty = x[:50000], y[:50000], x[50000:], y[50000:]
    fmt = torch.contiguous_format if a.nchw else torch.channels_last
    net = net_of(channels, pool_last).to(memory_format=fmt)
    # nndl decays every layer's weights (batch norm's scale too), never a bias.
    decayed = [p for name, p in net.named_parameters() if name.endswith("weight")]
    rest = [p for name, p in net.named_parameters() if not name.endswith("weight")]
    opt = torch.optim.SGD([{"params": decayed, "weight_decay": 5e-4}, {"params": rest, "weight_decay": 0.0}],
                          lr=a.eta, momentum=0.9, nesterov=True)
    steps = epochs * -(-len(x) // a.mini_batch)
    warmup = round(0.2 * steps)
    rate = lambda t: a.eta * (t + 1) / warmup if t < warmup else a.eta * (steps - t) / max(steps - warmup, 1)
    autocast = lambda: torch.autocast("cpu", dtype=torch.bfloat16, enabled=not a.fp32)
    t, train_seconds = 0, 0.0
    for epoch in range(epochs):
        net.train()
        t0 = time.time()
        order = torch.randperm(len(x))
        total = 0.0
        for i in range(0, len(x), a.mini_batch):
            idx = order[i:i + a.mini_batch]
            xb = x[idx] if shift == 0 else shifted(x[idx], shift)
            xb = xb.contiguous(memory_format=fmt)
            for g in opt.param_groups:
                g["lr"] = rate(t)
            with autocast():
                loss = F.cross_entropy(net(xb), y[idx], label_smoothing=smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item()
            t += 1
        seconds = time.time() - t0
        train_seconds += seconds
        print(f"Epoch {epoch}: training cost {total / -(-len(x) // a.mini_batch):.4f} ({len(x) / seconds:.0f} images/s)", flush=True)
    net.eval()
    correct = 0
    with torch.no_grad(), autocast():
        for i in range(0, len(tx), 1000):
            xb = tx[i:i + 1000].contiguous(memory_format=fmt)
            correct += (net(xb).argmax(1) == ty[i:i + 1000]).sum().item()
    acc = correct / len(tx)
    print(f"{'Validation' if a.validate else 'Test'} accuracy {100 * acc:.2f}%", flush=True)
    wall = time.time() - START
    print(json.dumps({
        "target": a.target, "seed": a.seed, "threads": a.threads, "epochs": epochs,
        "accuracy": acc, "judged_on": "validation" if a.validate else "test",
        "wall_seconds": wall, "train_images_per_second": epochs * len(x) / train_seconds,
        "bf16": not a.fp32, "channels_last": not a.nchw,
    }))


if __name__ == "__main__":
    main()
