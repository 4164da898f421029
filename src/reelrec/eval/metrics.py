"""Offline ranking metrics: AUC, GAUC, logloss, calibration and AUC by bucket.

Everything is vectorised numpy over whole arrays: GAUC sorts once by (group, score) and
computes every group's rank-sum AUC with bincount, so 200k rows over 25k users take tens of
milliseconds instead of a Python loop over users.

Conventions (chosen once, used everywhere here):

- An AUC that is undefined (every row has the same label) is ``nan``, not an error. An
  evaluation window can hold no positives for a rare label (``is_follow`` on small data), and
  one missing label should not abort the whole ``evaluate`` run. JSON output maps ``nan`` to
  ``null`` (see `LabelMetrics.to_json`).
- Malformed input (different lengths, labels outside {0, 1}, non-finite scores, no rows) raises
  ``ValueError`` naming the argument and the problem.
- Ties between scores count one half, as in scikit-learn's ``roc_auc_score`` (average ranks).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

# Predictions are clipped into [EPS, 1 - EPS] before the log: float32 model outputs reach
# exactly 0.0 or 1.0, and one such row would make the mean infinite.
LOGLOSS_EPS = 1e-7


# ---------------------------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------------------------


def _check_labels(y: ArrayLike, name: str = "y") -> NDArray[np.float64]:
    """Binary labels as float64 of shape (N,); raise on anything but 0/1."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array of labels, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name}: no rows to evaluate (empty array)")
    out = arr.astype(np.float64, copy=False)
    bad = (out != 0.0) & (out != 1.0)
    if bad.any():
        first = out[np.argmax(bad)]
        raise ValueError(
            f"{name}: labels must be 0 or 1, found {first!r} ({int(bad.sum())} bad rows)"
        )
    return out


def _check_scores(p: ArrayLike, n: int, name: str = "p") -> NDArray[np.float64]:
    """Scores as float64 of shape (N,); raise on a length mismatch or non-finite values."""
    arr = np.asarray(p, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array of scores, got shape {arr.shape}")
    if arr.shape[0] != n:
        raise ValueError(f"{name}: has {arr.shape[0]} rows but the labels have {n}")
    finite = np.isfinite(arr)
    if not finite.all():
        raise ValueError(
            f"{name}: scores must be finite, found {int((~finite).sum())} NaN/inf values"
        )
    return arr


def _check_groups(groups: ArrayLike, n: int, name: str = "groups") -> NDArray[np.intp]:
    """Dense group codes 0..G-1 of shape (N,) for any hashable-per-row id array."""
    arr = np.asarray(groups)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array of group ids, got shape {arr.shape}")
    if arr.shape[0] != n:
        raise ValueError(f"{name}: has {arr.shape[0]} rows but the labels have {n}")
    _, codes = np.unique(arr, return_inverse=True)
    return codes.reshape(-1).astype(np.intp, copy=False)


# ---------------------------------------------------------------------------------------------
# AUC, GAUC, logloss
# ---------------------------------------------------------------------------------------------


def auc(y: ArrayLike, p: ArrayLike) -> float:
    """Area under the ROC curve of scores ``p`` for binary labels ``y``.

    Args:
        y: labels in {0, 1}, shape (N,).
        p: scores (any monotone scale), shape (N,).

    Returns:
        The AUC, or ``nan`` when ``y`` holds a single class (AUC undefined).

    Example:
        >>> auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
        0.75
    """
    yy = _check_labels(y)
    pp = _check_scores(p, yy.shape[0])
    positives = yy.sum()
    if positives == 0 or positives == yy.shape[0]:
        return math.nan
    # Imported here: sklearn.metrics costs ~1 s of import time, which `reelrec --help` and the
    # server should not pay just because they import reelrec.eval.
    from sklearn.metrics import roc_auc_score  # type: ignore[import-untyped]

    return float(roc_auc_score(yy, pp))


def group_auc(
    y: ArrayLike, p: ArrayLike, groups: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.int64]]:
    """Per-group AUC, vectorised (one lexsort, then bincounts).

    Args:
        y: labels in {0, 1}, shape (N,).
        p: scores, shape (N,).
        groups: group id per row (user id, bucket name, ...), shape (N,), any dtype.

    Returns:
        ``(auc, rows, positives)``, each of shape (G,) in the order of ``np.unique(groups)``;
        ``auc`` is ``nan`` for a group with a single class.
    """
    yy = _check_labels(y)
    pp = _check_scores(p, yy.shape[0])
    g = _check_groups(groups, yy.shape[0])
    return _group_auc_codes(yy, pp, g)


