"""Progressive validation: every event is predicted before it is learned from.

`ProgressiveMetrics` keeps, per binary task, the last `window` (label, prediction) pairs for
rolling AUC / logloss (what a live trainer logs and exports), and optionally every pair
with its user for the whole-stream AUC / GAUC / logloss that `reelrec replay` reports.

`TrainerMetrics` exports the trainer's state as Prometheus metrics on its own registry, so
several trainers (or a trainer and a server in one test process) never collide.
"""

from __future__ import annotations

from collections import deque

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge

from reelrec.eval.metrics import LabelMetrics, auc, label_metrics, logloss


class ProgressiveMetrics:
    """Rolling (and optionally whole-stream) metrics of predictions made before learning.

    Args:
        tasks: binary task names, in the column order of `update`'s labels and predictions.
        window: events in the rolling window.
        keep_all: also keep every pair (for `summary`), as replay does.
    """

    def __init__(self, tasks: list[str], window: int = 20_000, keep_all: bool = False) -> None:
        self.tasks = list(tasks)
        self.window = window
        self.keep_all = keep_all
        self._recent: deque[tuple[np.ndarray, np.ndarray]] = deque()
        self._recent_n = 0
        self._all: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.seen = 0

    def update(self, labels: np.ndarray, probs: np.ndarray, users: np.ndarray) -> None:
        """labels (N, >=T) float, probs (N, T) in (0, 1), users (N,) raw ids."""
        y = np.asarray(labels[:, : len(self.tasks)], np.float32)
        p = np.asarray(probs, np.float32)
        self._recent.append((y, p))
        self._recent_n += y.shape[0]
        while self._recent and self._recent_n - self._recent[0][0].shape[0] >= self.window:
            self._recent_n -= self._recent.popleft()[0].shape[0]
        if self.keep_all:
            self._all.append((y, p, np.asarray(users, np.int64)))
        self.seen += y.shape[0]

    def rolling(self) -> dict[str, dict[str, float]]:
        """{task: {"auc", "logloss"}} over the window (AUC is nan while a class is missing)."""
        if not self._recent:
            return {}
        y = np.concatenate([r[0] for r in self._recent])
        p = np.concatenate([r[1] for r in self._recent])
        return {
            t: {"auc": auc(y[:, i], p[:, i]), "logloss": logloss(y[:, i], p[:, i])}
            for i, t in enumerate(self.tasks)
        }

    def everything(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Labels (N, T), predictions (N, T) and users (N,) of every event seen (keep_all)."""
        if not self.keep_all:
            raise ValueError("ProgressiveMetrics keeps every prediction only with keep_all=True")
        if not self._all:
            empty = np.zeros((0, len(self.tasks)), np.float32)
            return empty, empty, np.zeros(0, np.int64)
        y, p, users = (np.concatenate([a[i] for a in self._all]) for i in range(3))
        return y, p, users

    def summary(self) -> dict[str, LabelMetrics]:
        """AUC, GAUC and logloss per task over every event seen (needs keep_all)."""
        y, p, users = self.everything()
        if y.shape[0] == 0:
            return {}
        return label_metrics(
            {t: y[:, i] for i, t in enumerate(self.tasks)},
            {t: p[:, i] for i, t in enumerate(self.tasks)},
            users,
        )


class TrainerMetrics:
    """Prometheus metrics of one online trainer, on a registry of its own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.events = Counter("reelrec_trainer_events", "events learned", registry=r)
        self.batches = Counter("reelrec_trainer_batches", "batches learned", registry=r)
        self.published = Counter(
            "reelrec_trainer_versions", "versions published", ["kind"], registry=r
        )
        self.offset = Gauge("reelrec_trainer_offset", "last learned event offset", registry=r)
        self.lag = Gauge("reelrec_trainer_lag_events", "events in the log not learned", registry=r)
        self.version = Gauge("reelrec_trainer_model_version", "last published", registry=r)
        self.auc = Gauge("reelrec_trainer_rolling_auc", "progressive AUC", ["task"], registry=r)
        self.logloss = Gauge(
            "reelrec_trainer_rolling_logloss", "progressive logloss", ["task"], registry=r
        )

    def observe(self, rolling: dict[str, dict[str, float]]) -> None:
        for task, m in rolling.items():
            self.auc.labels(task).set(m["auc"])
            self.logloss.labels(task).set(m["logloss"])
