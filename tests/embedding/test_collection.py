from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from reelrec.batch import Jagged, KeyedJagged
from reelrec.embedding import EmbeddingCollection, EmbeddingTableConfig
from reelrec.errors import DataError, IntegrityError
from tests.embedding.conftest import jagged, random_kj

LR = 0.05


def one_table(device: torch.device, **kw: object) -> EmbeddingCollection:
    cfg = EmbeddingTableConfig(name="t", dim=6, lr=LR, chunk_rows=16, **kw)  # type: ignore[arg-type]
    return EmbeddingCollection([cfg], {"a": "t", "b": "t"}, device=device)


def reference_step(
    w: torch.Tensor,
    state: dict[str, torch.Tensor],
    grad: torch.Tensor,
    touched: torch.Tensor,
    optimizer: str,
) -> None:
    """Textbook dense math on the touched rows (float32, like the table)."""
    g = grad[touched]
    if optimizer == "sgd":
        w[touched] -= LR * g
    elif optimizer == "rowwise_adagrad":
        state["acc"][touched] += g.pow(2).mean(1)
        w[touched] -= LR * g / (state["acc"][touched].sqrt() + 1e-8).unsqueeze(1)
    else:
        b1, b2 = 0.9, 0.999
        state["t"][touched] += 1
        t = state["t"][touched].unsqueeze(1).double()  # float32 0.999**t is 1e-5 off
        state["m"][touched] = b1 * state["m"][touched] + (1 - b1) * g
        state["v"][touched] = b2 * state["v"][touched] + (1 - b2) * g * g
        mhat = state["m"][touched] / (1 - b1**t).float()
        vhat = state["v"][touched] / (1 - b2**t).float()
        w[touched] -= LR * mhat / (vhat.sqrt() + 1e-8)


@pytest.mark.parametrize("optimizer", ["sgd", "rowwise_adagrad", "adam"])
def test_fused_optimizer_matches_dense_reference(device: torch.device, optimizer: str) -> None:
    n_ids = 12
    ec = one_table(device, optimizer=optimizer)
    table = ec.tables["t"]
    table.lookup(torch.arange(n_ids))  # admit every id
    w = table.weights_of(torch.arange(n_ids)).cpu()
    state = {k: torch.zeros(n_ids, 6) for k in ("m", "v")}
    state["acc"] = torch.zeros(n_ids)
    state["t"] = torch.zeros(n_ids)
    rng = np.random.default_rng(1)
    for _ in range(5):
        kj = random_kj(rng, ["a", "b"], batch=7, max_len=4, num_ids=n_ids)  # many duplicates
        r = {f: torch.from_numpy(rng.standard_normal((7, 6))).float() for f in ("a", "b")}
        out = ec(kj, pooling="mean")
        loss = sum((out[f].cpu() * r[f]).sum() for f in ("a", "b"))
        # dense reference gradient through the same pooling
        wd = w.clone().requires_grad_(True)
        ref_loss = torch.zeros(())
        for f in ("a", "b"):
            ids, lengths = kj[f].values, kj[f].lengths
            bags = torch.repeat_interleave(torch.arange(7), lengths)
            pooled = torch.zeros(7, 6).index_add(0, bags, wd[ids])
            pooled = pooled / lengths.clamp(min=1).unsqueeze(1)
            ref_loss = ref_loss + (pooled * r[f]).sum()
        ref_loss.backward()
        touched = torch.unique(torch.cat([kj["a"].values, kj["b"].values]))
        assert torch.allclose(out["b"].detach().cpu(), pooled.detach().float(), atol=1e-6)
        loss.backward()  # type: ignore[union-attr]
        reference_step(w, state, wd.grad, touched, optimizer)  # type: ignore[arg-type]
        got = table.weights_of(torch.arange(n_ids)).cpu()
        assert (got - w).abs().max().item() < 1e-6


