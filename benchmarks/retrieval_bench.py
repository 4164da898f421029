"""Retrieval benchmark: the issue-4 protocol on KuaiRand-Pure, every retriever and the blend.

    .venv/bin/python benchmarks/retrieval_bench.py --data /work/shared/datasets/kuairand-pure \
        [--seeds 0 1] [--json out.json]

Train window 2022-04-25 .. 2022-05-01, evaluation window 2022-05-02 .. 2022-05-04 (dates in
the log's own `date` column), loaded with `reelrec.data.load_dataset`. Popular, trending
and item-to-item are deterministic (fitted once); the two-tower model and the blend are run
once per seed. Peer figures are from issue 4 (RecBole 1.2.1, 6,686 users).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from reelrec.data import load_dataset
from reelrec.data.dataset import DatasetName
from reelrec.device import resolve_device
from reelrec.eval.retrieval import RetrievalMetrics, build_split, evaluate_split
from reelrec.models.api import ItemCatalog
from reelrec.models.retrieval import (
    ItemToItemRetriever,
    PopularRetriever,
    TrendingRetriever,
    TwoTowerRetriever,
    blend,
)

PEERS = {
    "popularity (peer)": (0.0907, 0.1754, 0.0404, 0.0605, 0.2931),
    "LightGCN (peer)": (0.0880, 0.1683, 0.0436, 0.0629, 0.2848),
    "SASRec (peer)": (0.0914, 0.1745, 0.0429, 0.0625, 0.2911),
}
COLUMNS = ("recall@20", "recall@50", "ndcg@20", "ndcg@50", "hit@50")


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    console = Console(stderr=True)
    tr = load_dataset(DatasetName.kuairand, args.data, args.train_start, args.train_end)
    te = load_dataset(DatasetName.kuairand, args.data, args.test_start, args.test_end)
    split = build_split(tr.events, te.events)
    catalog = ItemCatalog(tr.items)
    device = resolve_device(args.device)
    rows: list[dict[str, Any]] = []

    def score(r: Any, seed: int | None, fit_s: float) -> RetrievalMetrics:
        t0 = time.perf_counter()
        m = evaluate_split(r, split, catalog, (20, 50))
        rows.append({"retriever": r.name, "seed": seed, "fit_s": round(fit_s, 1),
                     "eval_s": round(time.perf_counter() - t0, 1), **m.as_dict()})  # fmt: skip
        console.print(f"{r.name} seed={seed}: recall@50 {m.recall[50]:.4f}")
        return m

    simple = [PopularRetriever(), TrendingRetriever(), ItemToItemRetriever()]
    for r in simple:
        t0 = time.perf_counter()
        r.fit(tr.events, tr.items, tr.users)
        score(r, None, time.perf_counter() - t0)
    for seed in args.seeds:
        t0 = time.perf_counter()
        tt = TwoTowerRetriever(seed=seed, epochs=args.epochs, device=device)
        tt.fit(tr.events, tr.items, tr.users)
        score(tt, seed, time.perf_counter() - t0)
        score(blend([*simple, tt]), seed, 0.0)
    return rows


def show(rows: list[dict[str, Any]], users: int) -> None:
    table = Table(title=f"retrieval, full ranking, KuaiRand-Pure ({users} users)")
    for col in ("retriever", "seed", *COLUMNS, "fit s"):
        table.add_column(col, justify="left" if col == "retriever" else "right")
    for name, vals in PEERS.items():
        table.add_row(name, "", *(f"{v:.4f}" for v in vals), "", style="dim")
    for r in rows:
        seed = "" if r["seed"] is None else str(r["seed"])
        table.add_row(r["retriever"], seed, *(f"{r[c]:.4f}" for c in COLUMNS), str(r["fit_s"]))
    Console(width=120).print(table)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, required=True, help="the kuairand-pure folder")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--epochs", type=int, default=4, help="two-tower epochs")
    p.add_argument("--device", default="cpu", help="auto|cpu|cuda|npu|...")
    p.add_argument("--train-start", default="20220425")
    p.add_argument("--train-end", default="20220501")
    p.add_argument("--test-start", default="20220502")
    p.add_argument("--test-end", default="20220504")
    p.add_argument("--json", type=Path, default=None, help="write the rows as JSON here")
    args = p.parse_args()
    rows = run(args)
    show(rows, int(rows[0]["users"]) if rows else 0)
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "peers": PEERS}, indent=2))


if __name__ == "__main__":
    main()
