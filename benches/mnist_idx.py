"""The four MNIST IDX files (plain or .gz) as numpy arrays, for the PyTorch companions of
nndl's programs: images [N, 1, 28, 28] uint8, labels int64."""
import gzip
import os

import numpy as np


def read_idx(path, offset):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=offset)


def find(dirname, name):
    for candidate in (name, name + ".gz"):
        p = os.path.join(dirname, candidate)
        if os.path.exists(p):
            return p
    raise SystemExit(f"{name}(.gz) not found in {dirname}")


def load(dirname):
    """((training images, labels), (test images, labels)), all 60,000 training images."""
    x = read_idx(find(dirname, "train-images-idx3-ubyte"), 16).reshape(-1, 1, 28, 28)
    y = read_idx(find(dirname, "train-labels-idx1-ubyte"), 8).astype(np.int64)
    tx = read_idx(find(dirname, "t10k-images-idx3-ubyte"), 16).reshape(-1, 1, 28, 28)
    ty = read_idx(find(dirname, "t10k-labels-idx1-ubyte"), 8).astype(np.int64)
    return (x, y), (tx, ty)
