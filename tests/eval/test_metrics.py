"""Ranking metrics against scikit-learn and per-user reference loops on random data."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.calibration import calibration_curve as sk_calibration_curve
from sklearn.metrics import log_loss, roc_auc_score

from reelrec.eval.metrics import (
    LabelMetrics,
    activity_buckets,
    auc,
    auc_by_bucket,
    calibration_curve,
    gauc,
    group_auc,
    label_metrics,
    logloss,
    metrics_to_json,
    rows_per_group,
)


def _data(
    seed: int, n: int = 2000, n_users: int = 150, levels: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random labels, scores correlated with them, user ids. ``levels`` > 0 rounds the
    scores onto that many values so ties are common."""
    rng = np.random.default_rng(seed)
    users = rng.integers(0, n_users, n)
    y = (rng.random(n) < 0.3).astype(np.int8)
    p = 1 / (1 + np.exp(-(rng.normal(size=n) + 0.8 * y)))
    if levels:
        p = np.round(p * levels) / levels
    return y, p, users


def _reference_gauc(y: np.ndarray, p: np.ndarray, users: np.ndarray) -> tuple[float, int]:
    """The definition, literally: sklearn AUC per user with both classes, weighted by rows."""
    num, den, count = 0.0, 0, 0
    for u in np.unique(users):
        m = users == u
        if 0 < y[m].sum() < m.sum():
            num += roc_auc_score(y[m], p[m]) * m.sum()
            den += m.sum()
            count += 1
    return num / den, count


# --- AUC -------------------------------------------------------------------------------------


@pytest.mark.parametrize("levels", [0, 5, 20])
def test_auc_matches_sklearn(levels: int) -> None:
    y, p, _ = _data(1, levels=levels)
    assert auc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)


def test_auc_one_class_is_nan() -> None:
    assert math.isnan(auc(np.zeros(10), np.linspace(0, 1, 10)))
    assert math.isnan(auc(np.ones(10), np.linspace(0, 1, 10)))


def test_auc_non_binary_labels_fails() -> None:
    with pytest.raises(ValueError, match="0 or 1"):
        auc([0, 1, 2], [0.1, 0.2, 0.3])


def test_auc_length_mismatch_fails() -> None:
    with pytest.raises(ValueError, match="3 rows but the labels have 2"):
        auc([0, 1], [0.1, 0.2, 0.3])


def test_auc_nan_scores_fails() -> None:
    with pytest.raises(ValueError, match="finite"):
        auc([0, 1], [0.1, float("nan")])


def test_auc_empty_fails() -> None:
    with pytest.raises(ValueError, match="empty"):
        auc([], [])


def test_auc_2d_fails() -> None:
    with pytest.raises(ValueError, match="1-D"):
        auc(np.zeros((2, 2)), np.zeros((2, 2)))


# --- GAUC ------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed,levels", [(0, 0), (1, 4), (2, 10), (3, 0)])
def test_gauc_matches_per_user_sklearn_loop(seed: int, levels: int) -> None:
    y, p, users = _data(seed, levels=levels)
    value, n_users = gauc(y, p, users)
    ref_value, ref_users = _reference_gauc(y, p, users)
    assert n_users == ref_users
    assert value == pytest.approx(ref_value, abs=1e-12)


def test_gauc_skips_single_class_users() -> None:
    # User "a" has both classes and a perfect order; "b" only positives, "c" only negatives:
    # both are left out, weights included, so the GAUC is exactly a's AUC.
    y = np.array([0, 1, 1, 1, 1, 0, 0, 0])
    p = np.array([0.1, 0.9, 0.1, 0.2, 0.3, 0.9, 0.8, 0.7])
    users = np.array(["a", "a", "b", "b", "b", "c", "c", "c"])
    value, n_users = gauc(y, p, users)
    assert n_users == 1
    assert value == pytest.approx(roc_auc_score(y[:2], p[:2]))


def test_gauc_without_any_two_class_user_is_nan() -> None:
    value, n_users = gauc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4], [1, 1, 2, 2])
    assert math.isnan(value)
    assert n_users == 0


def test_gauc_group_ids_of_any_dtype_give_the_same_answer() -> None:
    y, p, users = _data(5)
    as_int = gauc(y, p, users)
    as_str = gauc(y, p, np.array([f"user{u}" for u in users]))
    as_big = gauc(y, p, users.astype(np.uint64) * np.uint64(2**40))
    assert as_int == pytest.approx(as_str)
    assert as_int == pytest.approx(as_big)


def test_gauc_groups_length_mismatch_fails() -> None:
    with pytest.raises(ValueError, match="groups"):
        gauc([0, 1, 0], [0.1, 0.2, 0.3], [1, 1])


