"""Paired user bootstrap: weighted AUC against scikit-learn, point gains against
label_metrics, and intervals that separate a real gain from none; one model's intervals
against the spread of fresh draws of users."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from reelrec.eval.compare import _Scored, paired_gain, user_intervals
from reelrec.eval.metrics import _check_groups, label_metrics


def _data(n: int = 3000, users: int = 150, seed: int = 0):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    u = rng.integers(0, users, n)
    signal = rng.normal(size=n)
    y = (signal + rng.normal(size=n) > 0.5).astype(float)
    good = 1 / (1 + np.exp(-signal))
    noise = rng.uniform(0.05, 0.95, n)
    return y, good, noise, u


def test_weighted_auc_equals_sklearn_on_repeated_rows() -> None:
    y, p, _, u = _data(500)
    p = np.round(p, 2)  # ties
    w = np.random.default_rng(1).integers(0, 4, y.size).astype(float)
    scored = _Scored(y, p, _check_groups(u, y.size))
    expected = roc_auc_score(np.repeat(y, w.astype(int)), np.repeat(p, w.astype(int)))
    assert scored.auc(w) == pytest.approx(expected, abs=1e-12)


def test_point_gains_are_the_label_metrics_differences() -> None:
    y, good, noise, u = _data()
    gains = paired_gain(y, noise, good, u, n_boot=0)
    m = label_metrics({"y": y}, {"y": good}, u)["y"]
    base = label_metrics({"y": y}, {"y": noise}, u)["y"]
    assert gains["auc"].gain == pytest.approx(m.auc - base.auc, abs=1e-12)
    assert gains["gauc"].gain == pytest.approx(m.gauc - base.gauc, abs=1e-12)
    assert gains["logloss"].gain == pytest.approx(m.logloss - base.logloss, abs=1e-9)
    assert gains["auc"].low == gains["auc"].gain == gains["auc"].high


def test_interval_separates_a_real_gain_from_none() -> None:
    y, good, noise, u = _data()
    better = paired_gain(y, noise, good, u, n_boot=200)
    assert better["auc"].low > 0 and better["gauc"].low > 0 and better["logloss"].high < 0
    assert better["auc"].low <= better["auc"].gain <= better["auc"].high
    same = paired_gain(y, good, good, u, n_boot=50)
    assert all(g.gain == g.low == g.high == 0 for g in same.values())
    # Two equally uninformative models: the interval covers zero.
    other = np.random.default_rng(7).uniform(0.05, 0.95, y.size)
    tie = paired_gain(y, noise, other, u, n_boot=200)
    assert tie["auc"].low < 0 < tie["auc"].high


def test_bad_arguments_fail_with_names() -> None:
    y, good, noise, u = _data(100)
    with pytest.raises(ValueError, match="n_boot"):
        paired_gain(y, noise, good, u, n_boot=-1)
    with pytest.raises(ValueError, match="p_b"):
        paired_gain(y, noise, good[:50], u)


def _clustered_draw(rng: np.random.Generator, users: int = 120, rows: int = 12):  # type: ignore[no-untyped-def]
    """A fresh evaluation set: users with their own taste (a shared offset on all their
    rows, which the model half knows), so rows of one user are not independent: resampling
    rows instead of users gives intervals about half as wide as the real spread."""
    u = np.repeat(np.arange(users), rows)
    taste = rng.normal(scale=2.0, size=users)[u]
    signal = rng.normal(size=u.size)
    y = (signal + taste + rng.normal(size=u.size) > 0.8).astype(float)
    guess = 0.8 * taste + rng.normal(size=users)[u]
    p = 1 / (1 + np.exp(-(0.5 * signal + guess)))
    return y, p, u


def test_user_interval_matches_the_spread_of_fresh_draws_of_users() -> None:
    rng = np.random.default_rng(0)
    y, p, u = _clustered_draw(rng)
    bounds = user_intervals(y, p, u, n_boot=400)
    point = label_metrics({"y": y}, {"y": p}, u)["y"]
    for name, value in (("auc", point.auc), ("gauc", point.gauc), ("logloss", point.logloss)):
        assert bounds[name].low < value < bounds[name].high, name
    fresh = [label_metrics({"y": yy}, {"y": pp}, uu)["y"] for yy, pp, uu in
             (_clustered_draw(rng) for _ in range(200))]  # fmt: skip
    for name in ("auc", "gauc"):
        low, high = np.percentile([getattr(m, name) for m in fresh], [2.5, 97.5])
        width = bounds[name].high - bounds[name].low
        assert 0.7 < width / (high - low) < 1.4, (name, width, high - low)


def test_user_interval_without_replicates_is_the_point() -> None:
    y, p, u = _clustered_draw(np.random.default_rng(0))
    bounds = user_intervals(y, p, u, n_boot=0)
    point = label_metrics({"y": y}, {"y": p}, u)["y"]
    assert bounds["gauc"].low == bounds["gauc"].high == pytest.approx(point.gauc, abs=1e-12)
    with pytest.raises(ValueError, match="n_boot"):
        user_intervals(y, p, u, n_boot=-1)
    with pytest.raises(ValueError, match="p"):
        user_intervals(y, p[:10], u)