def test_backward_touches_only_the_batch_rows() -> None:
    ec = one_table(torch.device("cpu"))
    table = ec.tables["t"]
    table.lookup(torch.arange(10))
    before = table.weights_of(torch.arange(10))
    out = ec(KeyedJagged({"a": jagged([[2, 2], [5]])}))
    out["a"].sum().backward()
    after = table.weights_of(torch.arange(10))
    changed = ((after - before).abs().sum(1) > 0).nonzero().flatten().tolist()
    assert changed == [2, 5]
    assert list(ec.parameters()) == []


def test_eval_maps_unseen_ids_to_zero_and_inserts_nothing() -> None:
    ec = one_table(torch.device("cpu"))
    ec(KeyedJagged({"a": jagged([[1]])}))
    ec.eval()
    out = ec(KeyedJagged({"a": jagged([[1], [99], []])}))["a"]
    assert not out.requires_grad
    assert torch.equal(out[0], ec.tables["t"].weights_of(torch.tensor([1]))[0])
    assert float(out[1:].abs().sum()) == 0
    assert 99 not in ec.tables["t"] and ec.tables["t"].num_rows == 1


def test_frozen_applies_no_update() -> None:
    ec = one_table(torch.device("cpu"))
    kj = KeyedJagged({"a": jagged([[1, 2]])})
    ec(kj)
    before = ec.tables["t"].weights_of(torch.tensor([1, 2]))
    with ec.frozen():
        assert ec.requires_update is False
        out = ec(kj)["a"]
        assert not out.requires_grad  # no fused update node is recorded
        (out * torch.ones(1, requires_grad=True)).sum().backward()
    assert ec.requires_update is True
    assert torch.equal(ec.tables["t"].weights_of(torch.tensor([1, 2])), before)
    ec(kj)["a"].sum().backward()
    assert not torch.equal(ec.tables["t"].weights_of(torch.tensor([1, 2])), before)


def test_sequence_keeps_last_ids_right_padded(device: torch.device) -> None:
    ec = one_table(device)
    emb, mask = ec.sequence("a", jagged([[1, 2, 3, 4, 5], [], [7]]), max_len=3)
    assert emb.shape == (3, 3, 6) and mask.shape == (3, 3)
    assert mask.cpu().tolist() == [[True, True, True], [False, False, False], [True, False, False]]
    table = ec.tables["t"]
    assert torch.equal(emb[0], table.weights_of(torch.tensor([3, 4, 5])))
    assert torch.equal(emb[2, 0], table.weights_of(torch.tensor([7]))[0])
    assert float(emb[1].detach().abs().sum()) == 0 and float(emb[2, 1:].detach().abs().sum()) == 0
    assert 1 not in table  # dropped ids are not looked up
    before = table.weights_of(torch.tensor([3, 7]))
    emb.sum().backward()
    assert not torch.equal(table.weights_of(torch.tensor([3, 7])), before)


def test_pooling_sum_and_empty_bags() -> None:
    ec = one_table(torch.device("cpu"))
    out = ec(KeyedJagged({"a": jagged([[1, 2, 2], [], [3]])}))["a"]
    w = ec.tables["t"].weights_of(torch.tensor([1, 2, 3]))
    assert torch.allclose(out[0], w[0] + 2 * w[1]) and torch.equal(out[2], w[2])
    assert float(out[1].detach().abs().sum()) == 0


def test_bad_jagged_fails() -> None:
    ec = one_table(torch.device("cpu"))
    bad = Jagged(torch.tensor([1, 2, 3]), torch.tensor([1, 1]))
    with pytest.raises(DataError, match="'a'.*lengths sum to 2 but there are 3 ids"):
        ec(KeyedJagged({"a": bad}))
    with pytest.raises(DataError, match="int64"):
        ec(KeyedJagged({"a": Jagged(torch.tensor([1.0]), torch.tensor([1]))}))


def two_tables(device: torch.device) -> EmbeddingCollection:
    return EmbeddingCollection(
        [
            EmbeddingTableConfig(
                name="user",
                dim=4,
                optimizer="adam",
                min_count=2,
                admit_prob=0.7,
                ttl_ms=3,
                chunk_rows=8,
                init_std=0.1,
            ),
            EmbeddingTableConfig(
                name="video",
                dim=8,
                optimizer="rowwise_adagrad",
                max_rows=20,
                eviction="lfu",
                chunk_rows=8,
                init_std=0.1,
            ),
        ],
        {"user_id": "user", "video_id": "video", "history": "video"},
        device=device,
    )


