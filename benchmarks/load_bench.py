"""Loading + validation throughput (rows/s) on KuaiRand (and MovieLens), and simulator
throughput (events/s).

    .venv/bin/python benchmarks/load_bench.py [--data ../shared/datasets/kuairand-pure]
        [--movielens ../shared/datasets/ml-latest-small] [--repeat 5] [--json out.json]

Each figure is end to end through the public API (`load_dataset`): read files, check them,
join features, validate every row, sort. KuaiRand is timed three ways: as shipped (Parquet
log), from a CSV copy of the log (the official format), and with --scale Parquet copies of
the log side by side (many files; every event key then repeats, the worst case for the sort).
The simulator is timed through `reelrec.sim.simulate_logs` on the demo's world. Best and
median over --repeat runs are reported (the median is the honest figure on a shared
machine), and rows per CPU-second of this process (all threads), which other load on the
machine barely moves.
Aims (issue 2): >= 1M rows/s loading, >= 200k simulated events/s.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table

from reelrec.data import load_dataset

REPO = Path(__file__).resolve().parent.parent
DATASETS = REPO.parent / "shared" / "datasets"


def timed(fn: Callable[[], int], repeat: int) -> dict[str, float]:
    """Run `fn` (returns a row count) `repeat` times after one warm-up; rows/s figures."""
    rows = fn()  # warm-up: imports, page cache, thread pools
    seconds, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        rows = fn()
        seconds.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    best, median = min(seconds), statistics.median(seconds)
    return {
        "rows": rows,
        "best_s": best,
        "median_s": median,
        "best_rows_per_s": rows / best,
        "median_rows_per_s": rows / median,
        # CPU seconds of this process (all threads): the cost without other load's noise
        "median_cpu_s": statistics.median(cpu),
        "rows_per_cpu_s": rows / statistics.median(cpu),
    }


def bench_kuairand(folder: Path, repeat: int, scale: int) -> dict[str, dict[str, float]]:
    """As shipped; from CSV copies of the log; and `scale` Parquet copies of the log side by
    side (more rows over the same fixed cost of reading the feature files)."""
    load = lambda d: lambda: load_dataset("kuairand", d, None, None).rows_in  # noqa: E731
    out = {"kuairand parquet": timed(load(folder), repeat)}
    logs = sorted(folder.glob("log_standard_*.parquet"))
    with tempfile.TemporaryDirectory() as tmp:
        csv_dir, big_dir = Path(tmp) / "csv", Path(tmp) / "big"
        csv_dir.mkdir()
        big_dir.mkdir()
        for path in folder.glob("*_features_*.csv"):
            shutil.copy(path, csv_dir / path.name)
            shutil.copy(path, big_dir / path.name)
        for path in logs:
            pacsv.write_csv(pq.read_table(path), csv_dir / f"{path.stem}.csv")
            for i in range(scale):
                shutil.copy(path, big_dir / f"{path.stem}_copy{i}.parquet")
        out["kuairand csv"] = timed(load(csv_dir), repeat)
        if scale > 1:
            out[f"kuairand parquet x{scale}"] = timed(load(big_dir), max(1, repeat // 2))
    return out


def bench_movielens(folder: Path, repeat: int) -> dict[str, float]:
    return timed(lambda: load_dataset("movielens", folder, None, None).rows_in, repeat)


def bench_sim(repeat: int) -> dict[str, float] | None:
    try:
        from reelrec.sim import SimConfig, simulate_logs
    except ImportError:  # the simulator is optional for this benchmark
        return None
    cfg = SimConfig()  # the demo's world
    return timed(lambda: simulate_logs(cfg).events.num_rows, repeat)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DATASETS / "kuairand-pure")
    p.add_argument("--movielens", type=Path, default=DATASETS / "ml-latest-small")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--sim-repeat", type=int, default=3)
    p.add_argument("--scale", type=int, default=8, help="copies of the log for the xN row")
    p.add_argument("--no-sim", action="store_true", help="skip the simulator")
    p.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = p.parse_args()

    results: dict[str, dict[str, float]] = {}
    if args.data.exists():
        results.update(bench_kuairand(args.data, args.repeat, args.scale))
    else:
        Console(stderr=True).print(f"[yellow]no KuaiRand data at {args.data}: skipped[/]")
    if args.movielens.exists():
        results["movielens csv"] = bench_movielens(args.movielens, args.repeat)
    sim = None if args.no_sim else bench_sim(args.sim_repeat)
    if sim is not None:
        results["simulator (demo world)"] = sim

    table = Table(title="load + validate throughput (higher is better)")
    cols = ("what", "rows", "best s", "med s", "best rows/s", "med rows/s", "rows/cpu-s")
    for col in cols:
        table.add_column(col, justify="left" if col == "what" else "right")
    for name, r in results.items():
        table.add_row(
            name, f"{int(r['rows']):,}", f"{r['best_s']:.3f}", f"{r['median_s']:.3f}",
            f"{r['best_rows_per_s']:,.0f}", f"{r['median_rows_per_s']:,.0f}",
            f"{r['rows_per_cpu_s']:,.0f}",
        )  # fmt: skip
    Console(width=120).print(table)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
