"""Prints the tables of chapter 3's figures, chapter 5's speeds of learning and chapter 3's
exercises from their records: the --json records of `book SUBCOMMAND --seeds 3`
(scripts/reproduce_book_figures.sh) and of scripts/ch3_exercises.sh.

    python3 scripts/summarize_book.py [FIGURES_DIR [EXERCISES_DIR]]   (default docs/book, docs/book/ch3_exercises)

The book's figures (its text and its plots' end points) are constants here; every nndl number
is computed from the records. scripts/results_pages.py puts the same tables in
docs/results/book.md.
"""
import json
import os
import statistics
import sys


def load(d, name):
    p = os.path.join(d, f"{name}.json")
    return json.load(open(p)) if os.path.exists(p) else None


def pm(values, scale=100, digits=2, unit="%"):
    """mean ± sd of the seeds, as the book program prints it."""
    v = [scale * x for x in values]
    sd = f" ± {statistics.stdev(v):.{digits}f}" if len(v) > 1 else ""
    return f"{statistics.mean(v):.{digits}f}{sd}{unit}"


def mean(values, scale=100, digits=2):
    return f"{statistics.mean(scale * x for x in values):.{digits}f}"


def wall(rec):
    return f"{rec['wall_seconds']:.0f} s"


def figures(d="docs/book"):
    """Chapter 3's figures and chapter 5's speeds of learning, one row per number the book gives."""
    lines = [
        "| experiment | command | book | nndl, mean ± sd of 3 seeds | wall |",
        "| --- | --- | --- | --- | --- |",
    ]
    o = load(d, "overfitting")
    if o:
        r = o["results"]
        test = pm([s[-1] for s in r["test_accuracy"]])
        train = pm([s[-1] for s in r["training_accuracy"]])
        lines.append(f"| overfitting: [784,30,10], N(0,1) weights, first 1,000 images, {r['epochs']} epochs, eta 0.5 | `book overfitting` | test 82.27%, training 100% | test {test}, training {train} | {wall(o)} |")
    o = load(d, "overfitting-l2")
    if o:
        r = o["results"]
        lines.append(f"| the same, L2 lmbda {r['lambda']} | `book overfitting --lambda {r['lambda']}` | test 87.1% | {pm([s[-1] for s in r['test_accuracy']])} | {wall(o)} |")
    i = load(d, "init")
    if i:
        by = {(r["hidden"], r["init"].split()[0]): r["validation_accuracy"] for r in i["results"]}
        first = lambda h, k: pm([s[0] for s in by[(h, k)]])
        last = lambda h, k: pm([s[-1] for s in by[(h, k)]])
        n = len(by[(30, "Old")][0])
        lines.append(f"| weight init, [784,30,10], eta 0.1, lmbda 5: after epoch 0, N(0,1) / N(0,1/n_in) | `book init` | 86.43% / 92.70% | {first(30, 'Old')} / {first(30, 'New')} | {wall(i)} (both sizes) |")
        lines.append(f"| the same after {n} epochs | | both 96.4-96.5% | {last(30, 'Old')} / {last(30, 'New')} | |")
        if (100, "Old") in by:
            lines.append(f"| [784,100,10] after epoch 0 / after {n} | | (figure only) | {first(100, 'Old')} / {first(100, 'New')}, {last(100, 'Old')} / {last(100, 'New')} | |")
    lr = load(d, "learning-rates")
    if lr:
        etas = " / ".join(f"{r['eta']:g}" for r in lr["results"])
        costs = " / ".join(mean([s[-1] for s in r["training_cost"]], scale=1, digits=3) for r in lr["results"])
        n = len(lr["results"][0]["training_cost"][0])
        lines.append(f"| learning rates {etas}: training cost after {n} epochs (mean) | `book learning-rates` | (figure: 2.5 oscillates, 0.25 fastest) | {costs} | {wall(lr)} |")
    dp = load(d, "depth")
    if dp:
        book = {2: "96.48%", 3: "96.90%", 4: "96.57%", 5: "96.53%"}
        for k, r in enumerate(dp["results"]):
            sizes = "[" + ",".join(map(str, r["sizes"])) + "]"
            if k == 0:
                lines.append(f"| depth, eta 0.1, lmbda 5, 30 epochs: {sizes} | `book depth` | {book.get(len(r['sizes']) - 1, '')} | {pm(r['validation_accuracy'])} | {wall(dp)} (all four) |")
            else:
                lines.append(f"| {sizes} | | {book.get(len(r['sizes']) - 1, '')} | {pm(r['validation_accuracy'])} | |")
    ls = load(d, "layer-speeds")
    if ls:
        book = {2: "0.066, 0.31", 3: "0.012, 0.060, 0.283", 4: "0.003, 0.017, 0.070, 0.285"}
        names = {2: "speed of learning at the start, `\\|\\|dC/db\\|\\|` of each hidden layer (first 1,000 images): two hidden layers", 3: "three hidden layers", 4: "four hidden layers"}
        for k, r in enumerate(ls["results"]):
            h = r["hidden_layers"]
            nndl = ", ".join(mean([s[0][j] for s in r["speeds"]], scale=1, digits=3) for j in range(h))
            cmd, w = ("`book layer-speeds`", f"{wall(ls)} (all three, {len(r['speeds'][0]) - 1} epochs of training each)") if k == 0 else ("", "")
            lines.append(f"| {names.get(h, f'{h} hidden layers')} | {cmd} | {book.get(h, '')} | {nndl} (means) | {w} |")
    return lines


