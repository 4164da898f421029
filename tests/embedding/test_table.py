from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from reelrec.embedding import DynamicEmbedding, EmbeddingTableConfig
from reelrec.errors import ConfigError, IntegrityError


def table(**kw: object) -> DynamicEmbedding:
    args: dict[str, object] = {"name": "t", "dim": 4, "chunk_rows": 8}
    args.update(kw)
    return DynamicEmbedding(EmbeddingTableConfig(**args))  # type: ignore[arg-type]


def check_invariants(t: DynamicEmbedding) -> None:
    """Distinct ids hold distinct live rows, and each row knows its id."""
    ids, rows = t._index.items()
    assert len(set(rows.tolist())) == rows.size, "two ids share a row"
    assert (rows > 0).all(), "an id maps to the default row"
    assert t._live[rows].all()
    assert (t._meta["row_id"][rows] == ids).all()
    assert int(t._live.sum()) == ids.size
    free = t._free[: t._n_free]
    assert not t._live[free].any() and len(set(free.tolist())) == free.size
    if t.config.max_rows is not None:
        assert t.num_rows <= t.config.max_rows


OP = st.one_of(
    st.tuples(st.just("lookup"), st.lists(st.integers(0, 40), max_size=10)),
    st.tuples(st.just("eval_lookup"), st.lists(st.integers(0, 40), max_size=10)),
    st.tuples(st.just("evict"), st.lists(st.integers(0, 40), max_size=5)),
    st.tuples(st.just("time"), st.integers(0, 30)),
    st.tuples(st.just("expire"), st.none()),
    st.tuples(st.just("restore"), st.none()),
)


@settings(max_examples=40, deadline=None)
@given(
    ops=st.lists(OP, max_size=25),
    max_rows=st.one_of(st.none(), st.integers(1, 12)),
    eviction=st.sampled_from(["lru", "lfu"]),
    min_count=st.integers(1, 3),
)
def test_no_two_ids_share_a_row(
    ops: list[tuple[str, object]], max_rows: int | None, eviction: str, min_count: int
) -> None:
    t = table(max_rows=max_rows, eviction=eviction, min_count=min_count, ttl_ms=10)
    now = 0
    for op, arg in ops:
        if op in ("lookup", "eval_lookup"):
            t.train(op == "lookup")
            before = t.num_rows
            rows = t.lookup(torch.tensor(arg, dtype=torch.int64)).numpy()
            ids = np.array(arg, dtype=np.int64)
            # an id with a row resolves to it; equal ids resolve to equal rows
            held = t.rows_of(ids)
            assert (rows == np.maximum(held, 0)).all()
            if op == "eval_lookup":
                assert t.num_rows == before
        elif op == "evict":
            t.evict(torch.tensor(arg, dtype=torch.int64))
            assert (t.rows_of(np.array(arg, dtype=np.int64)) == -1).all()
        elif op == "time":
            now += int(arg)  # type: ignore[call-overload]
            t.set_time(now)
        elif op == "expire":
            t.expire()
        else:
            fresh = table(max_rows=max_rows, eviction=eviction, min_count=min_count, ttl_ms=10)
            fresh.load_state_bytes(t.state_bytes())
            t = fresh
        check_invariants(t)


def test_admits_at_min_count_counting_duplicates() -> None:
    t = table(min_count=3)
    t.lookup(torch.tensor([5, 5, 9]))
    assert t.num_rows == 0
    rows = t.lookup(torch.tensor([9, 5]))  # 5 seen 3 times now, 9 twice
    assert 5 in t and 9 not in t
    assert rows[0].item() == 0 and rows[1].item() > 0
    t.lookup(torch.tensor([9]))
    assert 9 in t


def test_eval_mode_inserts_and_counts_nothing() -> None:
    t = table(min_count=2)
    t.eval()
    for _ in range(3):
        assert t.lookup(torch.tensor([1, 2])).tolist() == [0, 0]
    assert t.num_rows == 0
    t.train()
    t.lookup(torch.tensor([1]))
    assert 1 not in t  # the eval sightings were not counted