def test_group_auc_per_group_values() -> None:
    y, p, users = _data(7, n=600, n_users=20, levels=6)
    per, rows, pos = group_auc(y, p, users)
    for i, u in enumerate(np.unique(users)):
        m = users == u
        assert rows[i] == m.sum()
        assert pos[i] == y[m].sum()
        if 0 < y[m].sum() < m.sum():
            assert per[i] == pytest.approx(roc_auc_score(y[m], p[m]), abs=1e-12)
        else:
            assert math.isnan(per[i])


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.integers(0, 4),  # user
            st.integers(0, 1),  # label
            st.integers(0, 5),  # score level: few values, so many ties
        ),
        min_size=1,
        max_size=60,
    )
)
def test_gauc_property_matches_reference(rows: list[tuple[int, int, int]]) -> None:
    users = np.array([r[0] for r in rows])
    y = np.array([r[1] for r in rows])
    p = np.array([r[2] for r in rows], dtype=float) / 5
    value, n_users = gauc(y, p, users)
    has_both = [0 < y[users == u].sum() < (users == u).sum() for u in np.unique(users)]
    assert n_users == sum(has_both)
    if n_users == 0:
        assert math.isnan(value)
    else:
        ref, _ = _reference_gauc(y, p, users)
        assert value == pytest.approx(ref, abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    y=st.lists(st.integers(0, 1), min_size=2, max_size=50),
    seed=st.integers(0, 2**16),
)
def test_auc_property_is_invariant_to_monotone_transform(y: list[int], seed: int) -> None:
    yy = np.array(y)
    p = np.random.default_rng(seed).integers(0, 4, len(y)).astype(float)
    a = auc(yy, p)
    if yy.min() == yy.max():
        assert math.isnan(a)
    else:
        assert a == pytest.approx(auc(yy, np.exp(3 * p) - 7), abs=1e-12)
        assert a == pytest.approx(1 - auc(yy, -p), abs=1e-12)


# --- logloss ---------------------------------------------------------------------------------


def test_logloss_matches_sklearn() -> None:
    y, p, _ = _data(3)
    assert logloss(y, p) == pytest.approx(log_loss(y, p), rel=1e-9)


def test_logloss_clips_extreme_predictions() -> None:
    y = np.array([1, 0, 1])
    p = np.array([0.0, 1.0, 1.0])  # two certain mistakes, one certain hit
    expected = -(2 * math.log(1e-7) + math.log(1 - 1e-7)) / 3
    assert logloss(y, p) == pytest.approx(expected, rel=1e-9)
    assert math.isfinite(logloss(y, p))


def test_logloss_single_class_is_defined() -> None:
    p = np.array([0.2, 0.4])
    assert logloss([0, 0], p) == pytest.approx(log_loss([0, 0], p, labels=[0, 1]))


def test_logloss_out_of_range_fails() -> None:
    with pytest.raises(ValueError, match="sigmoid"):
        logloss([0, 1], [-0.5, 2.0])


# --- label_metrics and JSON ------------------------------------------------------------------


def test_label_metrics_per_label_and_json_contract() -> None:
    rng = np.random.default_rng(11)
    n = 1500
    users = rng.integers(0, 80, n)
    labels = {
        "long_view": (rng.random(n) < 0.4).astype(np.int8),
        "is_like": (rng.random(n) < 0.05).astype(np.int8),
        "is_follow": np.zeros(n, dtype=np.int8),  # no positives in this window
    }
    preds = {k: rng.random(n).astype(np.float32) for k in labels}
    preds["watch_ratio"] = rng.random(n)  # extra heads are ignored
    result = label_metrics(labels, preds, users)

    assert list(result) == list(labels)
    for name, m in result.items():
        y, p = labels[name], preds[name]
        assert isinstance(m, LabelMetrics)
        assert m.n == n
        assert m.positives == int(y.sum())
        assert m.logloss == pytest.approx(log_loss(y, p.astype(float), labels=[0, 1]), rel=1e-6)
        g, g_users = gauc(y, p, users)
        assert m.gauc_users == g_users
        if name == "is_follow":
            assert math.isnan(m.auc) and math.isnan(m.gauc)
        else:
            assert m.auc == pytest.approx(roc_auc_score(y, p))
            assert m.gauc == pytest.approx(g)

    doc = json.loads(json.dumps(metrics_to_json(result), allow_nan=False))
    for name in labels:
        assert {"auc", "gauc", "logloss", "n"} <= set(doc["labels"][name])
    assert doc["labels"]["is_follow"]["auc"] is None
    assert doc["labels"]["long_view"]["n"] == n


