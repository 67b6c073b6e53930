"""Prints the chapter 6 table from the --json records of scripts/reproduce_ch6.sh, and the
relu study's table when its records are there: python3 scripts/summarize_ch6.py [RUNS_DIR]
(default runs/ch6). It reads whatever records exist, so it summarises a partial run, or records
gathered from the machines a job list ran on. scripts/results_pages.py puts the same tables in
docs/results/ch6.md.

Each row is reported as network3 reports it: the test accuracy at the epoch of best validation
accuracy (ties go to the later epoch, as network3's >= does), per seed and as a mean.
"""
import glob
import json
import os
import re
import statistics
import sys

ROWS = [
    ("shallow", "shallow: FC(784,100) sigmoid + softmax, eta 0.1", 97.80),
    ("conv", "conv: + ConvPool(20x5x5)", 98.78),
    ("conv2", "conv2: + ConvPool(40x20x5x5), FC(640,100)", 99.06),
    ("relu", "relu: ReLU, eta 0.03, lambda 0.1", 99.23),
    ("expanded", "expanded: relu on 250,000 images", 99.37),
    ("extra-fc", "extra-fc: + FC(100,100)", 99.43),
    ("dropout", "dropout: FC1000, FC1000, dropout 0.5, expanded, 40 epochs", 99.60),
]

# The relu study: one of network3.py's semantics changed at a time (stem, what changed).
STUDY = [
    ("relu", "none: the relu preset (value/256, gradient to every tied maximum, no shuffling, 2 threads)"),
    ("relu_scale255", "pixels value/255 instead of network3's value/256"),
    ("relu_poolfirst", "max-pool gradient to the first maximum only (PyTorch's) instead of every tied one (Theano's)"),
    ("relu_shuffle", "training set shuffled every epoch (network3.py never shuffles)"),
    ("relu_threads1", "1 thread instead of 2: conv gradients summed in another order (float32 rounding only)"),
]


def at_best(rec):
    """(test at best validation, best validation, its epoch) of a network3 record."""
    best = None
    for e in rec["epochs"]:
        v = e.get("validation_accuracy")
        if v is not None and (best is None or v >= best[1]):
            best = (e.get("test_accuracy"), v, e["epoch"])
    return best


def records(out, stem):
    """[(seed, record, at_best)] of the finished runs named STEM_sSEED.json, by seed."""
    found = []
    for p in glob.glob(os.path.join(out, f"{stem}_s*.json")):
        if not re.fullmatch(re.escape(stem) + r"_s\d+\.json", os.path.basename(p)):
            continue
        rec = json.load(open(p))
        b = at_best(rec)
        if b is None or b[0] is None:
            continue
        found.append((rec["settings"]["seed"], rec, b))
    return sorted(found, key=lambda r: r[0])


def fmt_time(s):
    return f"{s / 60:.1f} min" if s >= 120 else f"{s:.0f} s"


def mean_spread(tests):
    spread = f" ± {statistics.stdev(tests):.2f}" if len(tests) > 1 else ""
    return f"{statistics.mean(tests):.2f}%{spread}"


def table(out):
    """The chapter 6 table's lines and the total training time of its runs."""
    total_wall = 0.0
    lines = [
        "| preset | book | nndl mean ± sd (runs) | per seed: test at best validation | best validation (epoch) | epochs run | wall time / run | train images/s: run / fastest epoch |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for stem, desc, book in ROWS:
        recs = records(out, stem)
        total_wall += sum(r["wall_seconds"] for _, r, _ in recs)
        if stem == "dropout":
            # The ensemble's nets 1-4 are dropout runs too; the row is seed 0's, as the table's.
            recs = recs[:1]
        if not recs:
            lines.append(f"| {desc} | {book:.2f}% | not run | | | | | |")
            continue
        tests = [100 * b[0] for _, _, b in recs]
        per = ", ".join(f"{t:.2f} (s{s})" for t, (s, _, _) in zip(tests, recs))
        vals = ", ".join(f"{100 * b[1]:.2f} ({b[2]})" for _, _, b in recs)
        ep = ", ".join(sorted({f"{len(r['epochs'])} of {r['settings']['epochs']}" for _, r, _ in recs}))
        wall = statistics.median(r["wall_seconds"] for _, r, _ in recs)
        ips = statistics.median(r["train_images_per_second"] for _, r, _ in recs)
        # The fastest epoch is the machine's speed when nothing else ran beside the training.
        fastest = max(e["train_images_per_second"] for _, r, _ in recs for e in r["epochs"])
        lines.append(f"| {desc} | {book:.2f}% | {mean_spread(tests)} ({len(tests)}) | {per} | {vals} | {ep} | {fmt_time(wall)} | {ips:,.0f} / {fastest:,.0f} |")

    p = os.path.join(out, "ensemble.json")
    nets = records(out, "dropout")
    if os.path.exists(p):
        rec = json.load(open(p))
        each = ", ".join(f"{100 * b[0]:.2f} (s{s})" for s, _, b in nets)
        wrong = round((1 - rec["test_accuracy"]) * 10000)
        lines.append(f"| ensemble of 5 dropout nets, majority vote of their final weights | 99.67% | {100 * rec['test_accuracy']:.2f}% ({wrong} of 10,000 wrong) | nets: {each} | | | | |")
    else:
        lines.append(f"| ensemble of 5 dropout nets, majority vote | 99.67% | not run ({len(nets)} of 5 nets trained) | | | | | |")
    lines += ["", f"Training time of every run above, end to end: {total_wall / 3600:.2f} h"]
    return lines


def study(out):
    """The relu study's table (no lines when none of its changed runs has a record)."""
    base = {s: b[0] for s, _, b in records(out, "relu")}
    lines = [
        "| what changed | per seed | mean ± sd | change of the mean vs the preset, same seeds |",
        "| --- | --- | --- | --- |",
    ]
    if not any(records(out, stem) for stem, _ in STUDY[1:]):
        return []
    for stem, desc in STUDY:
        recs = records(out, stem)
        if not recs:
            lines.append(f"| {desc} | not run | | |")
            continue
        tests = [100 * b[0] for _, _, b in recs]
        per = ", ".join(f"{t:.2f} (s{s})" for t, (s, _, _) in zip(tests, recs))
        paired = [100 * (b[0] - base[s]) for s, _, b in recs if s in base]
        delta = f"{statistics.mean(paired):+.2f} ({len(paired)} seeds)" if paired and stem != "relu" else ""
        lines.append(f"| {desc} | {per} | {mean_spread(tests)} | {delta} |")
    return lines


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "runs/ch6"
    print("\n".join(table(out)))
    relu = study(out)
    if relu:
        print("\nThe relu study: the relu preset with one thing changed (test accuracy at best validation)\n")
        print("\n".join(relu))