def test_admit_prob_is_a_seeded_coin() -> None:
    ids = torch.arange(4000)
    a, b, c = table(admit_prob=0.3), table(admit_prob=0.3), table(admit_prob=0.3, seed=1)
    for x in (a, b, c):
        x.lookup(ids)
    n = a.num_rows
    assert abs(n - 1200) < 5 * (4000 * 0.3 * 0.7) ** 0.5
    assert np.array_equal(a.ids(), b.ids())
    assert not np.array_equal(np.sort(a.ids()), np.sort(c.ids()))
    a.lookup(ids)  # a new sighting is a new draw
    assert a.num_rows > n


def test_ttl_evicts_idle_ids_in_event_time() -> None:
    t = table(ttl_ms=100)
    t.set_time(1000)
    t.lookup(torch.tensor([1, 2, 3]))
    t.set_time(1050)
    t.lookup(torch.tensor([2]))
    t.set_time(1100)
    assert t.expire() == 0  # idle for exactly ttl: kept
    t.set_time(1101)
    assert t.expire() == 2
    assert sorted(t.ids().tolist()) == [2]
    t.set_time(1151)
    assert t.expire() == 1 and t.num_rows == 0


def test_no_ttl_never_expires() -> None:
    t = table()
    t.lookup(torch.tensor([1]))
    t.set_time(10**12)
    assert t.expire() == 0 and 1 in t


@pytest.mark.parametrize("policy", ["lru", "lfu"])
def test_max_rows_evicts_by_policy(policy: str) -> None:
    t = table(max_rows=3, eviction=policy)
    t.lookup(torch.tensor([1, 1, 1]))
    t.lookup(torch.tensor([2, 2]))
    t.lookup(torch.tensor([3]))
    t.lookup(torch.tensor([1]))  # counts 1:4, 2:2, 3:1; least recent: 2
    t.lookup(torch.tensor([4]))
    assert t.num_rows == 3
    gone = {1, 2, 3, 4} - set(t.ids().tolist())
    assert gone == ({2} if policy == "lru" else {3})


def test_max_rows_never_evicts_rows_of_the_current_batch() -> None:
    t = table(max_rows=2)
    t.lookup(torch.tensor([1, 2]))
    rows = t.lookup(torch.tensor([1, 2, 3]))  # no room without evicting 1 or 2
    assert rows.tolist()[:2] == t.rows_of(np.array([1, 2])).tolist()
    assert rows[2].item() == 0 and 3 not in t


def test_freed_rows_are_reused_and_cleared() -> None:
    t = table(optimizer="adam")
    t.lookup(torch.tensor([1, 2, 3]))
    t.embed(torch.tensor([2])).sum().backward()
    row2 = int(t.rows_of(np.array([2]))[0])
    assert t.evict(torch.tensor([2, 99])) == 1
    assert all(float(s[row2].abs().sum()) == 0 for s in t._opt.values())
    t.lookup(torch.tensor([7]))
    assert int(t.rows_of(np.array([7]))[0]) == row2
    assert t.capacity == 8  # nothing grew


def test_table_grows_in_chunks_keeping_rows() -> None:
    t = table()
    t.lookup(torch.arange(5))
    before = t.weights_of(torch.arange(5))
    t.lookup(torch.arange(5, 100))
    assert t.capacity >= 101 and t.capacity % 8 == 0
    assert torch.equal(t.weights_of(torch.arange(5)), before)


def test_init_depends_on_id_only() -> None:
    a, b = table(init_std=0.1), table(init_std=0.1)
    a.lookup(torch.tensor([3, 4, 5]))
    b.lookup(torch.tensor([5, 4, 3, 3]))
    assert torch.equal(a.weights_of(torch.tensor([3, 4, 5])), b.weights_of(torch.tensor([3, 4, 5])))
    w = table(dim=64, init_std=0.1)
    w.lookup(torch.arange(500))
    vals = w.weights_of(torch.arange(500))
    assert abs(vals.std().item() - 0.1) < 0.01 and abs(vals.mean().item()) < 0.01


def test_default_row_is_zero_and_never_updated() -> None:
    t = table(min_count=5)
    out = t.embed(torch.tensor([1, 1]))
    assert float(out.detach().abs().sum()) == 0
    out.sum().backward()
    assert float(t.weight[0].abs().sum()) == 0 and t.num_rows == 0