# more_data.py's accuracies in the book's figure, by training-set size.
BOOK_MORE_DATA = {
    "network": {100: 69.09, 200: 76.37, 500: 85.29, 1000: 88.85, 2000: 91.27, 5000: 93.24, 10000: 94.89, 20000: 95.85, 50000: 95.97},
    "svm": {100: 25.07, 200: 48.93, 500: 75.13, 1000: 83.87, 2000: 88.49, 5000: 91.46, 10000: 92.45, 20000: 93.47, 50000: 94.48},
}


def more_data(d="docs/book"):
    """Validation accuracy against training-set size, network (mean of seeds) and SVM."""
    m = load(d, "more-data")
    if not m:
        return []
    rs = m["results"]
    lines = [
        "| training images | " + " | ".join(f"{r['size']:,}" for r in rs) + " |",
        "| --- |" + " --- |" * len(rs),
        "| network, book | " + " | ".join(f"{BOOK_MORE_DATA['network'].get(r['size'], '')}" for r in rs) + " |",
        "| network, nndl | " + " | ".join(mean(r["network"]) for r in rs) + " |",
        "| SVM, book | " + " | ".join(f"{BOOK_MORE_DATA['svm'].get(r['size'], '')}" for r in rs) + " |",
        "| SVM, nndl | " + " | ".join(f"{100 * r['svm']:.2f}" for r in rs) + " |",
        "",
        f"Wall time of the whole experiment, SVM included: {m['wall_seconds']:.0f} s.",
    ]
    return lines


def sd3(values, digits=3):
    """mean ± sd of plain numbers (no scaling), `digits` decimals."""
    return pm(values, scale=1, digits=digits, unit="")


def hessian(d="docs/book"):
    """`book hessian`: the largest Hessian eigenvalue per eta against 2/eta, and the hvp cost."""
    h = load(d, "hessian")
    if not h:
        return []
    r = h["results"]
    epochs = r["epochs"]
    shown = [e for e in (0, 1, 10, epochs) if e <= epochs]
    head = " | ".join(f"epoch {e}" for e in shown)
    lines = [
        f"| eta | 2/eta | lambda_max, {r['hessian_images']:,} images: {head} | eta x lambda_max, epoch {epochs} "
        f"| mini-batch of 10: lambda_max, epoch 0 | mean over epochs 1-{epochs} | eta x that | training cost, epoch {epochs} |",
        "| --- | --- |" + " --- |" * (len(shown) + 5),
    ]
    for run in r["runs"]:
        eta = run["eta"]
        lam = run["lambda_max"]
        cells = " | ".join(sd3([s[e] for s in lam]) for e in shown)
        mini = run["minibatch_lambda_max"]
        mini_mean = [statistics.mean(s[1:]) for s in mini]
        lines.append(
            f"| {eta:g} | {run['two_over_eta']:g} | {cells} | {sd3([eta * s[epochs] for s in lam])} "
            f"| {sd3([s[0] for s in mini])} | {sd3(mini_mean)} | {sd3([eta * m for m in mini_mean])} "
            f"| {sd3([s[epochs] for s in run['training_cost']])} |"
        )
    c = r["cost_ratio"]
    conv = [ok for run in r["runs"] for s in run.get("converged", []) for ok in s]
    lines.append("")
    lines.append(
        f"mean ± sd of {h['seeds']} seeds; {h['seeds'] * len(r['runs']) * (epochs + 1)} eigenvalues of the "
        f"{r['hessian_images']:,}-image Hessian, power iteration of at most {r['max_power_iterations']} "
        f"products to a relative tolerance of {r['tolerance']:g}"
        + (f" ({conv.count(False)} did not converge: lower bounds)" if conv else "")
        + f"; each mini-batch figure the mean over the first {r['minibatches']} mini-batches of 10. "
        f"One Hessian-vector product on {c['images']:,} images took {1e3 * c['hvp_seconds']:.2f} ms, "
        f"one gradient {1e3 * c['gradient_seconds']:.2f} ms: a ratio of {c['ratio']:.2f} (medians of "
        f"{c['repetitions']}, interleaved). Wall time {h['wall_seconds']:.0f} s."
    )
    return lines


