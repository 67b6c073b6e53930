"""Runs the time-to-accuracy recipes side by side, nndl then PyTorch for each seed in turn,
and keeps one JSON record per run (docs/speedrun/sittingK/ holds the kept ones, a folder per
sitting; results_pages.py makes docs/results/speedrun.md's tables from them).

    python3 scripts/speedrun_compare.py --target 99.0 --seeds 0 1 2 --fp32 --out docs/speedrun/sitting3

Each record: the program, target, seed, the accuracy it printed, the whole process's wall
time and peak resident memory measured from outside (start to exit: loading, training and
evaluating; for PyTorch the interpreter's start and `import torch` too), the training
throughput the program printed, the load average before the run and the CPU model. Build the
example first (cargo build --release --example speedrun); nothing is built here, so no
compile is timed.
"""
import argparse
import json
import os
import re
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cpu_model():
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    m = re.search(r"Model name:\s*(.+)", out)
    return m.group(1).strip() if m else "unknown"


def timed(cmd):
    """(stdout, wall seconds, peak RSS in MiB) of one run of `cmd`."""
    start = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - start
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}):\n{out}")
    return out, wall, usage.ru_maxrss / 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", required=True, choices=["99.0", "99.5", "99.7"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", required=True, help="directory for the records")
    ap.add_argument("--epochs", type=int, help="override the recipe's epochs (a frontier point); "
                    "the records are then named TARGET-eEPOCHS-PROGRAM-sSEED.json")
    ap.add_argument("--only", choices=["nndl", "nndl-f32", "pytorch"], help="run one side only")
    ap.add_argument("--fp32", action="store_true", help="also run nndl with --fp32 (program nndl-f32)")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    exe = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "examples", "speedrun")
    nndl = [exe, "--target", a.target, "--threads", str(a.threads), "--data", "data/mnist"]
    sides = {
        "nndl": nndl,
        "pytorch": ["python3", "benches/speedrun_pytorch.py", "--target", a.target, "--threads", str(a.threads), "--data", "data/mnist"],
    }
    if a.epochs is not None:
        for cmd in sides.values():
            cmd += ["--epochs", str(a.epochs)]
    if a.fp32:
        sides["nndl-f32"] = nndl + ["--fp32"]
    cpu = cpu_model()
    for seed in a.seeds:
        for name, cmd in sides.items():
            if a.only and name != a.only:
                continue
            load = os.getloadavg()[0]
            out, wall, rss = timed(cmd + ["--seed", str(seed)])
            acc = float(re.search(r"Test accuracy ([\d.]+)%", out).group(1)) / 100
            speed = [float(s) for s in re.findall(r"\((\d+) (?:training )?images/s\)", out)]
            record = {
                "program": name, "target": a.target, "epochs": a.epochs, "seed": seed, "test_accuracy": round(acc, 4),
                "wall_seconds": round(wall, 3), "peak_rss_mib": round(rss, 1),
                "train_images_per_second": round(sum(speed) / len(speed)) if speed else None,
                "bf16": name != "nndl-f32", "load_average": load, "cpu": cpu, "threads": a.threads,
                "date": time.strftime("%Y-%m-%d"),
            }
            print(json.dumps(record), flush=True)
            stem = a.target if a.epochs is None else f"{a.target}-e{a.epochs}"
            with open(os.path.join(a.out, f"{stem}-{name}-s{seed}.json"), "w") as f:
                json.dump(record, f, indent=1)
                f.write("\n")


if __name__ == "__main__":
    main()
