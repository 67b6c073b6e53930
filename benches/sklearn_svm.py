#!/usr/bin/env python3
"""The book's mnist_svm.py on scikit-learn, timed: the reference for examples/mnist_svm.rs.

The book runs `svm.SVC()` (scikit-learn's defaults of the time: C = 1, gamma = 1/784, i.e.
1/n_features) on its pickled data, whose pixels are float32 value/256, training on the first
50,000 training images and scoring on the 10,000 test images: 9,435 correct. This script does
the same from the IDX files in data/mnist (read with gzip + numpy, no pickle), and prints the
fit and predict wall times and the number correct.

    pip install scikit-learn numpy
    python3 benches/sklearn_svm.py                        # the book's run, full size
    python3 benches/sklearn_svm.py --train-limit 5000 --test-limit 1000 --json out.json

Compare with `cargo run --release --example mnist_svm -- --json nndl.json`.
"""

import argparse
import gzip
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np


def find_data_dir(explicit):
    if explicit:
        return Path(explicit)
    env = os.environ.get("NNDL_DATA")
    if env:
        return Path(env)
    for base in [Path.cwd(), *Path.cwd().parents, Path(__file__).resolve().parent.parent]:
        d = base / "data" / "mnist"
        if d.is_dir():
            return d
    sys.exit("MNIST not found: pass --data DIR or set NNDL_DATA")


def read_idx(path):
    """An IDX file (gzip or raw) as a numpy array: magic 0x0000 0x08 (u8) ndim, then sizes."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        sys.exit(f"{path}: not an unsigned-byte IDX file")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        sys.exit(f"{path}: header says {dims}, found {body.size} bytes")
    return body.reshape(dims)


def load(dir_, stem):
    for name in (f"{stem}.gz", stem):
        p = dir_ / name
        if p.exists():
            return read_idx(p)
    sys.exit(f"{stem}[.gz] not found in {dir_}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", help="MNIST directory (default: $NNDL_DATA, else data/mnist)")
    ap.add_argument("--train-limit", type=int, default=50_000)
    ap.add_argument("--test-limit", type=int, default=10_000)
    ap.add_argument("--c", type=float, default=1.0)
    ap.add_argument("--gamma", type=float, default=1.0 / 784.0)
    ap.add_argument("--cache-mb", type=float, default=200.0,
                    help="SVC's cache_size (default 200, scikit-learn's)")
    ap.add_argument("--json", help="write the settings, times and accuracy here")
    args = ap.parse_args()

    import sklearn
    from sklearn import svm

    dir_ = find_data_dir(args.data)
    train_x = load(dir_, "train-images-idx3-ubyte")
    train_y = load(dir_, "train-labels-idx1-ubyte")
    test_x = load(dir_, "t10k-images-idx3-ubyte")
    test_y = load(dir_, "t10k-labels-idx1-ubyte")
    n = min(args.train_limit, 50_000)  # the book's training set: the first 50,000
    m = min(args.test_limit, len(test_y))
    # The book's pickle: float32 value/256 (exact), which SVC converts to float64.
    x = train_x[:n].reshape(n, -1).astype(np.float32) / np.float32(256.0)
    y = train_y[:n].astype(np.int64)
    tx = test_x[:m].reshape(m, -1).astype(np.float32) / np.float32(256.0)
    ty = test_y[:m].astype(np.int64)

    # kernel rbf, tol 1e-3, shrinking, cache 200 MB unless --cache-mb says otherwise
    clf = svm.SVC(C=args.c, gamma=args.gamma, cache_size=args.cache_mb)
    print(f"scikit-learn {sklearn.__version__}: SVC(C={args.c}, gamma={args.gamma}, "
          f"cache_size={args.cache_mb}) on {n} training images", file=sys.stderr)
    t0 = time.perf_counter()
    clf.fit(x, y)
    fit_s = time.perf_counter() - t0
    print(f"Fit: {fit_s:.1f} s, {clf.support_.size} support vectors", file=sys.stderr)
    t0 = time.perf_counter()
    predictions = clf.predict(tx)
    predict_s = time.perf_counter() - t0
    correct = int((predictions == ty).sum())
    print(f"Predict: {predict_s:.1f} s for {m} images", file=sys.stderr)
    print("Baseline classifier using an SVM.")
    print(f"{correct} of {m} values correct.")
    print(f"fit_seconds {fit_s:.2f} predict_seconds {predict_s:.2f} correct {correct}")
    if args.json:
        record = {
            "program": "sklearn_svm",
            "settings": {"c": args.c, "gamma": args.gamma, "train_limit": n, "test_limit": m,
                         "pixel_scale": 256, "cache_mb": clf.cache_size, "tol": clf.tol},
            "sklearn_version": sklearn.__version__,
            "numpy_version": np.__version__,
            "python": platform.python_version(),
            "support_vectors": int(clf.support_.size),
            "fit_seconds": fit_s,
            "predict_seconds": predict_s,
            "correct": correct,
            "test_accuracy": correct / m,
        }
        tmp = Path(args.json).with_name("." + Path(args.json).name + ".tmp")
        tmp.write_text(json.dumps(record, indent=2) + "\n")
        os.replace(tmp, args.json)


if __name__ == "__main__":
    main()