def test_version_advances_on_changes_only() -> None:
    t = table()
    v0 = t.version
    t.lookup(torch.tensor([1]))
    v1 = t.version
    assert v1 > v0
    t.lookup(torch.tensor([1]))  # no insert: no change
    assert t.version == v1
    t.embed(torch.tensor([1])).sum().backward()
    assert t.version > v1


def test_assign_sets_rows_skips_unadmitted_ids_and_the_delta_carries_them() -> None:
    t = table(min_count=2)
    t.lookup(torch.tensor([5, 5, 7]))  # 5 admitted (seen twice); 7 seen once, 6 never
    synced = t.version
    values = torch.arange(12, dtype=torch.float32).view(3, 4) + 1
    assert t.assign(np.array([5, 6, 7]), values) == 2  # 7's second sighting admits it
    assert t.rows_of(np.array([6]))[0] == -1
    assert torch.equal(t.weights_of(torch.tensor([5, 7])), values[[0, 2]])
    server = table(min_count=2)
    server.eval()
    server.apply_delta(t.export_delta(synced))
    assert torch.equal(server.weights_of(torch.tensor([5, 7])), values[[0, 2]])


def test_delta_reproduces_rows_on_another_table() -> None:
    trainer = table(optimizer="rowwise_adagrad", ttl_ms=5, max_rows=30)
    server = table(optimizer="rowwise_adagrad", ttl_ms=5, max_rows=30)
    server.eval()
    rng = np.random.default_rng(0)
    synced = 0
    for step in range(12):
        trainer.set_time(step)
        ids = torch.from_numpy(rng.integers(0, 50, 20))
        (trainer.embed(ids) * torch.randn(20, 4)).sum().backward()
        trainer.expire()
        if step % 3 == 2:
            delta = trainer.export_delta(synced)
            synced = trainer.version
            server.apply_delta(delta)
            assert set(server.ids().tolist()) == set(trainer.ids().tolist())
            ids_now = torch.from_numpy(trainer.ids())
            assert torch.equal(server.weights_of(ids_now), trainer.weights_of(ids_now))
            assert torch.equal(
                server.optimizer_state_of(ids_now)["acc"],
                trainer.optimizer_state_of(ids_now)["acc"],
            )
    assert trainer.export_delta(trainer.version) != trainer.export_delta(0)


def test_forget_evictions_trims_the_log_only_up_to_a_version() -> None:
    t = table()
    t.lookup(torch.tensor([1, 2, 3]))
    t.evict(torch.tensor([1]))
    v = t.version
    t.evict(torch.tensor([2]))
    assert t.forget_evictions(v) == 1
    from safetensors.torch import load

    assert load(t.export_delta(0))["evicted"].tolist() == [2]


def test_delta_for_another_table_fails() -> None:
    delta = table().export_delta(0)
    with pytest.raises(ConfigError, match="delta is for table"):
        DynamicEmbedding(EmbeddingTableConfig(name="u", dim=4)).apply_delta(delta)
    with pytest.raises(IntegrityError):
        table().apply_delta(b"not a delta")


def test_load_state_of_another_table_fails() -> None:
    tensors, meta = table().state()
    with pytest.raises(ConfigError, match="dim"):
        DynamicEmbedding(EmbeddingTableConfig(name="t", dim=5)).load_state(tensors, meta)


def test_memory_accounting() -> None:
    t = table(dim=16, optimizer="rowwise_adagrad")
    t.lookup(torch.arange(100))
    per_row = t.bytes_per_row()
    assert per_row["device"] == 16 * 4 + 4
    assert per_row["host"] > 16  # metadata + index share
    report = t.memory_report()
    assert report["rows_in_use"] == 100
    assert report["weight_bytes"] == report["capacity_rows"] * 16 * 4
    assert report["total_bytes"] >= report["weight_bytes"] + report["optimizer_bytes"]
    adam = table(dim=16, optimizer="adam").bytes_per_row()["device"]
    assert adam == 16 * 4 * 3 + 8