def hessian_free(d="docs/book"):
    """`book hessian-free`: training cost per epoch of the Hessian-free optimiser and of SGD."""
    h = load(d, "hessian-free")
    if not h:
        return []
    r = h["results"]
    epochs = r["epochs"]
    shown = [e for e in (1, 2, 5, 10, 20, epochs) if e <= epochs]
    shown = sorted(set(shown))
    lines = [
        "| method | " + " | ".join(f"cost, epoch {e}" for e in shown)
        + f" | validation accuracy, epoch {epochs} | training s, {epochs} epochs | Hessian-vector products |",
        "| --- |" + " --- |" * (len(shown) + 3),
    ]
    for run in r["runs"]:
        if run["method"] == "sgd":
            name = f"SGD, eta {run['eta']:g}, mini-batch 10"
            prods = "-"
        else:
            name = (f"Hessian-free, {r['batch']:,} images a step, at most {r['cg_iterations']} CG "
                    f"iterations, damping from {r['initial_damping']:g}")
            prods = sd3([s[epochs] for s in run["hvp_products"]], 0)
        cells = " | ".join(sd3([s[e] for s in run["training_cost"]]) for e in shown)
        acc = pm([s[epochs] for s in run["validation_accuracy"]])
        secs = sd3([s[epochs] for s in run["seconds"]], 1)
        lines.append(f"| {name} | {cells} | {acc} | {secs} | {prods} |")
    lines.append("")
    lines.append(
        f"mean ± sd of {h['seeds']} seeds, [784,30,10], lmbda {r['lambda']:g}, {r['train_images']:,} training "
        f"images; cost on all of them with the L2 term. Wall time {h['wall_seconds']:.0f} s."
    )
    return lines


# (record stem of scripts/ch3_exercises.sh, the flags it passes)
EXERCISES = [
    ("sgd", "(plain SGD)"),
    ("momentum-0.5", "`--momentum 0.5`"),
    ("momentum-0.5-eta-0.25", "`--momentum 0.5 --eta 0.25` (the same step size eta/(1-mu))"),
    ("l1-5.0", "`--l1 5.0` (instead of L2)"),
    ("tanh", "`--activation tanh`"),
    ("tanh-eta-0.1", "`--activation tanh --eta 0.1`"),
    ("eta-schedule", "`--eta-schedule --epochs 200`"),
]


def exercises(d="docs/book/ch3_exercises"):
    """Best validation accuracy of each exercise's flags, seeds 1-3."""
    lines = [
        "| flags | best validation accuracy (seeds 1, 2, 3) | mean | epoch of the best | epochs run | s / run (median) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for stem, flags in EXERCISES:
        recs = [load(d, f"{stem}_s{s}") for s in (1, 2, 3)]
        recs = [r for r in recs if r]
        if not recs:
            continue
        best, at, runs = [], [], []
        for r in recs:
            v = [e.get("validation_accuracy") or 0 for e in r["epochs"]]
            best.append(max(v))
            at.append(v.index(max(v)))
            runs.append(len(v))
        walls = statistics.median(r["wall_seconds"] for r in recs)
        lines.append(
            f"| {flags} | {', '.join(f'{100 * b:.2f}' for b in best)} | {mean(best)}% | "
            f"{', '.join(map(str, at))} | {', '.join(map(str, runs))} | {walls:.0f} |"
        )
    return lines


if __name__ == "__main__":
    figs = sys.argv[1] if len(sys.argv) > 1 else "docs/book"
    ex = sys.argv[2] if len(sys.argv) > 2 else os.path.join(figs, "ch3_exercises")
    print("\n".join(figures(figs)))
    print()
    print("\n".join(more_data(figs)))
    print()
    print("\n".join(exercises(ex)))
    print()
    print("\n".join(hessian(figs)))
    print()
    print("\n".join(hessian_free(figs)))
