"""`reelrec evaluate`: score a model directory on a later time window.

Rows before `--start` are the users' history (features are causal, so each evaluated row
also sees the window's earlier rows, as a live server would); the rows from `--start` to
`--end` are scored. The embedding tables are frozen: unseen ids map to the zero row.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from rich.console import Console
from rich.table import Table

from reelrec.config import EvalConfig
from reelrec.data.dataset import Interactions
from reelrec.device import resolve_device
from reelrec.errors import DataError
from reelrec.eval.compare import Interval, user_intervals
from reelrec.eval.metrics import (
    LabelMetrics,
    activity_buckets,
    auc_by_bucket,
    label_metrics,
    metrics_to_json,
)
from reelrec.eval.retrieval import RetrievalMetrics, build_split, evaluate_split
from reelrec.features import FeatureBuilder
from reelrec.models.api import ItemCatalog
from reelrec.models.bundle import FeedBundle, load_feed_model
from reelrec.store.atomic import atomic_write_json
from reelrec.train.loop import predict

console = Console()
KS = (20, 50)


@dataclass
class EvalResult:
    labels: dict[str, LabelMetrics]
    retrieval: dict[str, RetrievalMetrics]  # retriever name -> metrics
    best_retriever: str
    y: dict[str, np.ndarray] = field(default_factory=dict)  # for plots
    p: dict[str, np.ndarray] = field(default_factory=dict)
    activity: np.ndarray | None = None
    # label -> metric ("auc", "gauc", "logloss") -> 95% user-bootstrap interval
    intervals: dict[str, dict[str, Interval]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out = metrics_to_json(self.labels)
        for name, bounds in self.intervals.items():
            out["labels"][name]["interval95"] = {k: v.to_json() for k, v in bounds.items()}
        if self.best_retriever:
            out["retrieval"] = {
                **self.retrieval[self.best_retriever].as_dict(),
                "retriever": self.best_retriever,
            }
        out["retrievers"] = {name: m.as_dict() for name, m in self.retrieval.items()}
        return out


def merge_in_time(history: pa.Table, window: pa.Table) -> tuple[pa.Table, np.ndarray]:
    """History and window events in one time order, and a mask of the window's rows.

    The window is what the adapter's date filter selected (`--start`..`--end`); a few
    history rows may carry later timestamps than the window's first row (KuaiRand's `date`
    and `time_ms` disagree on about 1% of rows), so the two are merged, not cut at a time.
    """
    events = pa.concat_tables([history, window])
    is_window = np.concatenate([np.zeros(history.num_rows, bool), np.ones(window.num_rows, bool)])
    order = np.argsort(events.column("timestamp_ms").to_numpy(), kind="stable")
    return events.take(pa.array(order)), is_window[order]


def evaluate_bundle(
    bundle: FeedBundle, history: Interactions, window: Interactions, batch_size: int = 4096,
    bootstrap: int = 0,
) -> EvalResult:  # fmt: skip
    """Rank-evaluate the window's rows (features see the history first); retrieval over the
    item table with the history as training window. With `bootstrap` > 0, each label's
    metrics also get 95% user-bootstrap intervals."""
    if window.events.num_rows == 0:
        raise DataError("--start/--end", "no rows in the evaluation window")
    events, is_window = merge_in_time(history.events, window.events)
    builder = FeatureBuilder.from_config(bundle.builder.config_, window.items, window.users)
    # The window's rows are what a model trained on the history scores: users' counters
    # hold as of the cut-off (each user's first window row), as the server's do. Videos'
    # counters follow the window's logged events (the server's --live-item-counters): the
    # logging policy chose those exposures, not this model, so there is no feedback loop to
    # guard against. The replay's frozen model holds them too; on KuaiRand (seed 0) its
    # long_view, is_click and is_like AUC / GAUC are within .0011 of these.
    frame, _ = builder.transform(events, after_cutoff=is_window)
    test = frame.take(np.flatnonzero(is_window))
    probs, watch = predict(bundle.ranker, test, batch_size, bundle.device)
    tasks = bundle.builder.config_.tasks
    assert test.labels is not None
    y = {t: test.labels[:, i] for i, t in enumerate(tasks)}
    p = {t: probs[:, i] for i, t in enumerate(tasks)}
    metrics = label_metrics(y, p, test.user_id)
    intervals = (
        {t: user_intervals(y[t], p[t], test.user_id, bootstrap) for t in tasks} if bootstrap else {}
    )
    retrieval = _evaluate_retrievers(bundle, history.events, window.events, window.items)
    best = max(retrieval, key=lambda k: retrieval[k].recall[50]) if retrieval else ""
    train_users, counts = np.unique(history.events.column("user_id").to_numpy(), return_counts=True)
    pos = np.searchsorted(train_users, test.user_id)
    known = (pos < train_users.size) & (
        train_users[np.minimum(pos, train_users.size - 1)] == test.user_id
    )
    activity = (
        np.where(known, counts[np.minimum(pos, max(train_users.size - 1, 0))], 0)
        if train_users.size
        else np.zeros(len(test))
    )
    return EvalResult(metrics, retrieval, best, y, p, activity, intervals)


def _evaluate_retrievers(
    bundle: FeedBundle, history: pa.Table, window: pa.Table, items: pa.Table
) -> dict[str, RetrievalMetrics]:
    if history.num_rows == 0 or window.num_rows == 0:
        return {}
    split = build_split(history, window)
    if split.user_ids.size == 0:
        return {}
    catalog = ItemCatalog(items)
    out = {r.name: evaluate_split(r, split, catalog, KS) for r in bundle.retrievers}
    from reelrec.models.retrieval import blend

    if len(bundle.retrievers) > 1:
        mixed = blend(bundle.retrievers)
        out[mixed.name] = evaluate_split(mixed, split, catalog, KS)
    return out


def day_before(day: str) -> str:
    return (dt.datetime.strptime(day, "%Y%m%d") - dt.timedelta(days=1)).strftime("%Y%m%d")


def evaluate_command(cfg: EvalConfig) -> EvalResult:
    from reelrec.train.command import load_data

    device = resolve_device(cfg.device)
    bundle = load_feed_model(cfg.model, device)
    window = load_data(cfg.dataset, cfg.data, cfg.start, cfg.end)
    if cfg.start is not None:  # the users' history: every row before --start
        history = load_data(cfg.dataset, cfg.data, None, day_before(cfg.start))
    else:
        history = replace(window, events=window.events.slice(0, 0), rows_in=0)
    result = evaluate_bundle(bundle, history, window, bootstrap=cfg.bootstrap)
    _print(result)
    if cfg.json_out is not None:
        atomic_write_json(result.to_json(), cfg.json_out)
        console.print(f"metrics written to {cfg.json_out}")
    if cfg.report is not None:
        from reelrec.eval.model_report import write_eval_report

        path = write_eval_report(result, bundle, cfg.report)
        console.print(f"report written to {path}")
    return result


def _print(result: EvalResult) -> None:
    title = "ranking (per label)" + (
        ", ± half the 95% user-bootstrap interval" if result.intervals else ""
    )
    table = Table(title=title)
    for col in ("label", "AUC", "GAUC", "logloss", "rows", "positives"):
        table.add_column(col, justify="right" if col != "label" else "left")
    for name, m in result.labels.items():
        bounds = result.intervals.get(name, {})
        table.add_row(
            name,
            _with_interval(m.auc, bounds.get("auc")),
            _with_interval(m.gauc, bounds.get("gauc")),
            f"{m.logloss:.4f}",
            f"{m.n:,}",
            f"{m.positives:,}",
        )
    console.print(table)
    if result.retrieval:
        rt = Table(title="retrieval (full ranking)")
        for col in (
            "retriever",
            "Recall@20",
            "Recall@50",
            "NDCG@20",
            "NDCG@50",
            "HitRate@50",
            "users",
        ):
            rt.add_column(col, justify="right" if col != "retriever" else "left")
        for name, r in result.retrieval.items():
            rt.add_row(
                name,
                f"{r.recall[20]:.4f}",
                f"{r.recall[50]:.4f}",
                f"{r.ndcg[20]:.4f}",
                f"{r.ndcg[50]:.4f}",
                f"{r.hit[50]:.4f}",
                f"{r.users:,}",
            )
        console.print(rt)


def _with_interval(value: float, bounds: Interval | None) -> str:
    return f"{value:.4f}" + (f" ±{(bounds.high - bounds.low) / 2:.4f}" if bounds else "")


def activity_auc(result: EvalResult) -> dict[str, Any]:
    assert result.activity is not None
    buckets = activity_buckets(result.activity)
    return {t: auc_by_bucket(result.y[t], result.p[t], buckets) for t in result.y}


def load_json(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())  # type: ignore[no-any-return]
