"""The ranker's contract: shapes, loss only with labels, learning, fused score, arity."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch

from reelrec.features import FeatureBuilder
from reelrec.models import ranker as ranker_module
from reelrec.models.bundle import make_ranker, ranker_tables
from reelrec.models.ranker import CrossNetV2, Ranker, RankerConfig, ScoreFusion, TargetAttention
from tests.conftest import make_interactions


def _setup(n_events: int = 800):  # type: ignore[no-untyped-def]
    data = make_interactions(n_events=n_events)
    fb = FeatureBuilder(history_len=5).fit(data.events, data.items, data.users, data.labels)
    frame, _ = fb.transform(data.events)
    c = fb.config_
    cfg = RankerConfig(tasks=c.tasks, watch_task=c.watch_task, n_fields=len(c.field_names),
                       n_dense=c.n_dense, history_len=5, embedding_dim=8)  # fmt: skip
    return make_ranker(cfg, ranker_tables(cfg, 0.05, 0)), frame, cfg


def test_forward_shapes_and_loss_only_with_labels() -> None:
    model, frame, cfg = _setup()
    batch = frame.batch(slice(0, 32))
    out = model(batch)
    assert out.logits.shape == (32, len(cfg.tasks))
    assert out.watch is not None and out.watch.shape == (32,) and bool((out.watch >= 0).all())
    assert out.loss is not None and out.loss.ndim == 0
    batch.labels = None
    model.eval()
    assert model(batch).loss is None


def test_training_reduces_loss() -> None:
    torch.manual_seed(0)
    model, frame, _ = _setup(1500)
    opt = torch.optim.Adam(
        [p for n, p in model.named_parameters() if not n.startswith("embeddings")], lr=5e-3
    )
    batch = frame.batch(slice(0, 512))
    first = None
    for _ in range(40):
        out = model(batch)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        first = first if first is not None else float(out.loss.detach())
    assert float(out.loss.detach()) < 0.8 * first


def test_embedding_rows_update_in_backward() -> None:
    model, frame, _ = _setup()
    batch = frame.batch(slice(0, 64))
    model(batch).loss.backward()  # the first pass admits the batch's ids (new rows)
    tensors_before = {k: v.clone() for k, v in model.embeddings.state()[0].items()}
    model(batch).loss.backward()
    tensors_after, _ = model.embeddings.state()
    changed = [k for k in tensors_after if k in tensors_before and tensors_before[k].shape == tensors_after[k].shape
               and not torch.equal(tensors_before[k], tensors_after[k])]  # fmt: skip
    assert changed, "no embedding row changed after backward"


def test_target_attention_is_a_per_row_softmax() -> None:
    torch.manual_seed(0)
    att = TargetAttention(4)
    q = torch.randn(3, 4)
    keys = torch.randn(5, 4)
    row = torch.tensor([0, 0, 0, 2, 2])  # row 1 has no history
    out = att(q, keys, row)
    assert torch.all(out[1] == 0)
    # Reference: each row separately, with the same scoring layers and an explicit softmax.
    for b in (0, 2):
        k = keys[row == b]
        h = torch.relu(att.q_proj(q[b]) + att.k_proj(k) + att.qk_proj(q[b] * k))
        w = torch.softmax(att.out(h).squeeze(-1), dim=0)
        torch.testing.assert_close(out[b], (w.unsqueeze(-1) * k).sum(0))


def test_cross_net_keeps_width() -> None:
    x = torch.randn(5, 12)
    assert CrossNetV2(12, 3, 4)(x).shape == (5, 12)


def test_score_fusion_is_monotone_in_each_task() -> None:
    fusion = ScoreFusion()
    p = {t: torch.full((3,), 0.3) for t in fusion.weights}
    base = fusion(p, torch.zeros(3))
    for t in fusion.weights:
        bumped = dict(p)
        bumped[t] = torch.full((3,), 0.6)
        assert bool((fusion(bumped, torch.zeros(3)) > base).all()), t
    assert bool((fusion(p, torch.ones(3)) > base).all())


@pytest.mark.parametrize("cls", [c for _, c in inspect.getmembers(ranker_module, inspect.isclass)
                                 if issubclass(c, torch.nn.Module) and c.__module__ == ranker_module.__name__])  # fmt: skip
def test_constructors_take_at_most_five_arguments(cls: type) -> None:
    params = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    assert len(params) <= 5, (cls.__name__, params)


def test_predictions_are_probabilities() -> None:
    model, frame, _ = _setup()
    model.eval()
    with torch.no_grad():
        p = model(frame.batch(slice(0, 100))).probabilities()
    assert bool(((p >= 0) & (p <= 1)).all())
    assert np.isfinite(p.numpy()).all()
    assert isinstance(model, Ranker)


def _pair_loss_by_hand(logit: np.ndarray, label: np.ndarray, users: np.ndarray) -> float:
    order = np.argsort(users, kind="stable")
    terms = []
    for a, b in zip(order[:-1], order[1:], strict=True):
        if users[a] == users[b] and label[a] != label[b]:
            pos, neg = (a, b) if label[a] > label[b] else (b, a)
            terms.append(np.log1p(np.exp(-(logit[pos] - logit[neg]))))
    return float(np.mean(terms)) if terms else 0.0


def test_within_user_pair_loss_pairs_neighbouring_rows_of_one_user() -> None:
    rng = np.random.default_rng(0)
    users = rng.integers(0, 6, 40)
    logit, label = rng.normal(size=40), rng.integers(0, 2, 40).astype(np.float32)
    got = ranker_module.within_user_pair_loss(
        torch.from_numpy(logit), torch.from_numpy(label), torch.from_numpy(users)
    )
    assert float(got) == pytest.approx(_pair_loss_by_hand(logit, label, users), rel=1e-6)
    # Blind to anything between users: shifting one user's logits changes nothing ...
    shifted = logit + np.where(users == users[0], 3.0, 0.0)
    again = ranker_module.within_user_pair_loss(
        torch.from_numpy(shifted), torch.from_numpy(label), torch.from_numpy(users)
    )
    assert float(again) == pytest.approx(float(got), rel=1e-6)
    # ... and with one row per user there is no pair at all.
    alone = ranker_module.within_user_pair_loss(
        torch.from_numpy(logit[:5]), torch.from_numpy(label[:5]), torch.arange(5)
    )
    assert float(alone) == 0.0


def test_pairwise_weights_add_the_within_user_terms_to_the_loss() -> None:
    model, frame, cfg = _setup()
    batch = frame.batch(slice(0, 256))
    with torch.no_grad():
        plain = model(batch)
    model.config.pairwise_weights = {"long_view": 0.5, "is_click": 0.25, "is_like": 0.0}
    with torch.no_grad():
        both = model(batch)
    assert set(both.task_losses) - set(plain.task_losses) == {
        "long_view_pairwise",
        "is_click_pairwise",
    }
    extra = (
        0.5 * both.task_losses["long_view_pairwise"] + 0.25 * both.task_losses["is_click_pairwise"]
    )
    assert both.loss is not None and plain.loss is not None
    assert both.loss.item() == pytest.approx(plain.loss.item() + extra, rel=1e-5)


def test_ranker_trains_and_scores_under_bf16_autocast() -> None:
    """Accelerators run the ranker under bf16 autocast (device.autocast_dtype). The CPU can
    too, so a dtype mismatch shows up here instead of first on a GPU or NPU."""
    torch.manual_seed(0)
    model, frame, _ = _setup()
    batch = frame.batch(slice(0, 256))
    model(batch).loss.backward()  # admit the batch's ids first: then both passes see them
    model.eval()
    with torch.no_grad():
        full = model(batch).logits
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half = model(batch).logits
    assert torch.allclose(half.float(), full, atol=0.1)
    model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(batch)
    assert out.loss is not None and bool(torch.isfinite(out.loss))
    out.loss.backward()  # dense grads and the fused embedding-row updates
    assert all(p.grad is not None for p in model.attention.parameters())
