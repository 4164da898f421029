"""The training loop: the wide warm-up (only the per-id bias rows learn, and they fit) and
the day-by-day batch order."""

from __future__ import annotations

import torch

from reelrec.train.loop import BatchOrder, LoopConfig, dense_parameters, fit
from tests.models.test_ranker import _setup

WIDE = ("wide_user", "wide_item", "wide_author", "wide_fields")


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    tables = model.embeddings.tables  # type: ignore[union-attr]
    out = {name: t.weights_of(t.ids()).clone() for name, t in tables.items()}
    out |= {f"dense.{i}": p.detach().clone() for i, p in enumerate(dense_parameters(model))}
    return out


def test_wide_warmup_learns_the_bias_rows_only() -> None:
    torch.manual_seed(0)
    model, frame, _ = _setup(n_events=1500)
    batch = frame.batch(slice(None))
    before = _weights(model)
    with torch.no_grad():
        loss_before = float(model.forward_wide(batch).loss)  # type: ignore[arg-type]
    cfg = LoopConfig(epochs=0, batch_size=128, show_progress=False, wide_warmup_epochs=3)
    fit(model, frame, None, cfg, torch.device("cpu"))
    after = _weights(model)
    # Tables admit rows on first use: the bias tables filled, the deep ones never looked up.
    assert all(before[name].shape[0] == 0 < after[name].shape[0] for name in WIDE)
    for name in set(before) - set(WIDE):
        assert torch.equal(after[name], before[name]), f"{name} changed in the warm-up"
    with torch.no_grad():
        loss_after = float(model.forward_wide(batch).loss)  # type: ignore[arg-type]
    assert loss_after < loss_before


def test_forward_wide_is_the_wide_part_of_forward() -> None:
    model, frame, cfg = _setup()
    model.eval()
    batch = frame.batch(slice(0, 64))
    with torch.no_grad():
        wide = model.forward_wide(batch).logits
        assert torch.equal(wide, model.wide(batch)[:, : len(cfg.tasks)])


def _trained(order: BatchOrder) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model, frame, _ = _setup(n_events=1500)
    cfg = LoopConfig(epochs=1, batch_size=128, show_progress=False, batch_order=order)
    fit(model, frame, None, cfg, torch.device("cpu"))
    return _weights(model)


def test_day_batch_order_reaches_the_training_steps() -> None:
    day, again, shuffled = (
        _trained(BatchOrder.DAY),
        _trained(BatchOrder.DAY),
        _trained(BatchOrder.SHUFFLE),
    )
    assert all(torch.equal(day[k], again[k]) for k in day)  # deterministic
    assert any(not torch.equal(day[k], shuffled[k]) for k in day if k.startswith("dense."))