def _group_auc_codes(
    y: NDArray[np.float64], p: NDArray[np.float64], g: NDArray[np.intp]
) -> tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.int64]]:
    n_groups = int(g.max()) + 1
    order = np.lexsort((p, g))  # by group, then score ascending
    g_s, p_s, y_s = g[order], p[order], y[order]
    n = len(g_s)

    rows = np.bincount(g_s, minlength=n_groups)
    pos = np.bincount(g_s, weights=y_s, minlength=n_groups)
    group_start = np.concatenate(([0], np.cumsum(rows)[:-1]))  # (G,)

    # A tie run is a maximal block of equal (group, score); every row in it gets the run's
    # average 1-based rank within its group, which is what roc_auc_score's ties amount to.
    new_run = np.empty(n, dtype=bool)
    new_run[0] = True
    new_run[1:] = (g_s[1:] != g_s[:-1]) | (p_s[1:] != p_s[:-1])
    run_starts = np.flatnonzero(new_run)  # (R,)
    run_ends = np.append(run_starts[1:], n)  # exclusive
    run_id = np.cumsum(new_run) - 1  # (N,)
    mean_pos = (run_starts + run_ends - 1) / 2.0  # (R,) 0-based mean position of the run
    rank = mean_pos[run_id] - group_start[g_s] + 1.0  # (N,) 1-based rank within group

    rank_sum_pos = np.bincount(g_s, weights=rank * y_s, minlength=n_groups)
    neg = rows - pos
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (rank_sum_pos - pos * (pos + 1) / 2.0) / (pos * neg)
    out[(pos == 0) | (neg == 0)] = np.nan
    return out, rows.astype(np.int64), pos.astype(np.int64)


def gauc(y: ArrayLike, p: ArrayLike, groups: ArrayLike) -> tuple[float, int]:
    """Group AUC: per-user AUC weighted by the user's number of rows.

    Only users with both classes count (a one-class user has no AUC); their rows are left
    out of the weights too.

    Args:
        y: labels in {0, 1}, shape (N,).
        p: scores, shape (N,).
        groups: user id per row, shape (N,).

    Returns:
        ``(gauc, n_groups)``: the weighted mean and the number of users that entered it;
        ``(nan, 0)`` when no user has both classes.
    """
    per_group, rows, _ = group_auc(y, p, groups)
    valid = ~np.isnan(per_group)
    n_valid = int(valid.sum())
    if n_valid == 0:
        return math.nan, 0
    weights = rows[valid].astype(np.float64)
    return float(np.dot(per_group[valid], weights) / weights.sum()), n_valid


def logloss(y: ArrayLike, p: ArrayLike, eps: float = LOGLOSS_EPS) -> float:
    """Mean binary cross-entropy of probabilities ``p`` (natural log).

    ``p`` is clipped into ``[eps, 1 - eps]`` first. Written in numpy rather than calling
    ``sklearn.metrics.log_loss`` because the latter refuses a single-class ``y`` unless given
    ``labels`` and clips at float64 epsilon (a float32 output of exactly 0 then costs ~36).

    Args:
        y: labels in {0, 1}, shape (N,).
        p: predicted probabilities of label 1, shape (N,), within [0, 1].
        eps: clip margin.
    """
    yy = _check_labels(y)
    pp = _check_scores(p, yy.shape[0])
    if (pp < 0.0).any() or (pp > 1.0).any():
        raise ValueError(
            "p: logloss needs probabilities in [0, 1], "
            f"got values in [{pp.min():.4g}, {pp.max():.4g}] (apply a sigmoid first)"
        )
    pp = np.clip(pp, eps, 1.0 - eps)
    return float(-np.mean(yy * np.log(pp) + (1.0 - yy) * np.log1p(-pp)))


# ---------------------------------------------------------------------------------------------
# Per-label summary and JSON
# ---------------------------------------------------------------------------------------------


def _json_float(x: float) -> float | None:
    """JSON has no NaN: an undefined metric is written as null."""
    return None if math.isnan(x) else float(x)


