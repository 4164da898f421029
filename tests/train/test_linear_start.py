"""The linear start: a task's wide biases become the logistic regression that scikit-learn
fits on the same ids, and nothing else moves."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from reelrec.config import LINEAR_START_SCALE, parse_linear_start
from reelrec.errors import ConfigError
from reelrec.train.linear_start import linear_start, wide_design
from tests.models.test_ranker import _setup


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_linear_start_loads_the_fitted_regression_into_that_tasks_biases(scale: float) -> None:
    model, frame, cfg = _setup(n_events=1500)
    like = cfg.tasks.index("is_like")
    dense_before = {k: v.clone() for k, v in model.state_dict().items() if "tower" not in k}
    bias_before = [float(tower[-1].bias.detach()) for tower in model.towers]  # type: ignore[index]
    linear_start(model, frame, {"is_like": scale}, c=0.3)

    x, _ = wide_design(frame)
    expected = LogisticRegression(C=0.3, solver="liblinear", max_iter=300).fit(
        x, frame.labels[:, like]
    )
    assert frame.labels[:, like].min() == 0 < frame.labels[:, like].max()
    with torch.no_grad():
        wide = model.forward_wide(frame.batch(slice(None))).logits.double().numpy()
    shift = [
        float(tower[-1].bias.detach()) - b  # type: ignore[index]
        for tower, b in zip(model.towers, bias_before, strict=True)
    ]
    np.testing.assert_allclose(
        wide[:, like] + shift[like], scale * expected.decision_function(x), rtol=1e-5, atol=1e-5
    )
    others = [t for t in range(len(cfg.tasks)) if t != like]
    assert not wide[:, others].any(), "another task's biases moved"
    assert [s for t, s in enumerate(shift) if t != like] == [0.0] * (len(shift) - 1)  # +watch
    for name, value in dense_before.items():
        if not name.startswith("embeddings."):
            assert torch.equal(model.state_dict()[name], value), name


def test_linear_start_names_an_unknown_task() -> None:
    model, frame, _ = _setup(n_events=200)
    with pytest.raises(ConfigError, match="--linear-start.*is_liek"):
        linear_start(model, frame, {"is_liek": 0.5}, c=0.3)


def test_a_task_with_one_class_keeps_its_biases() -> None:
    model, frame, cfg = _setup(n_events=200)
    frame.labels[:, cfg.tasks.index("is_like")] = 0.0
    linear_start(model, frame, {"is_like": 0.5}, c=0.3)
    with torch.no_grad():
        assert not model.forward_wide(frame.batch(slice(None))).logits.any()


def test_linear_start_option_gives_each_task_its_scale() -> None:
    assert parse_linear_start("is_like=0.75, is_follow") == {
        "is_like": 0.75,
        "is_follow": LINEAR_START_SCALE,
    }
    assert parse_linear_start("") == {}
    with pytest.raises(ConfigError, match="TASK=SCALE"):
        parse_linear_start("is_like=")
