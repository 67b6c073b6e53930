"""Prints the book-vs-nndl table of chapters 1 and 3 from the --json records of
scripts/reproduce_ch1_ch3.sh: python3 scripts/summarize.py RUNS_DIR [SEEDS...] (default 1 2 3).
scripts/results_pages.py puts the same table in docs/results/book.md."""
import json
import os
import statistics
import sys

# (file stem, description, book figure, which number the book quotes)
ROWS = [
    ("network_30", "network [784,30,10], quadratic, eta 3.0, 30 epochs", 95.42, "best test epoch"),
    ("network_100", "network [784,100,10], same", 96.59, "best test epoch"),
    ("network2_30_l0", "network2 [784,30,10], cross-entropy, N(0,1) init, eta 0.5", 95.49, "best test epoch"),
    ("network2_30_l5", "network2 [784,30,10] + L2 lmbda 5.0", 96.49, "best test epoch"),
    ("network2_100_e05", "network2 [784,100,10], L2 5.0, eta 0.5, 30 epochs", 97.92, "validation, final epoch"),
    ("network2_100_e01", "network2 [784,100,10], L2 5.0, eta 0.1, 60 epochs", 98.04, "validation, final epoch"),
    ("network2_100_default_e01", "same with network2's default N(0,1/n_in) init", 98.04, "validation, final epoch"),
]


def figure(rec, kind):
    eps = rec["epochs"]
    if kind == "best test epoch":
        vals = [e.get("test_accuracy", e.get("evaluation_accuracy")) for e in eps]
        return 100 * max(v for v in vals if v is not None)
    return 100 * eps[-1]["validation_accuracy"]


def best_validation(rec):
    vals = [e.get("validation_accuracy") for e in rec["epochs"]]
    vals = [v for v in vals if v is not None]
    return 100 * max(vals) if vals else None


def table(runs, seeds=("1", "2", "3")):
    """The table's lines (none without a record); rows without a record are left out."""
    lines = [
        "| experiment | book | nndl mean | nndl runs (seeds %s) | what is compared | best validation (mean) | wall s / run |" % " ".join(seeds),
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for stem, desc, book, kind in ROWS:
        row = _row(runs, seeds, stem, desc, book, kind)
        if row:
            lines.append(row)
    return lines if len(lines) > 2 else []


def _row(runs, seeds, stem, desc, book, kind):
    vals, walls, bests = [], [], []
    for s in seeds:
        p = os.path.join(runs, f"{stem}_s{s}.json")
        if not os.path.exists(p):
            continue
        rec = json.load(open(p))
        vals.append(figure(rec, kind))
        walls.append(rec["wall_seconds"])
        b = best_validation(rec)
        if b is not None:
            bests.append(b)
    if not vals:
        return None
    runs_s = ", ".join(f"{v:.2f}" for v in vals)
    best = f"{statistics.mean(bests):.2f}%" if bests else "-"
    return f"| {desc} | {book:.2f}% | {statistics.mean(vals):.2f}% | {runs_s} | {kind} | {best} | {statistics.median(walls):.1f} |"


if __name__ == "__main__":
    print("\n".join(table(sys.argv[1], sys.argv[2:] or ["1", "2", "3"])))