@dataclass(frozen=True)
class LabelMetrics:
    """Ranking metrics of one label over one evaluation window.

    Attributes:
        auc: global AUC (``nan`` if the window has one class).
        gauc: per-user AUC weighted by rows, over users with both classes.
        logloss: mean clipped cross-entropy.
        n: rows evaluated.
        positives: rows with label 1.
        gauc_users: users that entered the GAUC.
    """

    auc: float
    gauc: float
    logloss: float
    n: int
    positives: int
    gauc_users: int

    def to_json(self) -> dict[str, float | int | None]:
        """JSON-ready dict; ``nan`` becomes ``None``. Keys: auc, gauc, logloss, n, ..."""
        out: dict[str, float | int | None] = {}
        for key, value in asdict(self).items():
            out[key] = _json_float(value) if isinstance(value, float) else int(value)
        return out


def label_metrics(
    labels: Mapping[str, ArrayLike], preds: Mapping[str, ArrayLike], groups: ArrayLike
) -> dict[str, LabelMetrics]:
    """AUC, GAUC and logloss for each label.

    Args:
        labels: label name -> labels in {0, 1}, each of shape (N,).
        preds: label name -> predicted probabilities, each of shape (N,); must hold every
            key of ``labels`` (extra keys, such as a regression head, are ignored).
        groups: user id per row, shape (N,).

    Returns:
        label name -> `LabelMetrics`, in the order of ``labels``.
    """
    missing = [name for name in labels if name not in preds]
    if missing:
        raise ValueError(
            f"preds: no predictions for label(s) {missing}; predictions exist for {sorted(preds)}"
        )
    out: dict[str, LabelMetrics] = {}
    g: NDArray[np.intp] | None = None
    for name, y_raw in labels.items():
        y = _check_labels(y_raw, f"labels[{name!r}]")
        p = _check_scores(preds[name], y.shape[0], f"preds[{name!r}]")
        if g is None:  # group codes are shared by all labels: np.unique once
            g = _check_groups(groups, y.shape[0])
        elif g.shape[0] != y.shape[0]:
            raise ValueError(f"labels[{name!r}]: has {y.shape[0]} rows, other labels {g.shape[0]}")
        per_group, rows, _ = _group_auc_codes(y, p, g)
        valid = ~np.isnan(per_group)
        w = rows[valid].astype(np.float64)
        gauc_value = float(np.dot(per_group[valid], w) / w.sum()) if valid.any() else math.nan
        out[name] = LabelMetrics(
            auc=auc(y, p),
            gauc=gauc_value,
            logloss=logloss(y, p),
            n=int(y.shape[0]),
            positives=int(y.sum()),
            gauc_users=int(valid.sum()),
        )
    return out


def metrics_to_json(metrics: Mapping[str, LabelMetrics]) -> dict[str, Any]:
    """The ``evaluate --json`` contract: ``{"labels": {name: {"auc", "gauc", "logloss", "n",
    ...}}}``. Callers add further top-level keys (``"retrieval"``) to the returned dict."""
    return {"labels": {name: m.to_json() for name, m in metrics.items()}}


# ---------------------------------------------------------------------------------------------
# Calibration and AUC by bucket
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CalibrationBins:
    """Reliability-diagram data; only non-empty bins are kept. Arrays have shape (B,).

    Attributes:
        lower, upper: bin edges.
        mean_pred: mean predicted probability in the bin.
        frac_pos: observed fraction of positives in the bin.
        count: rows in the bin.
    """

    lower: NDArray[np.float64]
    upper: NDArray[np.float64]
    mean_pred: NDArray[np.float64]
    frac_pos: NDArray[np.float64]
    count: NDArray[np.int64]

    @property
    def ece(self) -> float:
        """Expected calibration error: row-weighted mean |frac_pos - mean_pred|."""
        total = self.count.sum()
        if total == 0:
            return math.nan
        return float(np.dot(np.abs(self.frac_pos - self.mean_pred), self.count) / total)


