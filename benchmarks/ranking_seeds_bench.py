"""The KuaiRand ranking figures of issue 4 over several seeds, against the best peers.

Each seed runs the real commands, `reelrec train` (the recipe below, with `--batch-order
day` unless told otherwise) then `reelrec evaluate --json`, and the table shows each
label's AUC and GAUC as mean, half the 95% t-interval of that mean (how far the mean could
move with other seeds), standard deviation and lowest value over the seeds (the JSON also
has the highest), how many seeds beat the best peer, and half the 95% user-bootstrap
interval of one evaluation (the test set's own noise, which no retraining removes). Two
runs at a time share the cores. Usage:

    python benchmarks/ranking_seeds_bench.py --data ../shared/datasets/kuairand-pure \
        --seeds 0,1,2,3 [--batch-order shuffle] [--json out.json]
    python benchmarks/ranking_seeds_bench.py --from runs/seeds runs/more_seeds
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from scipy import stats

from reelrec.config import BatchOrder

REPO = Path(__file__).resolve().parents[1]
RECIPE = [
    "--pairwise-weights", "long_view=0.2,is_click=0.3", "--user-chunk", "2",
    "--linear-start", "is_like=0.75,is_follow",
]  # fmt: skip
# Issue 4's best peer per label (FuxiCTR 2.3.10 runs on the same split, one seed): AUC, GAUC.
PEERS = {"long_view": (0.7268, 0.6475), "is_click": (0.7290, 0.6425), "is_like": (0.7992, 0.6565)}


def reelrec() -> str:
    """The CLI of the Python running this script (the project's virtual environment)."""
    here = Path(sys.executable).with_name("reelrec")
    found = str(here) if here.exists() else shutil.which("reelrec")
    if found is None:
        sys.exit("reelrec not found: run this with the project's Python (make install)")
    return found


def one_seed(seed: int, args: argparse.Namespace, work: Path, threads: int) -> dict:
    """Train and evaluate one seed; the evaluation's JSON."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    model, out = work / f"seed{seed}", work / f"seed{seed}.json"
    common = ["--dataset", "kuairand", "--data", str(args.data)]
    train = ["--end", args.end, "--out", str(model), "--seed", str(seed), *RECIPE]
    steps = [
        ["train", *common, *train, "--batch-order", args.batch_order],
        ["evaluate", *common, "--model", str(model), "--start", args.start, "--json", str(out)],
    ]
    for step in steps:
        done = subprocess.run([reelrec(), *step], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"seed {seed}: reelrec {step[0]} failed:\n{done.stderr[-2000:]}")
    return json.loads(out.read_text())["labels"]


def summarise(runs: dict[int, dict]) -> dict[str, dict[str, dict[str, float]]]:
    """label -> metric -> mean, its 95% half-width over seeds, sd, low, high, seeds above
    the peer, test-set half-width."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for label, peer in PEERS.items():
        out[label] = {}
        for j, metric in enumerate(("auc", "gauc")):
            values = np.array([r[label][metric] for r in runs.values()])
            halves = [np.diff(r[label]["interval95"][metric])[0] / 2 for r in runs.values()]
            sd = float(values.std(ddof=1)) if values.size > 1 else 0.0
            t95 = float(stats.t.ppf(0.975, values.size - 1)) if values.size > 1 else 0.0
            out[label][metric] = {
                "mean": float(values.mean()),
                "mean_half_width": t95 * sd / np.sqrt(values.size),
                "sd": sd,
                "low": float(values.min()),
                "high": float(values.max()),
                "peer": peer[j],
                "seeds_above_peer": int((values > peer[j]).sum()),
                "test_half_width": float(np.mean(halves)),
            }
    return out


def run_seeds(args: argparse.Namespace) -> dict[int, dict]:
    """Train and evaluate every seed of --seeds, --parallel at a time."""
    seeds = [int(s) for s in args.seeds.split(",")]
    threads = max(1, (os.cpu_count() or 1) // args.parallel)
    with tempfile.TemporaryDirectory() as tmp, Progress() as progress:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        task = progress.add_task("train + evaluate", total=len(seeds))
        with ThreadPoolExecutor(args.parallel) as pool:
            futures = {s: pool.submit(one_seed, s, args, work, threads) for s in seeds}
            runs = {}
            for s, future in futures.items():
                runs[s] = future.result()
                progress.advance(task)
    return runs


def kept_runs(folders: list[Path]) -> dict[int, dict]:
    """The evaluations that earlier runs left in --keep folders, by seed."""
    runs = {}
    for folder in folders:
        for path in folder.glob("seed*.json"):
            runs[int(path.stem.removeprefix("seed"))] = json.loads(path.read_text())["labels"]
    if not runs:
        print(f"--from: no seed*.json in {', '.join(map(str, folders))}", file=sys.stderr)
        sys.exit(2)
    return dict(sorted(runs.items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared/datasets/kuairand-pure")
    ap.add_argument("--seeds", default="0,1", help="comma-separated training seeds")
    ap.add_argument("--end", default="20220501", help="last training day")
    ap.add_argument("--start", default="20220502", help="first evaluated day")
    ap.add_argument("--parallel", type=int, default=2, help="runs at a time")
    ap.add_argument("--keep", type=Path, help="keep the models and JSON here (default: temp)")
    ap.add_argument("--batch-order", default="day", choices=[o.value for o in BatchOrder])
    ap.add_argument("--json", type=Path)
    ap.add_argument("--from", dest="kept", type=Path, nargs="+",
                    help="summarise what --keep left in these folders instead of training")  # fmt: skip
    args = ap.parse_args()
    runs = kept_runs(args.kept) if args.kept else run_seeds(args)
    summary = summarise(runs)
    source = (
        f"kept in {' '.join(map(str, args.kept))}"
        if args.kept
        else f"--batch-order {args.batch_order}"
    )
    table = Table(title=f"KuaiRand ranking, seeds {','.join(map(str, runs))}, {source}")
    # "mean ±": half the 95% t-interval of the mean over seeds; "above": seeds that beat the
    # best peer; "test ±": half the 95% user-bootstrap interval of one evaluation
    for col in ("label", "metric", "mean", "mean ±", "sd", "lowest", "peer", "above", "test ±"):
        table.add_column(col, justify="left" if col in ("label", "metric") else "right")
    for label, metrics in summary.items():
        for metric, s in metrics.items():
            table.add_row(label, metric.upper(), f"{s['mean']:.4f}",
                          f"{s['mean_half_width']:.4f}", f"{s['sd']:.4f}",
                          f"{s['low']:.4f}", f"{s['peer']:.4f}",
                          f"{s['seeds_above_peer']}/{len(runs)}",
                          f"{s['test_half_width']:.4f}")  # fmt: skip
    Console(width=None if sys.stdout.isatty() else 120).print(table)  # logs: no cut columns
    if args.json:
        args.json.write_text(json.dumps({"seeds": runs, "summary": summary}, indent=2))


if __name__ == "__main__":
    main()
