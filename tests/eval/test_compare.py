"""Paired user bootstrap: weighted AUC against scikit-learn, point gains against
label_metrics, and intervals that separate a real gain from none."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from reelrec.eval.compare import _Scored, paired_gain
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