def calibration_curve(
    y: ArrayLike,
    p: ArrayLike,
    n_bins: int = 10,
    strategy: Literal["uniform", "quantile"] = "uniform",
) -> CalibrationBins:
    """Bin predictions and compare mean prediction with the observed positive rate.

    Binning follows ``sklearn.calibration.calibration_curve`` (same edges, same side for a
    value on an edge), and adds the per-bin counts and edges that sklearn does not return.

    Args:
        y: labels in {0, 1}, shape (N,).
        p: probabilities in [0, 1], shape (N,).
        n_bins: number of bins (>= 1).
        strategy: ``"uniform"`` (equal width on [0, 1]) or ``"quantile"`` (equal counts;
            better when predictions crowd near 0, as for rare labels).
    """
    if n_bins < 1:
        raise ValueError(f"n_bins: must be >= 1, got {n_bins}")
    yy = _check_labels(y)
    pp = _check_scores(p, yy.shape[0])
    if (pp < 0.0).any() or (pp > 1.0).any():
        raise ValueError("p: calibration needs probabilities in [0, 1]")
    if strategy == "uniform":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    elif strategy == "quantile":
        edges = np.percentile(pp, np.linspace(0.0, 100.0, n_bins + 1))
    else:
        raise ValueError(f"strategy: expected 'uniform' or 'quantile', got {strategy!r}")
    bin_ids = np.searchsorted(edges[1:-1], pp)
    count = np.bincount(bin_ids, minlength=n_bins)
    sum_p = np.bincount(bin_ids, weights=pp, minlength=n_bins)
    sum_y = np.bincount(bin_ids, weights=yy, minlength=n_bins)
    keep = count > 0
    return CalibrationBins(
        lower=edges[:-1][keep],
        upper=edges[1:][keep],
        mean_pred=sum_p[keep] / count[keep],
        frac_pos=sum_y[keep] / count[keep],
        count=count[keep].astype(np.int64),
    )


@dataclass(frozen=True)
class BucketAUC:
    """AUC of the rows in one bucket (e.g. one user-activity band)."""

    bucket: str
    auc: float
    n: int
    positives: int


def auc_by_bucket(y: ArrayLike, p: ArrayLike, bucket: ArrayLike) -> list[BucketAUC]:
    """Global AUC within each bucket, e.g. users grouped by activity.

    Args:
        y: labels in {0, 1}, shape (N,).
        p: scores, shape (N,).
        bucket: bucket label per row, shape (N,) (see `activity_buckets`).

    Returns:
        One `BucketAUC` per bucket, in sorted bucket order (`activity_buckets` labels sort
        by activity); ``auc`` is ``nan`` for a one-class bucket.
    """
    yy = _check_labels(y)
    pp = _check_scores(p, yy.shape[0])
    arr = np.asarray(bucket)
    if arr.ndim != 1 or arr.shape[0] != yy.shape[0]:
        raise ValueError(f"bucket: expected shape ({yy.shape[0]},), got {arr.shape}")
    names, codes = np.unique(arr, return_inverse=True)
    per, rows, pos = _group_auc_codes(yy, pp, codes.reshape(-1).astype(np.intp))
    return [
        BucketAUC(bucket=str(names[i]), auc=float(per[i]), n=int(rows[i]), positives=int(pos[i]))
        for i in range(len(names))
    ]


def activity_buckets(
    activity: ArrayLike, edges: tuple[int, ...] = (1, 5, 20, 100)
) -> NDArray[np.str_]:
    """Label each row with its user's activity band.

    Args:
        activity: per-row activity of the row's user (e.g. the user's number of rows in the
            training window, looked up for each evaluation row), shape (N,), >= 0.
        edges: increasing lower bounds of the bands; values below ``edges[0]`` fall in a
            leading ``"<edges[0]"`` band.

    Returns:
        Labels like ``"01: 5-19"``, shape (N,). The two-digit prefix makes the sorted order
        the activity order, which `auc_by_bucket` relies on.

    Example:
        >>> activity_buckets([0, 3, 7, 250], edges=(1, 5, 100)).tolist()
        ['00: <1', '01: 1-4', '02: 5-99', '03: 100+']
    """
    act = np.asarray(activity)
    if list(edges) != sorted(set(edges)) or not edges:
        raise ValueError(f"edges: must be non-empty and strictly increasing, got {edges}")
    names = [f"<{edges[0]}"]
    names += [f"{lo}-{hi - 1}" for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
    names.append(f"{edges[-1]}+")
    labels = np.array([f"{i:02d}: {name}" for i, name in enumerate(names)])
    return labels[np.searchsorted(np.asarray(edges), act, side="right")]


def rows_per_group(groups: ArrayLike) -> NDArray[np.int64]:
    """For each row, how many rows its group has in ``groups``; shape (N,)."""
    _, codes, counts = np.unique(np.asarray(groups), return_inverse=True, return_counts=True)
    return counts[codes.reshape(-1)].astype(np.int64)
