"""Each model against a reproduction of issue 4's logistic-regression peer, paired per user.

The best peer's is_like GAUC (.6565, a one-hot logistic regression) is one run. This script
fits that model again on the same split (scikit-learn, L2 with C = 0.3, one-hot: user,
video, tab, hour, author, video / upload / music type, first tag, duration bucket and the
user-feature fields), then scores every model against it on the same window rows with a
paired user bootstrap (`reelrec.eval.compare.paired_gain`): the GAUC difference and its 95%
interval. The hour comes two ways: from KuaiRand's `hourmin`, as a peer reading the log's
columns would (it is stamped after the view, see reelrec/data/kuairand.py), and from
`time_ms`, as reelrec's features take it. Usage:

    python benchmarks/ranking_seeds_bench.py --seeds 0,1 --keep runs/seeds
    python benchmarks/peer_lr_bench.py --models runs/seeds/seed0 runs/seeds/seed1 \
        [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
from rich.console import Console
from rich.table import Table
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import OneHotEncoder

from reelrec.data import load_dataset
from reelrec.data.dataset import DatasetName, Interactions
from reelrec.eval.compare import paired_gain
from reelrec.eval.evaluate import evaluate_bundle, merge_in_time
from reelrec.eval.metrics import auc, gauc
from reelrec.models.bundle import load_feed_model

REPO = Path(__file__).resolve().parents[1]
LABELS = ("is_like", "is_click")
DURATION_EDGES_MS = [7e3, 15e3, 30e3, 60e3, 120e3, 300e3]
ITEM_FIELDS = ("author_id", "video_type", "upload_type", "music_type")


def one_hot_columns(events: pa.Table, data: Interactions) -> dict[str, np.ndarray]:
    """The peer's categorical inputs per event row, as strings; the hour is added apart."""
    rows = events.append_column("row", pa.array(np.arange(events.num_rows)))
    first_tag = [t[0] if t else -1 for t in data.items.column("tags").to_pylist()]
    items = data.items.select(["item_id", "duration_ms", *ITEM_FIELDS])
    items = items.rename_columns(["item_id", "video_ms", *ITEM_FIELDS])  # events have one too
    items = items.append_column("first_tag", pa.array(first_tag, pa.int64()))
    joined = rows.join(items, "item_id").join(data.users, "user_id").sort_by("row")
    column = {n: joined.column(n).to_numpy(zero_copy_only=False) for n in joined.column_names}
    cols = {n: column[n] for n in ("user_id", "item_id", "tab", "first_tag", *ITEM_FIELDS)}
    duration = np.nan_to_num(column["video_ms"].astype(float))
    cols["duration_bucket"] = np.digitize(duration, DURATION_EDGES_MS)
    for name in data.users.column_names:
        if name != "user_id":
            cols[f"user.{name}"] = column[name]
    return {k: np.asarray(v).astype(str) for k, v in cols.items()}


def peer_lr(events: pa.Table, is_window: np.ndarray, cols: dict[str, np.ndarray],
            hour: np.ndarray) -> dict[str, np.ndarray]:  # fmt: skip
    """label -> the reproduced peer's probabilities on the window rows."""
    features = np.stack([*cols.values(), hour.astype(str)], axis=1)
    train = ~is_window
    encoder = OneHotEncoder(handle_unknown="ignore").fit(features[train])
    x = encoder.transform(features)
    out = {}
    for label in LABELS:
        y = events.column(label).to_numpy()
        model = LogisticRegression(C=0.3, solver="liblinear", max_iter=300)
        with warnings.catch_warnings():  # liblinear's convergence note at max_iter
            warnings.simplefilter("ignore")
            model.fit(x[train], y[train])
        out[label] = model.predict_proba(x[is_window])[:, 1]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=Path, nargs="+", required=True, help="model directories")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared/datasets/kuairand-pure")
    ap.add_argument("--end", default="20220501", help="last training day")
    ap.add_argument("--start", default="20220502", help="first evaluated day")
    ap.add_argument("--stop", default="20220504", help="last evaluated day")
    ap.add_argument("--boot", type=int, default=1000, help="bootstrap replicates")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    history = load_dataset(DatasetName.kuairand, args.data, None, args.end)
    window = load_dataset(DatasetName.kuairand, args.data, args.start, args.stop)
    events, is_window = merge_in_time(history.events, window.events)
    cols = one_hot_columns(events, window)
    ts = events.column("timestamp_ms").to_numpy()
    hours = {"hourmin": events.column("hour").to_numpy(), "time_ms": (ts // 3_600_000) % 24}
    peers = {name: peer_lr(events, is_window, cols, hour) for name, hour in hours.items()}
    users = events.column("user_id").to_numpy()[is_window]
    labels = {lab: events.column(lab).to_numpy()[is_window] for lab in LABELS}
    report: dict = {"peer_lr": {}, "models": {}}
    for name, probs in peers.items():
        report["peer_lr"][name] = {
            lab: {"auc": auc(labels[lab], p), "gauc": gauc(labels[lab], p, users)[0]}
            for lab, p in probs.items()
        }
    table = Table(title="GAUC: model minus the reproduced LR peer, paired user bootstrap (95%)")
    for col in ("model", "label", "GAUC", *(f"minus LR ({h})" for h in hours)):
        table.add_column(col, justify="left" if col in ("model", "label") else "right")
    for path in args.models:
        result = evaluate_bundle(load_feed_model(path, torch.device("cpu")), history, window)
        report["models"][str(path)] = {}
        for lab in LABELS:
            if not np.array_equal(result.y[lab], labels[lab]):
                raise SystemExit(f"{path}: the evaluated rows differ from the peer's")
            own = gauc(labels[lab], result.p[lab], users)[0]
            gains = {h: paired_gain(labels[lab], peers[h][lab], result.p[lab], users, args.boot)["gauc"]
                     for h in hours}  # fmt: skip
            report["models"][str(path)][lab] = {"gauc": own, **{
                h: {"gain": g.gain, "low": g.low, "high": g.high} for h, g in gains.items()}}  # fmt: skip
            table.add_row(path.name, lab, f"{own:.4f}", *(
                f"{g.gain:+.4f} [{g.low:+.3f}, {g.high:+.3f}]" for g in gains.values()))  # fmt: skip
    console = Console(width=max(Console().width, 100))  # the intervals on one line
    for name, per_label in report["peer_lr"].items():
        figures = ", ".join(
            f"{lab} {m['auc']:.4f} / {m['gauc']:.4f}" for lab, m in per_label.items()
        )
        console.print(f"reproduced LR peer, hour from {name}: AUC / GAUC {figures}")
    console.print(table)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
