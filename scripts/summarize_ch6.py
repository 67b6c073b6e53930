"""Prints the chapter 6 table from the --json records of scripts/reproduce_ch6.sh.

Each row is reported as network3 reports it: the test accuracy at the epoch of best validation
accuracy (ties go to the later epoch, as network3's >= does), per seed and as a mean.
"""
import glob
import json
import os
import statistics
import sys

out = sys.argv[1] if len(sys.argv) > 1 else "runs/ch6"

ROWS = [
    ("shallow", "shallow: FC(784,100) sigmoid + softmax, eta 0.1", 97.80),
    ("conv", "conv: + ConvPool(20x5x5)", 98.78),
    ("conv2", "conv2: + ConvPool(40x20x5x5), FC(640,100)", 99.06),
    ("relu", "relu: ReLU, eta 0.03, lambda 0.1", 99.23),
    ("expanded", "expanded: relu on 250,000 images", 99.37),
    ("extra-fc", "extra-fc: + FC(100,100)", 99.43),
    ("dropout", "dropout: FC1000, FC1000, dropout 0.5, expanded, 40 epochs", 99.60),
]


def at_best(rec):
    """(test at best validation, best validation, its epoch) of a network3 record."""
    best = None
    for e in rec["epochs"]:
        v = e.get("validation_accuracy")
        if v is not None and (best is None or v >= best[1]):
            best = (e.get("test_accuracy"), v, e["epoch"])
    return best


def fmt_time(s):
    return f"{s / 60:.1f} min" if s >= 120 else f"{s:.0f} s"


print("| preset | book | nndl mean (seeds) | per seed: test at best validation | best validation (epoch) | epochs run | wall time / run | train images/s |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for stem, desc, book in ROWS:
    recs = []
    for p in sorted(glob.glob(os.path.join(out, f"{stem}_s*.json"))):
        rec = json.load(open(p))
        b = at_best(rec)
        if b is None or b[0] is None:
            continue
        recs.append((rec["settings"]["seed"], rec, b))
    if not recs:
        print(f"| {desc} | {book:.2f}% | not run | | | | | |")
        continue
    tests = [100 * b[0] for _, _, b in recs]
    per = ", ".join(f"{t:.2f} (s{s})" for t, (s, _, _) in zip(tests, recs))
    vals = ", ".join(f"{100 * b[1]:.2f} ({b[2]})" for _, _, b in recs)
    ep = ", ".join(sorted({f"{len(r['epochs'])} of {r['settings']['epochs']}" for _, r, _ in recs}))
    wall = statistics.median(r["wall_seconds"] for _, r, _ in recs)
    ips = statistics.median(r["train_images_per_second"] for _, r, _ in recs)
    spread = f" ± {statistics.stdev(tests):.2f}" if len(tests) > 1 else ""
    print(f"| {desc} | {book:.2f}% | {statistics.mean(tests):.2f}%{spread} ({len(tests)}) | {per} | {vals} | {ep} | {fmt_time(wall)} | {ips:,.0f} |")

p = os.path.join(out, "ensemble.json")
if os.path.exists(p):
    rec = json.load(open(p))
    print(f"| ensemble of 5 dropout nets, majority vote | 99.67% | {100 * rec['test_accuracy']:.2f}% | final weights of dropout_s0-s4 | | | | |")
else:
    print("| ensemble of 5 dropout nets, majority vote | 99.67% | not run | | | | | |")
