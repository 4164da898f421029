"""IdIndex throughput: batch lookups of 1M ids against a table of 10M ids, on one core.

Goal (issue 3): >= 10M lookups/s. Also reports batch insert and lookups with 50% misses.
Usage: .venv/bin/python benchmarks/hashmap_bench.py [--size N] [--batch N] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
from rich.console import Console
from rich.table import Table

from reelrec.embedding import IdIndex

console = Console()


def rate(fn, n: int, repeats: int) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(n / (time.perf_counter() - t0))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--size", type=int, default=10_000_000)
    p.add_argument("--batch", type=int, default=1_000_000)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--json", type=str, default=None)
    args = p.parse_args()
    rng = np.random.default_rng(0)
    ids = rng.integers(-(2**63), 2**63 - 1, args.size, dtype=np.int64)  # raw 64-bit ids
    index = IdIndex()
    index.insert(ids[:1000], np.arange(1000))  # compile / load the kernels
    index = IdIndex()
    t0 = time.perf_counter()
    index.insert(ids, np.arange(args.size, dtype=np.int64))
    insert_rate = args.size / (time.perf_counter() - t0)
    hits = ids[rng.integers(0, args.size, args.batch)]
    half = hits.copy()
    half[::2] = rng.integers(-(2**63), 2**63 - 1, half[::2].size, dtype=np.int64)
    out = np.empty(args.batch, dtype=np.int64)
    hit_rates = rate(lambda: index.lookup(hits, out), args.batch, args.repeats)
    assert (ids[out] == hits).all()
    miss_rates = rate(lambda: index.lookup(half, out), args.batch, args.repeats)
    table = Table(title=f"IdIndex, {args.size:,} ids, batches of {args.batch:,}, one thread")
    for c in ("operation", "best M/s", "median M/s"):
        table.add_column(c, justify="right" if c != "operation" else "left")
    table.add_row(
        "lookup (all hits)",
        f"{max(hit_rates) / 1e6:.1f}",
        f"{statistics.median(hit_rates) / 1e6:.1f}",
    )
    table.add_row(
        "lookup (50% misses)",
        f"{max(miss_rates) / 1e6:.1f}",
        f"{statistics.median(miss_rates) / 1e6:.1f}",
    )
    table.add_row("insert (10M, incl. rehashes)", f"{insert_rate / 1e6:.1f}", "")
    console.print(table)
    console.print(
        f"index memory: {index.nbytes / 2**20:.0f} MiB ({index.nbytes / len(index):.1f} B/id)"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "lookups_per_s": max(hit_rates),
                    "lookups_per_s_median": statistics.median(hit_rates),
                    "lookups_per_s_half_miss": max(miss_rates),
                    "inserts_per_s": insert_rate,
                    "index_bytes": index.nbytes,
                    "size": args.size,
                    "batch": args.batch,
                },
                f,
                indent=2,
            )


if __name__ == "__main__":
    main()
