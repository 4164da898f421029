"""Embedding training throughput: reelrec dynamic tables vs TorchRec vs nn.EmbeddingBag.

The standard workload (issue 3): 8 tables x 500,000 ids, dim 64, batch 4,096, 4 ids per bag
per table, ids floor(u**3 * 500000) (a heavy head), sum pooling, loss = sum of the pooled
outputs, row-wise Adagrad lr 0.01; one step = forward + backward + update.

Rows:
  reelrec            tables pre-filled with every id (all admitted)
  reelrec_dynamic    tables start empty each round; ids are inserted as they arrive
  torchrec           TorchRec FusedEmbeddingBagCollection, EXACT_ROWWISE_ADAGRAD (FBGEMM CPU)
  embeddingbag_sparseadam  nn.EmbeddingBag(sparse=True) + torch.optim.SparseAdam

Usage: .venv/bin/python benchmarks/embedding_bench.py [--rounds 3] [--json FILE] [--profile]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from reelrec.batch import Jagged, KeyedJagged
from reelrec.embedding import EmbeddingCollection, EmbeddingTableConfig

console = Console()


@dataclass
class Workload:
    tables: int = 8
    num_ids: int = 500_000
    dim: int = 64
    batch: int = 4096
    bag: int = 4
    lr: float = 0.01
    n_batches: int = 16
    seed: int = 0

    def batches(self) -> list[np.ndarray]:
        """n_batches arrays of shape (tables, batch * bag) int64."""
        rng = np.random.default_rng(self.seed)
        shape = (self.tables, self.batch * self.bag)
        return [
            np.floor(rng.random(shape) ** 3 * self.num_ids).astype(np.int64)
            for _ in range(self.n_batches)
        ]


def time_steps(step: Callable[[int], None], warmup: int, steps: int) -> float:
    """Seconds for `steps` steps after `warmup` untimed ones."""
    for i in range(warmup):
        step(i)
    t0 = time.perf_counter()
    for i in range(steps):
        step(warmup + i)
    return time.perf_counter() - t0


# ---------------------------------------------------------------------------------------
# reelrec
# ---------------------------------------------------------------------------------------
def reelrec_collection(w: Workload) -> EmbeddingCollection:
    configs = [
        EmbeddingTableConfig(
            name=f"t{t}", dim=w.dim, optimizer="rowwise_adagrad", lr=w.lr, chunk_rows=65536
        )
        for t in range(w.tables)
    ]
    return EmbeddingCollection(configs, {f"f{t}": f"t{t}" for t in range(w.tables)})


def reelrec_inputs(w: Workload, batches: list[np.ndarray]) -> list[KeyedJagged]:
    lengths = torch.full((w.batch,), w.bag, dtype=torch.int64)
    return [
        KeyedJagged({f"f{t}": Jagged(torch.from_numpy(b[t]), lengths) for t in range(w.tables)})
        for b in batches
    ]


def reelrec_step(ec: EmbeddingCollection, inputs: list[KeyedJagged]) -> Callable[[int], None]:
    def step(i: int) -> None:
        out = ec(inputs[i % len(inputs)])
        # (B, tables * D) like TorchRec's KeyedTensor.values(), then one sum: the same loss
        # graph for both (TorchRec concatenates inside its forward).
        loss = torch.cat(list(out.values()), dim=1).sum()
        loss.backward()

    return step


def prefill(ec: EmbeddingCollection, w: Workload) -> None:
    all_ids = torch.arange(w.num_ids, dtype=torch.int64)
    for table in ec.tables.values():
        table.lookup(all_ids)


def bench_reelrec(w: Workload, batches: list[np.ndarray], warmup: int, steps: int) -> float:
    ec = reelrec_collection(w)
    prefill(ec, w)
    return time_steps(reelrec_step(ec, reelrec_inputs(w, batches)), warmup, steps)


def bench_reelrec_dynamic(w: Workload, batches: list[np.ndarray], warmup: int, steps: int) -> float:
    # Empty tables each round, no warm-up on them: the first steps pay for the inserts.
    ec = reelrec_collection(w)
    return time_steps(reelrec_step(ec, reelrec_inputs(w, batches)), 0, steps)


# ---------------------------------------------------------------------------------------
# TorchRec and nn.EmbeddingBag
# ---------------------------------------------------------------------------------------
def torchrec_available() -> str | None:
    """None when TorchRec + FBGEMM CPU load, else the reason they do not."""
    try:
        import torchrec  # noqa: F401
        from torchrec.modules.fused_embedding_modules import (  # noqa: F401
            FusedEmbeddingBagCollection,
        )
    except Exception as e:  # any import failure (missing, ABI mismatch) skips the row
        return f"{e.__class__.__name__}: {e}".splitlines()[0][:160]
    return None


def bench_torchrec(w: Workload, batches: list[np.ndarray], warmup: int, steps: int) -> float:
    from torchrec import EmbeddingBagConfig, KeyedJaggedTensor
    from torchrec.modules.fused_embedding_modules import FusedEmbeddingBagCollection
    from torchrec.optim import RowWiseAdagrad

    tables = [
        EmbeddingBagConfig(
            name=f"t{t}", embedding_dim=w.dim, num_embeddings=w.num_ids, feature_names=[f"f{t}"]
        )
        for t in range(w.tables)
    ]
    fused = FusedEmbeddingBagCollection(
        tables=tables,
        optimizer_type=RowWiseAdagrad,
        optimizer_kwargs={"lr": w.lr},
        device=torch.device("cpu"),
    )
    lengths = torch.full((w.tables * w.batch,), w.bag, dtype=torch.int64)
    inputs = [
        KeyedJaggedTensor(
            keys=[f"f{t}" for t in range(w.tables)],
            values=torch.from_numpy(b.reshape(-1)),
            lengths=lengths,
        )
        for b in batches
    ]

    def step(i: int) -> None:
        kt = fused(inputs[i % len(inputs)])
        kt.values().sum().backward()

    return time_steps(step, warmup, steps)


def bench_embeddingbag(w: Workload, batches: list[np.ndarray], warmup: int, steps: int) -> float:
    bags = torch.nn.ModuleList(
        torch.nn.EmbeddingBag(w.num_ids, w.dim, mode="sum", sparse=True) for _ in range(w.tables)
    )
    opt = torch.optim.SparseAdam(list(bags.parameters()), lr=w.lr)
    inputs = [torch.from_numpy(b).view(w.tables, w.batch, w.bag) for b in batches]

    def step(i: int) -> None:
        x = inputs[i % len(inputs)]
        opt.zero_grad(set_to_none=True)
        loss = torch.stack([bag(x[t]).sum() for t, bag in enumerate(bags)]).sum()
        loss.backward()
        opt.step()

    return time_steps(step, warmup, steps)


# ---------------------------------------------------------------------------------------
# profile: where a reelrec step's milliseconds go
# ---------------------------------------------------------------------------------------
def profile_reelrec(w: Workload, batches: list[np.ndarray], steps: int) -> dict[str, float]:
    """Per-step ms in: host id resolution (hash lookup + admission + dedup + sighting
    counts), forward pooling, building the loss, backward (grad sum + fused update)."""
    from reelrec.embedding.collection import _pooled_segment

    ec = reelrec_collection(w)
    prefill(ec, w)
    phases = {"resolve_ids_host": 0.0, "forward_pool": 0.0, "loss": 0.0, "backward_update": 0.0}
    lengths = np.full(w.batch, w.bag, dtype=np.int64)
    for i in range(steps + 2):
        b = batches[i % len(batches)]
        t0 = time.perf_counter()
        plans = [
            table.plan(b[t], [_pooled_segment(0, lengths, False)])
            for t, table in enumerate(ec.tables.values())
        ]
        t1 = time.perf_counter()
        outs = [
            table.outputs(p, ec._anchor)[0]
            for table, p in zip(ec.tables.values(), plans, strict=True)
        ]
        t2 = time.perf_counter()
        loss = torch.cat(outs, dim=1).sum()
        t3 = time.perf_counter()
        loss.backward()
        t4 = time.perf_counter()
        if i >= 2:  # skip warm-up
            for k, dt in zip(phases, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                phases[k] += dt * 1000 / steps
    return phases


# ---------------------------------------------------------------------------------------
def results_table(title: str, names: list[str], runs: dict[str, list[float]], batch: int) -> Table:
    best = {n: max(runs[n]) for n in names}
    table = Table(title=title)
    for col in ("system", "best ex/s", "median ex/s", "ms/step (best)", "best / torchrec"):
        table.add_column(col, justify="right" if col != "system" else "left")
    for n in names:
        ratio = f"{best[n] / best['torchrec']:.2f}x" if "torchrec" in best else "n/a"
        med = statistics.median(runs[n])
        table.add_row(n, f"{best[n]:,.0f}", f"{med:,.0f}", f"{batch / best[n] * 1e3:.1f}", ratio)
    return table


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rounds", type=int, default=3, help="timed rounds per system")
    p.add_argument("--steps", type=int, default=20, help="timed steps per round")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument(
        "--threads",
        type=int,
        nargs="+",
        default=[1, 2],
        help="torch.set_num_threads settings to run (each system is reported at each, and\n"
        "examples_per_s in the JSON is each system's best over them)",
    )
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--num-ids", type=int, default=500_000)
    p.add_argument("--tables", type=int, default=8)
    p.add_argument("--only", nargs="*", default=None, help="subset of systems to run")
    p.add_argument("--profile", action="store_true", help="also print the reelrec step breakdown")
    p.add_argument("--json", type=str, default=None, help="write results to this file")
    args = p.parse_args()
    w = Workload(tables=args.tables, num_ids=args.num_ids, batch=args.batch)
    batches = w.batches()
    systems: dict[str, Callable[[Workload, list[np.ndarray], int, int], float]] = {
        "reelrec": bench_reelrec,
        "reelrec_dynamic": bench_reelrec_dynamic,
        "torchrec": bench_torchrec,
        "embeddingbag_sparseadam": bench_embeddingbag,
    }
    skipped: dict[str, str] = {}
    reason = torchrec_available()
    if reason is not None:
        skipped["torchrec"] = reason
        console.print(f"[yellow]torchrec row skipped:[/] {reason}")
    names = [n for n in systems if (args.only is None or n in args.only) and n not in skipped]
    by_threads: dict[int, dict[str, list[float]]] = {}
    profiles: dict[int, dict[str, float]] = {}
    shape = f"{w.tables} tables x {w.num_ids:,} ids, dim {w.dim}, batch {w.batch}, {w.bag} ids/bag"
    for threads in args.threads:
        torch.set_num_threads(threads)
        runs: dict[str, list[float]] = {n: [] for n in names}
        for r in range(args.rounds):  # interleave systems so background load hits all alike
            for name in names:
                secs = systems[name](w, batches, args.warmup, args.steps)
                runs[name].append(args.steps * w.batch / secs)
                console.log(f"{threads} thr, round {r + 1}: {name} {runs[name][-1]:,.0f} ex/s")
        by_threads[threads] = runs
        console.print(results_table(f"{shape}, {threads} torch thread(s)", names, runs, w.batch))
        if args.profile:
            profiles[threads] = profile_reelrec(w, batches, args.steps)
            pt = Table(title=f"reelrec step breakdown, prefilled, {threads} thread(s), ms/step")
            pt.add_column("phase")
            pt.add_column("ms", justify="right")
            for k, v in profiles[threads].items():
                pt.add_row(k, f"{v:.2f}")
            pt.add_row("total", f"{sum(profiles[threads].values()):.2f}")
            console.print(pt)

    # Each system at its best thread setting.
    overall = {n: [x for runs in by_threads.values() for x in runs[n]] for n in names}
    best = {n: max(v) for n, v in overall.items()}
    best_threads = {n: max(by_threads, key=lambda t, n=n: max(by_threads[t][n])) for n in names}
    console.print(results_table(f"{shape}, each at its best thread count", names, overall, w.batch))
    for n, why in skipped.items():
        console.print(f"{n}: skipped ({why})")

    result: dict[str, object] = {
        "examples_per_s": best,
        "best_threads": best_threads,
        "examples_per_s_by_threads": {
            str(t): {
                n: {"best": max(v), "median": statistics.median(v), "runs": v}
                for n, v in runs.items()
            }
            for t, runs in by_threads.items()
        },
        "skipped": skipped,
        "workload": w.__dict__ | {"steps": args.steps, "rounds": args.rounds},
    }
    if "torchrec" in best:
        result["ratio_vs_torchrec"] = {n: best[n] / best["torchrec"] for n in best}
    if profiles:
        result["profile_ms"] = {str(t): v for t, v in profiles.items()}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
