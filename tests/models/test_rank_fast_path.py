"""The serving fast path scores exactly like the straightforward one.

`FeedBundle.rank` hands the ranker one shared history row for all K candidates
(`shares_history`) instead of K copies; the ranker then embeds the history once and runs a
dense attention (`TargetAttention.shared`). These tests compare it with the per-row path on a
REAL model (simulated world, real trainer) and on a small fresh ranker.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from reelrec.features import FeatureBuilder
from reelrec.models.api import UserContext
from reelrec.models.bundle import make_ranker, ranker_tables
from reelrec.models.ranker import MMoE, RankerConfig, TargetAttention, shares_history
from tests.conftest import make_interactions

TOL = 1e-5


def straightforward_rank(model: Any, user: UserContext, item_ids: np.ndarray) -> dict[str, Any]:
    """The plain path: K candidate rows, each with its own copy of the user's history
    (`candidate_frame`; tests/models/test_serving_features.py checks it against training's
    features)."""
    cfg = model.builder.config_
    frame = model.candidate_frame(user, item_ids)
    batch = frame.batch(slice(None))
    assert not shares_history(batch)
    out = model.ranker(batch)  # grad mode on: none of the inference-only shortcuts
    with torch.no_grad():
        probs = out.probabilities()
        per_task = {t: probs[:, i] for i, t in enumerate(cfg.tasks)}
        score = model.fusion(per_task, out.watch)
    tasks = {t: v.numpy() for t, v in per_task.items()}
    if out.watch is not None:
        tasks["watch_ratio"] = out.watch.detach().numpy()
    return {"score": score.numpy(), "tasks": tasks}


def _users(model: Any) -> list[UserContext]:
    """Users with a long, a short and no training history, and a never-seen user."""
    state = model.state
    lengths = (state.hist >= 0).sum(axis=1)
    longest = int(state.user_ids[np.argmax(lengths)])
    short = int(state.user_ids[np.flatnonzero(lengths == lengths[lengths > 0].min())[0]])
    now = int(state.item_ids.size and 1_700_000_000_000)
    out = [
        UserContext(user_id=u, now_ms=now, history=model.user_history(u)) for u in (longest, short)
    ]
    out.append(UserContext(user_id=10**12, now_ms=now))  # cold: empty history
    # a live history longer than history_len, with an id the model never saw
    live = np.concatenate([model.catalog.item_id[:30], [987_654_321_987]])
    out.append(UserContext(user_id=longest, now_ms=now, tab=1, history=live))
    return out


def test_rank_matches_straightforward_path_on_trained_model(model: Any) -> None:
    ids = model.catalog.item_id[model.catalog.visible][:300].astype(np.int64)
    ids = np.concatenate([ids, [123_456_789_123]])  # an id outside the catalog too
    for user in _users(model):
        fast = model.rank(user, ids)
        ref = straightforward_rank(model, user, ids)
        assert fast.score.shape == ids.shape
        np.testing.assert_allclose(fast.score, ref["score"], rtol=TOL, atol=TOL)
        assert set(fast.tasks) == set(ref["tasks"])
        for t, v in ref["tasks"].items():
            np.testing.assert_allclose(fast.tasks[t], v, rtol=TOL, atol=TOL)


def test_rank_of_one_candidate_matches(model: Any) -> None:
    """K = 1: the batch has one row either way, the per-row path is taken."""
    ids = model.catalog.item_id[model.catalog.visible][:1].astype(np.int64)
    user = _users(model)[0]
    np.testing.assert_allclose(
        model.rank(user, ids).score, straightforward_rank(model, user, ids)["score"], rtol=TOL
    )


def _attention_case():  # type: ignore[no-untyped-def]
    """An attention layer, 7 queries and one history of 5 keys, and that history copied per
    query as the jagged path takes it (keys, row)."""
    torch.manual_seed(0)
    att = TargetAttention(12)
    query, keys = torch.randn(7, 12), torch.randn(5, 12)
    return att, query, keys, torch.arange(7).repeat_interleave(5)


def test_shared_attention_equals_jagged_attention() -> None:
    att, query, keys, row = _attention_case()
    with torch.no_grad():
        ref = att(query, keys.repeat(7, 1), row)
        got = att.shared(query, keys)
        assert torch.allclose(got, ref, atol=1e-6)
        empty = att.shared(query, keys[:0])
    assert empty.shape == (7, 12) and not bool(empty.any())


def test_target_attention_paths_agree_under_bf16_autocast() -> None:
    att, query, keys, row = _attention_case()
    with torch.no_grad():
        ref = att(query, keys.repeat(7, 1), row)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            jagged = att(query, keys.repeat(7, 1), row)
            shared = att.shared(query, keys)
    assert torch.allclose(jagged.float(), ref, atol=0.05)
    assert torch.allclose(shared.float(), ref, atol=0.05)


def test_ranker_shared_history_batch_equals_copied_history() -> None:
    data = make_interactions(n_events=600)
    fb = FeatureBuilder(history_len=5).fit(data.events, data.items, data.users, data.labels)
    frame, _ = fb.transform(data.events)
    c = fb.config_
    cfg = RankerConfig(tasks=c.tasks, watch_task=c.watch_task, n_fields=len(c.field_names),
                       n_dense=c.n_dense, history_len=5, embedding_dim=8)  # fmt: skip
    ranker = make_ranker(cfg, ranker_tables(cfg, 0.05, 0))
    part = frame.take(slice(0, 40))
    full = part.batch(slice(None))
    ranker(full)  # train mode: admit the ids
    ranker.eval()
    # every row gets row 7's history: once as 40 copies, once as one shared row
    copies = dataclasses.replace(
        part,
        hist_item=np.repeat(part.hist_item[7:8], 40, axis=0),
        hist_author=np.repeat(part.hist_author[7:8], 40, axis=0),
    )
    shared = dataclasses.replace(
        part, hist_item=part.hist_item[7:8], hist_author=part.hist_author[7:8]
    )
    b_copies, b_shared = copies.batch(slice(None)), shared.batch(slice(None))
    b_copies.labels = b_shared.labels = None
    assert shares_history(b_shared) and not shares_history(b_copies)
    with torch.no_grad():
        a, b = ranker(b_copies), ranker(b_shared)
    assert torch.allclose(a.logits, b.logits, atol=TOL)
    assert a.watch is not None and b.watch is not None
    assert torch.allclose(a.watch, b.watch, atol=TOL)


def test_mmoe_one_matmul_for_all_experts_matches_expert_by_expert() -> None:
    """The merged experts' outputs and every expert's weight gradients equal the plain
    definition: each expert on its own, softmax gates, the gated sum."""
    torch.manual_seed(0)
    mmoe = MMoE(24, n_experts=3, expert_dims=[8], n_tasks=2)
    x = torch.randn(50, 24)
    experts = torch.stack([e(x) for e in mmoe.experts], dim=1)  # (B, E, H)
    gates = torch.softmax(mmoe.gates(x).view(-1, 2, 3), dim=-1)  # (B, T, E)
    reference = list(torch.bmm(gates, experts).unbind(dim=1))
    ref_grads = torch.autograd.grad(sum(r.square().sum() for r in reference), mmoe.parameters())
    merged = mmoe(x)
    grads = torch.autograd.grad(sum(m.square().sum() for m in merged), mmoe.parameters())
    for a, b in zip(reference, merged, strict=True):
        torch.testing.assert_close(a, b)
    for a, b in zip(ref_grads, grads, strict=True):
        torch.testing.assert_close(a, b)
    with torch.inference_mode():
        for a, b in zip(reference, mmoe(x), strict=True):
            torch.testing.assert_close(a.detach(), b)
