"""Is model B better than model A on the same rows? Gains with a paired user bootstrap;
and how far one model's figures would move on another draw of users (`user_intervals`).

A gain of .001 GAUC means nothing without its noise. Rows of one user are not independent
(a user's rows share their taste and their session), so the bootstrap resamples *users* with
replacement and keeps each user's rows together; both models are scored on the same resample
(paired), which cancels the noise they share. The 95% interval is the 2.5 and 97.5
percentiles of the resampled gains.

Each replicate costs O(N) array work, not a new sort: the per-user AUCs (for GAUC) and
per-user loss sums (for logloss) are computed once, and the global AUC of a replicate is a
weighted rank sum over the fixed score order, the user weights being the resample counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from reelrec.eval.metrics import (
    LOGLOSS_EPS,
    _check_groups,
    _check_labels,
    _check_scores,
    _group_auc_codes,
)

METRICS = ("auc", "gauc", "logloss")


@dataclass(frozen=True)
class Gain:
    """B minus A on one metric (for logloss, lower is better: a negative gain is B winning).

    Attributes:
        gain: the difference on the rows as given.
        low, high: the 95% paired user-bootstrap interval of that difference.
    """

    gain: float
    low: float
    high: float

    def to_json(self) -> dict[str, float]:
        return {"gain": self.gain, "low": self.low, "high": self.high}


@dataclass(frozen=True)
class Interval:
    """A metric's 95% user-bootstrap interval."""

    low: float
    high: float

    def to_json(self) -> list[float]:
        return [self.low, self.high]


class _Scored:
    """One model's scores, prepared for weighted resampling."""

    def __init__(self, y: NDArray[np.float64], p: NDArray[np.float64], g: NDArray[np.intp]):
        order = np.argsort(p, kind="stable")
        p_s = p[order]
        new_run = np.empty(p_s.size, dtype=bool)
        new_run[0] = True
        new_run[1:] = p_s[1:] != p_s[:-1]
        self.order, self.run = order, np.cumsum(new_run) - 1  # tie runs of equal scores
        self.y_sorted = y[order]
        self.group_auc, self.rows, _ = _group_auc_codes(y, p, g)
        q = np.clip(p, LOGLOSS_EPS, 1 - LOGLOSS_EPS)
        loss = -(y * np.log(q) + (1 - y) * np.log1p(-q))
        self.group_loss = np.bincount(g, weights=loss, minlength=self.rows.size)

    def auc(self, row_weight: NDArray[np.float64]) -> float:
        """Weighted AUC: each row counts `row_weight` times (ties count one half)."""
        w = row_weight[self.order]
        pos_w = np.bincount(self.run, weights=w * self.y_sorted)
        neg_w = np.bincount(self.run, weights=w * (1 - self.y_sorted))
        neg_below = np.cumsum(neg_w) - neg_w
        total = pos_w.sum() * neg_w.sum()
        return float(np.dot(pos_w, neg_below + 0.5 * neg_w) / total) if total else float("nan")

    def gauc(self, user_weight: NDArray[np.float64]) -> float:
        valid = ~np.isnan(self.group_auc)
        w = user_weight[valid] * self.rows[valid]
        return float(np.dot(self.group_auc[valid], w) / w.sum()) if w.sum() else float("nan")

    def logloss(self, user_weight: NDArray[np.float64]) -> float:
        return float(np.dot(self.group_loss, user_weight) / np.dot(self.rows, user_weight))

    def metrics(self, user_weight: NDArray[np.float64], g: NDArray[np.intp]) -> NDArray[np.float64]:
        return np.array(
            [self.auc(user_weight[g]), self.gauc(user_weight), self.logloss(user_weight)]
        )


def paired_gain(
    y: ArrayLike, p_a: ArrayLike, p_b: ArrayLike, users: ArrayLike, n_boot: int = 200,
    seed: int = 0,
) -> dict[str, Gain]:  # fmt: skip
    """AUC, GAUC and logloss of B minus A, each with its 95% paired user-bootstrap interval.

    Args:
        y: labels in {0, 1}, shape (N,).
        p_a, p_b: the two models' probabilities on the same rows, shape (N,).
        users: user id per row, shape (N,).
        n_boot: bootstrap replicates (0: no interval, low = high = gain).
        seed: the resampling seed.
    """
    yy, g = _labels_and_groups(y, users, n_boot)
    a = _Scored(yy, _check_scores(p_a, yy.shape[0], "p_a"), g)
    b = _Scored(yy, _check_scores(p_b, yy.shape[0], "p_b"), g)
    point, reps = _replicates([a, b], g, n_boot, seed)
    gain, gains = point[1] - point[0], reps[:, 1] - reps[:, 0]
    low, high = np.nanpercentile(gains, [2.5, 97.5], axis=0) if n_boot else (gain, gain)
    return {m: Gain(float(gain[j]), float(low[j]), float(high[j])) for j, m in enumerate(METRICS)}


def user_intervals(
    y: ArrayLike, p: ArrayLike, users: ArrayLike, n_boot: int = 200, seed: int = 0
) -> dict[str, Interval]:
    """AUC, GAUC and logloss of one model: their 95% user-bootstrap intervals.

    This is the noise of the evaluation set itself, which no retraining removes: a figure
    compared against another run's single figure is only as sharp as this interval.
    Arguments as in `paired_gain`; with n_boot = 0 each interval is the point value.
    """
    yy, g = _labels_and_groups(y, users, n_boot)
    scored = _Scored(yy, _check_scores(p, yy.shape[0], "p"), g)
    point, reps = _replicates([scored], g, n_boot, seed)
    low, high = np.nanpercentile(reps[:, 0], [2.5, 97.5], axis=0) if n_boot else (point[0],) * 2
    return {m: Interval(float(low[j]), float(high[j])) for j, m in enumerate(METRICS)}


def _labels_and_groups(
    y: ArrayLike, users: ArrayLike, n_boot: int
) -> tuple[NDArray[np.float64], NDArray[np.intp]]:
    if n_boot < 0:
        raise ValueError(f"n_boot={n_boot}: must be >= 0")
    yy = _check_labels(y)
    return yy, _check_groups(users, yy.shape[0])


def _replicates(
    models: list[_Scored], g: NDArray[np.intp], n_boot: int, seed: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The models' metrics on the rows as given, (M, 3), and on `n_boot` resamples of users
    with replacement, every model on the same resample, (n_boot, M, 3)."""
    n_users = models[0].rows.size
    ones = np.ones(n_users)
    point = np.stack([m.metrics(ones, g) for m in models])
    rng = np.random.default_rng(seed)
    reps = np.empty((n_boot, len(models), len(METRICS)))
    for i in range(n_boot):
        counts = np.bincount(rng.integers(0, n_users, n_users), minlength=n_users).astype(float)
        reps[i] = [m.metrics(counts, g) for m in models]
    return point, reps