def run_steps(ec: EmbeddingCollection, start: int, stop: int) -> None:
    for step in range(start, stop):
        rng = np.random.default_rng(step)  # batch depends on the step only
        kj = random_kj(rng, ["user_id", "video_id", "history"], batch=6, max_len=3, num_ids=40)
        r = torch.from_numpy(rng.standard_normal((6, 8))).float().to(ec.device)
        ec.set_time(step)
        out = ec(kj)
        seq, _ = ec.sequence("history", kj["history"], max_len=2)
        loss = out["user_id"].sum() + (out["video_id"] * r).sum() + (out["history"] * r).sum()
        (loss + seq.sum()).backward()
        ec.expire()


def assert_same_state(a: EmbeddingCollection, b: EmbeddingCollection) -> None:
    ta, ma = a.state()
    tb, mb = b.state()
    assert ma == mb
    assert ta.keys() == tb.keys()
    for k in ta:
        assert torch.equal(ta[k], tb[k]), k


def test_checkpoint_restore_continue_equals_never_stopping(
    device: torch.device, tmp_path: Path
) -> None:
    straight = two_tables(device)
    run_steps(straight, 0, 12)
    first = two_tables(device)
    run_steps(first, 0, 6)
    first.checkpoint(tmp_path / "ckpt")
    resumed = EmbeddingCollection.from_checkpoint(tmp_path / "ckpt", device=device)
    run_steps(resumed, 6, 12)
    assert straight.tables["video"].num_rows > 0 and straight.tables["user"].num_rows > 0
    assert straight.version == resumed.version
    assert_same_state(straight, resumed)


def test_collection_delta_reproduces_trainer_rows() -> None:
    trainer, server = two_tables(torch.device("cpu")), two_tables(torch.device("cpu"))
    server.eval()
    run_steps(trainer, 0, 4)
    server.apply_delta(trainer.export_delta(0))
    v = trainer.version
    run_steps(trainer, 4, 8)
    server.apply_delta(trainer.export_delta(v))
    for name in ("user", "video"):
        ids = torch.from_numpy(trainer.tables[name].ids())
        assert set(server.tables[name].ids().tolist()) == set(ids.tolist())
        assert torch.equal(
            server.tables[name].weights_of(ids), trainer.tables[name].weights_of(ids)
        )


@pytest.mark.parametrize("damage", ["flip", "truncate", "manifest"])
def test_corrupted_checkpoint_fails(tmp_path: Path, damage: str) -> None:
    ec = two_tables(torch.device("cpu"))
    run_steps(ec, 0, 3)
    path = ec.checkpoint(tmp_path / "ckpt")
    target = path / "video.safetensors"
    data = bytearray(target.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
        target.write_bytes(bytes(data))
    elif damage == "truncate":
        target.write_bytes(bytes(data[: len(data) - 10]))
    else:
        (path / "manifest.json").unlink()
    fresh = two_tables(torch.device("cpu"))
    with pytest.raises(IntegrityError):
        fresh.restore(path)
    with pytest.raises(IntegrityError):
        fresh.tables["video"].restore(path)


def test_table_checkpoint_round_trip(tmp_path: Path) -> None:
    ec = two_tables(torch.device("cpu"))
    run_steps(ec, 0, 3)
    table = ec.tables["video"]
    table.checkpoint(tmp_path / "t")
    copy = two_tables(torch.device("cpu")).tables["video"]
    copy.restore(tmp_path / "t")
    ids = torch.from_numpy(table.ids())
    assert torch.equal(copy.weights_of(ids), table.weights_of(ids))


def test_memory_report_sums_tables() -> None:
    ec = two_tables(torch.device("cpu"))
    run_steps(ec, 0, 2)
    report = ec.memory_report()
    assert set(report["tables"]) == {"user", "video"}
    assert report["total_bytes"] == sum(r["total_bytes"] for r in report["tables"].values())
