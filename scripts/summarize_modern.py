"""Prints the tables of the modern recipe ("Beyond the book") from the --json records of
`modern` runs (scripts/reproduce_modern.sh) and, for the ensembles and the PyTorch runs, from
from_logs.json beside them.

    python3 scripts/summarize_modern.py [RECORDS_DIR]   (default docs/modern)

Each run is reported as modern reports it: the test accuracy at the epoch of best validation
accuracy, or, for runs on all 60,000 training images (--train-all, nothing held out), the test
accuracy after the last epoch. scripts/results_pages.py puts the same tables in
docs/results/modern.md.
"""
import json
import os
import statistics
import sys

# (table name, title, [(label, record stems, ensemble key in from_logs.json)], PyTorch key)
TABLES = [
    ("recipe", "the recipe: weight average on, 50,000 training images", [
        ("16 epochs (the default)", ["emas0", "emas1", "emas2"], "emas"),
        ("24 epochs", ["e24emas0", "e24emas1", "e24emas2"], "e24emas"),
        ("8 epochs", ["e8emas0", "e8emas1", "e8emas2"], "e8emas"),
    ], "emas0"),
    ("all60", "the recipe on all 60,000 training images (--train-all)", [
        ("16 epochs", ["all60s0", "all60s1", "all60s2"], "all60s"),
        ("16 epochs, five seeds", ["all60s0", "all60s1", "all60s2", "all60s3", "all60s4"], "all60s5"),
        ("20 epochs", ["all60e20s0", "all60e20s1", "all60e20s2"], "all60e20s"),
    ], "all60s0"),
    ("no_average", "without the weight average (--ema 0), 16 epochs", [
        ("16 epochs", ["e16s0", "e16s1", "e16s2"], "e16s"),
    ], "e16s0"),
    ("early", "without the average, before the direct convolution kernels", [
        ("10 epochs", ["s0", "s1", "s2"], "s"),
        ("20 epochs (paused once, resumed)", ["e20"], None),
        ("6 epochs", ["e6"], None),
        ("3 epochs", ["e3"], None),
    ], "s0"),
    ("tried", "variations tried and not kept, each against the recipe's same seed", [
        ("AdamW, weight decay 0.05, no average (`--optimizer adamw --weight-decay 0.05 --ema 0`)", ["wd05s0"], None),
        ("stronger augmentation (`--degrees 15 --shift 3 --scale 0.15`)", ["aug15s0", "aug15s1"], None),
        ("48 and 96 filters instead of 32 and 64, 8 epochs", ["wide48s0"], None),
        ("three convolutions per block, 12 epochs", ["deep3s0"], None),
    ], None),
]


def fmt_min(s):
    return f"{s / 60:.1f} min"


def pct(x):
    return f"{100 * x:.2f}%"


def train_all(rec):
    return bool(rec["settings"].get("train_all"))


def table(name, d="docs/modern"):
    """The lines of table NAME (see TABLES), from the records in D."""
    _, _, groups, torch = next(t for t in TABLES if t[0] == name)
    logs = json.load(open(os.path.join(d, "from_logs.json")))
    recs = {}
    for _, stems, _ in groups:
        for s in stems:
            p = os.path.join(d, f"{s}.json")
            if os.path.exists(p):
                recs[s] = json.load(open(p))
    if not recs:
        return []
    all60 = all(train_all(r) for r in recs.values())
    if all60:
        lines = ["| run | seed | test after the last epoch | wall time | train images/s |", "| --- | --- | --- | --- | --- |"]
    else:
        lines = ["| run | seed | best validation (epoch) | test at that epoch | wall time | train images/s |", "| --- | --- | --- | --- | --- | --- |"]
    seen = set()
    for label, stems, ens in groups:
        rs = [(s, recs[s]) for s in stems if s in recs]
        for s, r in rs:
            if s in seen:
                continue
            seen.add(s)
            seed = r["settings"]["seed"]
            speed = f"{r['train_images_per_second']:,.0f}"
            if all60:
                lines.append(f"| nndl, {label} | {seed} | {pct(r['test_accuracy'])} | {fmt_min(r['wall_seconds'])} | {speed} |")
            else:
                val = f"{pct(r['best_validation_accuracy'])} ({r['best_validation_epoch']})"
                lines.append(f"| nndl, {label} | {seed} | {val} | {pct(r['test_accuracy'])} | {fmt_min(r['wall_seconds'])} | {speed} |")
        if len(rs) > 1:
            tests = [r["test_accuracy"] for _, r in rs]
            spread = f"**{pct(statistics.mean(tests))}** (sd {100 * statistics.stdev(tests):.2f})"
            wall = fmt_min(statistics.mean(r["wall_seconds"] for _, r in rs))
            if all60:
                lines.append(f"| nndl, {label}, mean of {len(rs)} | | {spread} | {wall} | |")
            else:
                val = pct(statistics.mean(r["best_validation_accuracy"] for _, r in rs))
                lines.append(f"| nndl, {label}, mean of {len(rs)} | | {val} | {spread} | {wall} | |")
        if ens and ens in logs["ensembles"]:
            e = logs["ensembles"][ens]
            what = f"ensemble of those {len(e['nets'])} (mean probabilities)"
            if all60:
                lines.append(f"| {what} | | **{pct(e['test_accuracy'])}** | | |")
            else:
                lines.append(f"| {what} | | {pct(e['validation_accuracy'])} | **{pct(e['test_accuracy'])}** | | |")
    if torch and torch in logs["pytorch"]:
        t = logs["pytorch"][torch]
        label = f"PyTorch, same recipe, {t['epochs']} epochs"
        speed = f"{t['train_images_per_second']:,.0f}"
        if all60:
            lines.append(f"| {label} | {t['seed']} | {pct(t['test_at_best'])} | {fmt_min(t['wall_seconds'])} | {speed} |")
        else:
            val = f"{pct(t['best_validation'])} ({t['best_epoch']})"
            lines.append(f"| {label} | {t['seed']} | {val} | {pct(t['test_at_best'])} | {fmt_min(t['wall_seconds'])} | {speed} |")
    return lines


def throughput(p="docs/modern/throughput.json"):
    """nndl against PyTorch on the recipe, alternated rounds of scripts/modern_throughput.sh."""
    if not os.path.exists(p):
        return []
    rounds = json.load(open(p))["rounds"]
    n = [r["nndl"] for r in rounds]
    t = [r["pytorch"] for r in rounds]
    med = lambda xs, k: statistics.median(x[k] for x in xs)
    ratio = med(n, "train_images_per_second") / med(t, "train_images_per_second")
    whole = med(t, "wall_seconds") / med(n, "wall_seconds")
    return [
        "| | training images/s (median of %d rounds) | whole run, s (median) |" % len(rounds),
        "| --- | --- | --- |",
        f"| nndl | {med(n, 'train_images_per_second'):,.0f} | {med(n, 'wall_seconds'):.1f} |",
        f"| PyTorch | {med(t, 'train_images_per_second'):,.0f} | {med(t, 'wall_seconds'):.1f} |",
        f"| nndl's advantage | {ratio:.2f}x | {whole:.2f}x |",
    ]


if __name__ == "__main__":
    d = sys.argv[1] if len(sys.argv) > 1 else "docs/modern"
    for name, title, _, _ in TABLES:
        print(f"{title}:\n")
        print("\n".join(table(name, d)))
        print()
    print("throughput:\n")
    print("\n".join(throughput(os.path.join(d, "throughput.json"))))
