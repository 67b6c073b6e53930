"""Prints the time-to-accuracy table from the records of scripts/speedrun_compare.py
(docs/speedrun/sittingK/TARGET-PROGRAM-sSEED.json, a folder per sitting) and the machine's measured fp32 limit
(docs/speedrun/limit.json, from `cargo bench --bench kernels -- --quick`).

    python3 scripts/summarize_speedrun.py [RECORDS_DIR]   (default docs/speedrun)

scripts/results_pages.py puts the same table in docs/results/speedrun.md.
"""
import glob
import json
import os
import statistics
import sys

# The recipes of examples/speedrun.rs: channels per stage, whether the last stage pools.
RECIPES = {"99.0": ([16, 32, 64], True), "99.5": ([16, 32, 64, 128], False), "99.7": ([32, 64, 128, 256], False)}


def train_flops(target):
    """Floating-point operations to train on one image: the convolutions' and the last
    layer's multiply-adds, twice for the FMA, three times for forward, input and filter
    gradients (the first layer has no input gradient, counted anyway: the bound stays a
    bound)."""
    channels, pool_last = RECIPES[target]
    macs, c_in, side = 0, 1, 28
    for k, c in enumerate(channels):
        macs += c * c_in * 9 * side * side
        if pool_last or k + 1 < len(channels):
            side //= 2
        c_in = c
    macs += c_in * side * side * 10
    return 2 * 3 * macs


def sittings(d):
    """The record folders `sitting*` of `d`, in order: one sitting each, its runs alternated."""
    return sorted(p for p in glob.glob(os.path.join(d, "sitting*")) if os.path.isdir(p))


def table(d="docs/speedrun"):
    limit = json.load(open(os.path.join(d, "limit.json")))
    gflops = limit["gflops_per_thread"] * limit["threads"]
    lines = [
        "| sitting | target | command | test accuracy per seed | mean | wall, s (median) | training images/s (median) "
        "| % of the fp32 limit | peak RSS, MiB | PyTorch / nndl wall |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    notes = []
    for k, sd in enumerate(sittings(d), 1):
        runs = [json.load(open(p)) for p in sorted(glob.glob(os.path.join(sd, "99.*-*-s*.json")))]
        if not runs:
            continue
        for target in sorted({r["target"] for r in runs}):
            walls = {}
            for prog in ("nndl", "nndl-f32", "pytorch"):
                rs = sorted((r for r in runs if r["target"] == target and r["program"] == prog), key=lambda r: r["seed"])
                if not rs:
                    continue
                accs = " / ".join(f"{100 * r['test_accuracy']:.2f}" for r in rs)
                mean = statistics.mean(r["test_accuracy"] for r in rs)
                wall = statistics.median(r["wall_seconds"] for r in rs)
                speed = statistics.median(r["train_images_per_second"] for r in rs)
                rss = max(r["peak_rss_mib"] for r in rs)
                share = 100 * speed * train_flops(target) / (gflops * 1e9)
                walls[prog] = wall
                name = {
                    "nndl": f"nndl, bf16 convolutions: `speedrun --target {target}`",
                    "nndl-f32": f"nndl, f32: `speedrun --target {target} --fp32`",
                    "pytorch": f"PyTorch, bf16 autocast + channels-last: `speedrun_pytorch.py --target {target}`",
                }[prog]
                ratio = f"{walls['pytorch'] / walls['nndl']:.2f}x" if prog == "pytorch" and "nndl" in walls else ""
                lines.append(f"| {k} | {target}% | {name} | {accs} | {100 * mean:.2f}% | {wall:.2f} | {speed:,.0f} | {share:.0f}% | {rss:,.0f} | {ratio} |")
        loads = [r["load_average"] for r in runs]
        notes.append(f"sitting {k}: {len(runs)} runs, {runs[0]['date']}, {runs[0]['cpu']}, {runs[0]['threads']} threads, "
                     f"load average before a run {min(loads):.2f} to {max(loads):.2f}")
    lines += ["", "; ".join(notes) + f". fp32 limit {gflops:.0f} GFLOP/s ({limit['threads']} x `{limit['line']}`)."]
    return lines


# The recipes' own epochs (examples/speedrun.rs), for their records, which name none.
EPOCHS = {"99.0": 1, "99.5": 3, "99.7": 15}


def frontier(d="docs/speedrun"):
    """Accuracy against whole-program time, seed 0: the recipes' runs with fewer or more
    epochs (frontier/, scripts/speedrun_compare.py --epochs) beside their own, each target's
    from the first sitting that ran it."""
    runs = [json.load(open(p)) for p in sorted(glob.glob(os.path.join(d, "frontier", "99.*-e*-*-s0.json")))]
    for target in EPOCHS:
        for sitting in sittings(d):
            own = [json.load(open(p)) for p in sorted(glob.glob(os.path.join(sitting, f"{target}-*-s0.json")))]
            own = [dict(r, epochs=EPOCHS[target]) for r in own if r["program"] != "nndl-f32"]
            if own:
                runs += own
                break
    if not runs:
        return []
    lines = [
        "| recipe | epochs | nndl (bf16 convolutions): test accuracy, wall s | PyTorch (bf16 autocast): test accuracy, wall s |",
        "| --- | --- | --- | --- |",
    ]
    for target, epochs in sorted({(r["target"], r["epochs"]) for r in runs}):
        cell = {}
        for r in runs:
            if (r["target"], r["epochs"]) == (target, epochs):
                cell[r["program"]] = f"{100 * r['test_accuracy']:.2f}%, {r['wall_seconds']:.1f}"
        lines.append(f"| {target}% | {epochs} | {cell.get('nndl', '')} | {cell.get('pytorch', '')} |")
    return lines


if __name__ == "__main__":
    print("\n".join(table(sys.argv[1] if len(sys.argv) > 1 else "docs/speedrun")))
