"""Training throughput of the multi-task ranker on the KuaiRand training window.

Examples/s of one full epoch, data loading, validation and feature building included
(the figure issue 4 asks for), and of the training steps alone. Runs with 1 and 2 torch
threads. Usage:

    python benchmarks/train_bench.py --data ../shared/datasets/kuairand-pure [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from reelrec.config import BatchOrder, TrainConfig
from reelrec.data import load_dataset
from reelrec.data.dataset import DatasetName
from reelrec.features import FeatureBuilder
from reelrec.models.bundle import make_ranker, ranker_tables
from reelrec.models.ranker import RankerConfig
from reelrec.train.loop import LoopConfig, fit

REPO = Path(__file__).resolve().parents[1]


def one_epoch(data_dir: Path, end: str, threads: int, batch_size: int) -> dict[str, float]:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    data = load_dataset(DatasetName.kuairand, data_dir, None, end)
    fb = FeatureBuilder(history_len=20)
    frame, _ = fb.fit_transform(data.events, data.items, data.users, data.labels)
    c = fb.config_
    # the ranker of the KuaiRand figures: `reelrec train --pairwise-weights
    # long_view=0.2,is_click=0.3 --user-chunk 2 --batch-order day` (one epoch: like the
    # wide warm-up, the --linear-start fit before it is not timed here)
    defaults = TrainConfig(
        dataset=DatasetName.kuairand, out=Path("unused"), data=data_dir, user_chunk=2,
        pairwise_weights={"long_view": 0.2, "is_click": 0.3}, batch_order=BatchOrder.DAY,
    )  # fmt: skip
    cfg = RankerConfig(
        tasks=c.tasks, watch_task=c.watch_task, n_fields=len(c.field_names), n_dense=c.n_dense,
        pairwise_weights=defaults.pairwise_weights,
    )  # fmt: skip
    model = make_ranker(cfg, ranker_tables(cfg, 0.05, 0, wide_lr=0.02))
    t_data = time.perf_counter() - t0
    history = fit(
        model,
        frame,
        None,
        LoopConfig(  # batches and loss as `reelrec train` has them
            epochs=1,
            batch_size=batch_size,
            show_progress=False,
            user_chunk=defaults.user_chunk,
            batch_order=defaults.batch_order,
        ),
        torch.device("cpu"),
    )
    total = time.perf_counter() - t0
    n = len(frame)
    return {
        "threads": threads,
        "rows": n,
        "data_s": t_data,
        "train_s": history.seconds,
        "examples_per_s": n / total,
        "step_examples_per_s": history.examples_per_s,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared/datasets/kuairand-pure")
    ap.add_argument("--end", default="20220501")
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    runs = [
        one_epoch(args.data, args.end, th, args.batch_size)
        for th in (1, 2)
        for _ in range(args.repeat)
    ]
    table = Table(title="ranker training, one epoch on KuaiRand 20220425-20220501")
    for col in ("threads", "rows", "load+features s", "train s", "ex/s (all)", "ex/s (steps)"):
        table.add_column(col, justify="right")
    for r in runs:
        table.add_row(str(r["threads"]), f"{r['rows']:,}", f"{r['data_s']:.2f}", f"{r['train_s']:.2f}",
                      f"{r['examples_per_s']:,.0f}", f"{r['step_examples_per_s']:,.0f}")  # fmt: skip
    Console().print(table)
    best = max(runs, key=lambda r: r["examples_per_s"])
    if args.json:
        args.json.write_text(
            json.dumps({"runs": runs, "best_examples_per_s": best["examples_per_s"]}, indent=2)
        )


if __name__ == "__main__":
    main()