def test_label_metrics_missing_prediction_fails() -> None:
    with pytest.raises(ValueError, match="is_like"):
        label_metrics({"is_like": np.array([0, 1])}, {"long_view": np.array([0.1, 0.2])}, [1, 1])


def test_label_metrics_row_count_mismatch_fails() -> None:
    labels = {"a": np.array([0, 1]), "b": np.array([0, 1, 1])}
    preds = {"a": np.array([0.1, 0.2]), "b": np.array([0.1, 0.2, 0.3])}
    with pytest.raises(ValueError, match="rows"):
        label_metrics(labels, preds, [1, 1])


# --- calibration -----------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
def test_calibration_curve_matches_sklearn(strategy: str) -> None:
    y, p, _ = _data(4)
    bins = calibration_curve(y, p, n_bins=8, strategy=strategy)  # type: ignore[arg-type]
    ref_true, ref_pred = sk_calibration_curve(y, p, n_bins=8, strategy=strategy)
    np.testing.assert_allclose(bins.frac_pos, ref_true)
    np.testing.assert_allclose(bins.mean_pred, ref_pred)
    assert bins.count.sum() == len(y)
    assert np.all(bins.lower <= bins.mean_pred) and np.all(bins.mean_pred <= bins.upper)


def test_calibration_ece_of_perfect_bins_is_small() -> None:
    rng = np.random.default_rng(9)
    p = rng.random(200_000)
    y = (rng.random(p.size) < p).astype(np.int8)  # calibrated by construction
    assert calibration_curve(y, p).ece < 0.01
    assert calibration_curve(y, p**3).ece > 0.1  # a distorted one is not


def test_calibration_bad_strategy_fails() -> None:
    with pytest.raises(ValueError, match="strategy"):
        calibration_curve([0, 1], [0.1, 0.9], strategy="log")  # type: ignore[arg-type]


def test_calibration_bad_bins_fails() -> None:
    with pytest.raises(ValueError, match="n_bins"):
        calibration_curve([0, 1], [0.1, 0.9], n_bins=0)


# --- buckets ---------------------------------------------------------------------------------


def test_auc_by_bucket_matches_sklearn_per_bucket() -> None:
    y, p, users = _data(6, n=3000, levels=12)
    buckets = activity_buckets(rows_per_group(users), edges=(1, 15, 22))
    result = auc_by_bucket(y, p, buckets)
    assert [r.bucket for r in result] == sorted(set(buckets.tolist()))
    assert sum(r.n for r in result) == len(y)
    for r in result:
        m = buckets == r.bucket
        assert r.n == m.sum() and r.positives == y[m].sum()
        assert r.auc == pytest.approx(roc_auc_score(y[m], p[m]), abs=1e-12)


def test_auc_by_bucket_one_class_bucket_is_nan() -> None:
    result = auc_by_bucket([0, 1, 0, 0], [0.2, 0.8, 0.5, 0.1], ["x", "x", "y", "y"])
    assert result[0].auc == 1.0
    assert math.isnan(result[1].auc)


def test_activity_buckets_order_and_bounds() -> None:
    activity = np.array([0, 1, 4, 5, 19, 20, 99, 100, 5000])
    labels = activity_buckets(activity, edges=(1, 5, 20, 100))
    # Every value lands in the band whose bounds contain it, and sorted labels follow activity.
    for a, label in zip(activity, labels, strict=True):
        band = label.split(": ")[1]
        if band.startswith("<"):
            assert a < int(band[1:])
        elif band.endswith("+"):
            assert a >= int(band[:-1])
        else:
            lo, hi = (int(x) for x in band.split("-"))
            assert lo <= a <= hi
    assert list(np.argsort(labels, kind="stable")) == list(range(len(activity)))


def test_activity_buckets_unsorted_edges_fails() -> None:
    with pytest.raises(ValueError, match="increasing"):
        activity_buckets([1, 2], edges=(5, 1))


def test_rows_per_group() -> None:
    users = np.array([3, 1, 3, 3, 2, 1])
    assert rows_per_group(users).tolist() == [(users == u).sum() for u in users]


def test_gauc_is_vectorised() -> None:
    # A Python loop over 20k users takes tens of seconds; the vectorised path ~0.05 s. The
    # bound is loose because the CI machine is shared, but a per-user loop cannot meet it.
    import time

    rng = np.random.default_rng(0)
    n = 100_000
    users = rng.integers(0, 20_000, n)
    y = (rng.random(n) < 0.3).astype(np.int8)
    p = rng.random(n).astype(np.float32)
    start = time.perf_counter()
    _, n_users = gauc(y, p, users)
    assert time.perf_counter() - start < 3.0
    assert n_users > 10_000
