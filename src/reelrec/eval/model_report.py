"""The `evaluate --report DIR` page: ROC and calibration per label, AUC by user activity,
recall@K per retriever, training curves."""

from __future__ import annotations

from pathlib import Path

from reelrec.eval.compare import Interval
from reelrec.eval.evaluate import KS, EvalResult, activity_auc
from reelrec.eval.report import (
    Cell,
    Report,
    plot_auc_by_bucket,
    plot_calibration,
    plot_recall_at_k,
    plot_roc,
    plot_training_curves,
)
from reelrec.models.bundle import FeedBundle


def write_eval_report(result: EvalResult, bundle: FeedBundle, out: Path) -> Path:
    report = Report(f"reelrec evaluation: model v{bundle.version}")
    rows: list[list[Cell]] = [
        [n, m.auc, m.gauc, m.logloss, m.n, m.positives] for n, m in result.labels.items()
    ]
    columns = ["label", "AUC", "GAUC", "logloss", "rows", "positives"]
    if result.intervals:  # the evaluation set's own noise, next to the figures
        columns += ["AUC 95%", "GAUC 95%"]
        for row, name in zip(rows, result.labels, strict=True):
            row += [
                _interval(result.intervals[name]["auc"]),
                _interval(result.intervals[name]["gauc"]),
            ]
    report.add_table("Ranking", columns, rows)
    if result.retrieval:
        rrows: list[list[Cell]] = [
            [n, r.recall[20], r.recall[50], r.ndcg[20], r.ndcg[50], r.hit[50], r.users]
            for n, r in result.retrieval.items()
        ]
        report.add_table(
            "Retrieval (full ranking)",
            ["retriever", "Recall@20", "Recall@50", "NDCG@20", "NDCG@50", "HitRate@50", "users"],
            rrows,
        )
        curves = {n: (list(KS), [r.recall[k] for k in KS]) for n, r in result.retrieval.items()}
        report.add_plot("Recall@K", plot_recall_at_k(curves), "full ranking of the item table")
    report.add_plot("ROC", plot_roc(result.y, result.p))
    report.add_plot(
        "Calibration", plot_calibration(result.y, result.p), "predicted vs observed rate per bin"
    )
    report.add_plot(
        "AUC by user activity",
        plot_auc_by_bucket(activity_auc(result)),
        "rows of the user in the history window",
    )
    train = bundle.manifest.config.get("train", {})
    curves_hist = {k: train[k] for k in ("step_loss", "val_auc") if train.get(k)}
    if curves_hist:
        report.add_plot("Training", plot_training_curves(curves_hist))
    return report.write(out)


def _interval(bounds: Interval) -> str:
    return f"{bounds.low:.4f} to {bounds.high:.4f}"
