"""Loading + validation throughput (rows/s) on KuaiRand (and MovieLens), and simulator
throughput (events/s).

    .venv/bin/python benchmarks/load_bench.py [--data ../shared/datasets/kuairand-pure]
        [--movielens ../shared/datasets/ml-latest-small] [--repeat 5] [--json out.json]

Each figure is end to end through the public API (`load_dataset`): read files, check them,
join features, validate every row, sort. KuaiRand is timed twice: as shipped (Parquet log)
and from a CSV copy of the same log (the official format). The simulator is timed through
`reelrec.sim.simulate_logs`. Best and median over --repeat runs are reported (the median is
the honest figure on a shared machine; the best shows what the code can do), and rows per
CPU-second of this process (all threads), which other load on the machine barely moves.
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


def bench_kuairand(folder: Path, repeat: int) -> dict[str, dict[str, float]]:
    out = {}
    out["kuairand (parquet log)"] = timed(
        lambda: load_dataset("kuairand", folder, None, None).rows_in, repeat
    )
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp)
        for path in folder.iterdir():
            if path.name.startswith("log_standard_") and path.suffix == ".parquet":
                pacsv.write_csv(pq.read_table(path), copy / f"{path.stem}.csv")
            elif path.suffix == ".csv":
                shutil.copy(path, copy / path.name)
        out["kuairand (csv log)"] = timed(
            lambda: load_dataset("kuairand", copy, None, None).rows_in, repeat
        )
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
    p.add_argument("--no-sim", action="store_true", help="skip the simulator")
    p.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = p.parse_args()

    results: dict[str, dict[str, float]] = {}
    if args.data.exists():
        results.update(bench_kuairand(args.data, args.repeat))
    else:
        Console(stderr=True).print(f"[yellow]no KuaiRand data at {args.data}: skipped[/]")
    if args.movielens.exists():
        results["movielens (ml-latest csv)"] = bench_movielens(args.movielens, args.repeat)
    sim = None if args.no_sim else bench_sim(args.sim_repeat)
    if sim is not None:
        results["simulator (SimConfig())"] = sim

    table = Table(title="load + validate throughput (higher is better)")
    cols = ("what", "rows", "best s", "median s", "best rows/s", "median rows/s", "rows/cpu-s")
    for col in cols:
        table.add_column(col, justify="left" if col == "what" else "right")
    for name, r in results.items():
        table.add_row(
            name, f"{int(r['rows']):,}", f"{r['best_s']:.3f}", f"{r['median_s']:.3f}",
            f"{r['best_rows_per_s']:,.0f}", f"{r['median_rows_per_s']:,.0f}",
            f"{r['rows_per_cpu_s']:,.0f}",
        )  # fmt: skip
    Console().print(table)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
