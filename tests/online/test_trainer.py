"""Online trainer: progressive validation, publishing deltas, resume, both log backends,
compaction and chain-aware retention, corrupted versions, hot swap of deltas."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from reelrec.data.records import Event
from reelrec.errors import ConfigError, IntegrityError
from reelrec.models.api import UserContext
from reelrec.models.bundle import DELTA_KIND, FeedBundle, load_feed_model
from reelrec.online import OnlineConfig, parse_seconds, run_online
from reelrec.online.publish import prune_chains, resume
from reelrec.online.trainer import OnlineLearning, OnlineTrainer
from reelrec.serve.eventlog import EventLog
from reelrec.store.manifest import read_manifest
from reelrec.store.versions import ModelStore


def _config(model: Path, events: str, store: Path, **kw: object) -> OnlineConfig:
    base: dict[str, object] = dict(publish_every_s=1e-6, batch_size=128, partial_after_s=None,
                                   device="cpu", compact_every=3, keep=50)  # fmt: skip
    base.update(kw)
    return OnlineConfig(model=model, events=events, store=store, **base)  # type: ignore[arg-type]


@pytest.fixture
def sqlite_log(live_events: list[Event], tmp_path: Path) -> tuple[Path, int]:
    log = EventLog(tmp_path / "events.sqlite")
    log.append(live_events[:1000])
    return tmp_path / "events.sqlite", 1000


def test_online_publishes_deltas_the_server_chain_loads_exactly(
    model_dir: Path, sqlite_log: tuple[Path, int], tmp_path: Path
) -> None:
    path, n = sqlite_log
    summary = run_online(_config(model_dir, str(path), tmp_path / "store", until_offset=n))
    assert summary.learned == n and summary.offset == n
    store = ModelStore(tmp_path / "store")
    kinds = [read_manifest(store.path(v)).kind for v in store.versions()]
    assert DELTA_KIND in kinds and "reelrec-bundle" in kinds[1:]  # deltas and a compaction
    served = load_feed_model(store.path(store.versions()[-1]))
    trainer, _ = resume(store, torch.device("cpu"), {})
    table, twin = trainer.ranker.embeddings.tables["item"], served.ranker.embeddings.tables["item"]
    ids = table.ids()
    assert torch.equal(table.weights_of(ids), twin.weights_of(ids))
    assert np.array_equal(trainer.state.hist, served.state.hist)
    # The progressive metrics are real predictions: probabilities, one per event and task.
    assert set(summary.rolling) == set(served.builder.config_.tasks)


def test_online_model_differs_from_frozen_and_ranks(
    model_dir: Path, sqlite_log: tuple[Path, int], tmp_path: Path
) -> None:
    path, n = sqlite_log
    run_online(_config(model_dir, str(path), tmp_path / "store", until_offset=n))
    store = ModelStore(tmp_path / "store")
    online, frozen = load_feed_model(store.path(store.latest() or 0)), load_feed_model(model_dir)
    items = online.catalog.item_id[:50]
    user = UserContext(user_id=int(online.state.user_ids[0]), history=np.empty(0, np.int64),
                       now_ms=0)  # fmt: skip
    a, b = online.rank(user, items).score, frozen.rank(user, items).score
    assert a.shape == b.shape == (50,) and not np.allclose(a, b)


def test_sqlite_and_redis_backends_learn_the_same_model(
    model_dir: Path, live_events: list[Event], redis_url: str, tmp_path: Path
) -> None:
    from reelrec.online.log import open_source

    log = EventLog(tmp_path / "events.sqlite")
    log.append(live_events[:600])
    redis_log = open_source(f"{redis_url}?stream=t-same&group=g")
    last = redis_log.append(live_events[:600])
    assert last is not None
    run_online(_config(model_dir, str(tmp_path / "events.sqlite"), tmp_path / "a",
                       until_offset=600))  # fmt: skip
    run_online(_config(model_dir, f"{redis_url}?stream=t-same&group=g", tmp_path / "b",
                       until_offset=last[1]))  # fmt: skip
    a, _ = resume(ModelStore(tmp_path / "a"), torch.device("cpu"), {})
    b, _ = resume(ModelStore(tmp_path / "b"), torch.device("cpu"), {})
    assert a.learned == b.learned == 600
    fa, fb = a.checkpoint_files(), b.checkpoint_files()
    assert fa["trainer.optim.safetensors"] == fb["trainer.optim.safetensors"]
    assert fa["trainer.state.safetensors"] == fb["trainer.state.safetensors"]
    assert redis_log.pending() == 0  # type: ignore[union-attr]  (all acknowledged)


def test_corrupted_latest_version_is_neither_served_nor_resumed(
    model_dir: Path, sqlite_log: tuple[Path, int], tmp_path: Path
) -> None:
    path, _ = sqlite_log
    run_online(_config(model_dir, str(path), tmp_path / "store", until_offset=512))
    store = ModelStore(tmp_path / "store")
    good = store.versions()[-2]
    latest = store.path(store.versions()[-1])
    victim = latest / "trainer.state.safetensors"
    victim.write_bytes(victim.read_bytes()[:-7] + b"garbage")
    assert store.latest_valid() == (good, store.path(good))
    trainer, lineage = resume(store, torch.device("cpu"), {})
    assert lineage.parent == good and trainer.offset < 512
    with pytest.raises(IntegrityError):
        load_feed_model(latest)


def test_retention_keeps_chains_of_kept_versions(
    model_dir: Path, sqlite_log: tuple[Path, int], tmp_path: Path
) -> None:
    path, n = sqlite_log
    run_online(_config(model_dir, str(path), tmp_path / "store", until_offset=n, compact_every=50))
    store = ModelStore(tmp_path / "store")
    before = store.versions()
    assert len(before) >= 5
    prune_chains(store, keep=2)
    # Every kept delta still loads: its chain down to version 1 (the only full one) survived.
    assert store.versions() == before
    load_feed_model(store.path(before[-1]))


def test_retention_deletes_what_no_kept_chain_needs(
    model_dir: Path, sqlite_log: tuple[Path, int], tmp_path: Path
) -> None:
    path, n = sqlite_log
    run_online(_config(model_dir, str(path), tmp_path / "store", until_offset=n, compact_every=3))
    store = ModelStore(tmp_path / "store")
    before = store.versions()
    full = [v for v in before if read_manifest(store.path(v)).kind != DELTA_KIND]
    pin = store.pin(before[0])  # a server still serves version 1
    deleted = prune_chains(store, keep=1)
    kept = store.versions()
    assert before[0] in kept and before[-1] in kept and deleted
    assert all(v < full[-1] for v in deleted)  # nothing from the newest full version on
    load_feed_model(store.path(kept[-1]))
    store.unpin(pin)


def test_hot_swap_applies_deltas_to_the_served_model(
    model_dir: Path, sqlite_log: tuple[Path, int], tmp_path: Path
) -> None:
    from reelrec.serve.metrics import ServerMetrics
    from reelrec.serve.pipeline import PipelineConfig
    from reelrec.serve.swap import ModelHolder

    path, _ = sqlite_log
    store = ModelStore(tmp_path / "store")
    run_online(_config(model_dir, str(path), tmp_path / "store", until_offset=256,
                       compact_every=100))  # fmt: skip
    holder = ModelHolder(tmp_path / "store", device=None, pipeline_cfg=PipelineConfig(),
                         metrics=ServerMetrics())  # fmt: skip
    assert holder.check_now().version == store.latest()
    first = holder.current
    assert first is not None
    run_online(_config(model_dir, str(path), tmp_path / "store", until_offset=640,
                       compact_every=100))  # fmt: skip
    result = holder.check_now()
    assert result.swapped and result.version == store.latest()
    served = holder.current
    assert served is not None and isinstance(served.pipeline.model, FeedBundle)
    assert first.pipeline.model.version < served.pipeline.model.version  # old one untouched
    fresh = load_feed_model(store.path(store.latest() or 0))
    table = fresh.ranker.embeddings.tables["user"]
    ids = table.ids()
    assert torch.equal(served.pipeline.model.ranker.embeddings.tables["user"].weights_of(ids),
                       table.weights_of(ids))  # fmt: skip


def test_parse_seconds() -> None:
    assert parse_seconds("2s") == 2.0 and parse_seconds("500ms") == 0.5
    assert parse_seconds("1m") == 60.0 and parse_seconds(3) == 3.0


@pytest.mark.parametrize("bad", ["soon", "0s", "-1"])
def test_parse_seconds_fails(bad: str) -> None:
    with pytest.raises(ConfigError, match="--publish-every"):
        parse_seconds(bad)


def test_online_config_bad_batch_size_fails(model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="batch_size"):
        _config(model_dir, "x", tmp_path, batch_size=0)


def _learn_once(
    model_dir: Path, events: list[Event], learning: OnlineLearning, tmp: Path
) -> OnlineTrainer:
    log = EventLog(tmp / "learn.sqlite")
    log.append(events)
    trainer = OnlineTrainer(load_feed_model(model_dir), learning=learning)
    trainer.learn(log.read(0, len(events)))
    return trainer


def _changed(trainer: OnlineTrainer, frozen: FeedBundle) -> dict[str, bool]:
    """Per embedding table, and for the dense layers: did learning change anything?"""
    out = {}
    for name, table in trainer.ranker.embeddings.tables.items():
        ids = table.ids()
        twin = frozen.ranker.embeddings.tables[name]
        known = twin.ids()
        common = np.intersect1d(ids, known)
        out[name] = not torch.equal(table.weights_of(common), twin.weights_of(common))
    dense = dict(frozen.ranker.named_parameters())
    out["dense"] = any(
        not torch.equal(p, dense[n])
        for n, p in trainer.ranker.named_parameters()
        if not n.startswith("embeddings.")
    )
    return out


def test_default_online_learning_updates_the_item_side_only(
    model_dir: Path, live_events: list[Event], tmp_path: Path
) -> None:
    trainer = _learn_once(model_dir, live_events[:400], OnlineLearning(), tmp_path)
    changed = _changed(trainer, load_feed_model(model_dir))
    assert changed["wide_item"] and changed["tag"]
    held = {k for k in changed if k not in ("wide_item", "tag")}
    assert held >= {"item", "user", "wide_user", "author", "fields", "dense"}
    assert not any(changed[k] for k in held), {k: changed[k] for k in held}


def _bias_step(trainer: OnlineTrainer, frozen: FeedBundle) -> float:
    """How far the learning moved the wide_item rows the frozen model knows."""
    table, twin = trainer.ranker.embeddings.tables["wide_item"], frozen.ranker.embeddings.tables["wide_item"]  # fmt: skip
    common = np.intersect1d(table.ids(), twin.ids())
    return float((table.weights_of(common) - twin.weights_of(common)).norm())


def test_lr_scale_multiplies_a_tables_online_rate_only(
    model_dir: Path, live_events: list[Event], tmp_path: Path
) -> None:
    frozen = load_feed_model(model_dir)
    plain = _learn_once(
        model_dir, live_events[:100], OnlineLearning.parse("wide_item", 0.0), tmp_path / "a"
    )
    scaled = _learn_once(model_dir, live_events[:100], OnlineLearning.parse("wide_item=3", 0.0), tmp_path / "b")  # fmt: skip
    # one batch from the same accumulators: the row-wise Adagrad step is 3 times as long
    assert _bias_step(scaled, frozen) == pytest.approx(3 * _bias_step(plain, frozen), rel=1e-4)
    # the model's table configs, which every published version saves, keep the trained rate
    saved = {t.name: t.lr for t in scaled.bundle.tables}
    assert saved["wide_item"] == frozen.ranker.embeddings.tables["wide_item"].config.lr


def test_dense_lr_and_more_tables_learn_when_asked(
    model_dir: Path, live_events: list[Event], tmp_path: Path
) -> None:
    learning = OnlineLearning.parse("item,author,fields", dense_lr=1e-3)
    changed = _changed(
        _learn_once(model_dir, live_events[:400], learning, tmp_path), load_feed_model(model_dir)
    )
    assert changed["item"] and changed["author"] and changed["fields"] and changed["dense"]
    assert not changed["wide_item"] and not changed["user"]


def test_trending_updates_reach_the_bundles_current_retriever(
    model_dir: Path, live_events: list[Event], tmp_path: Path
) -> None:
    """A catalog refresh swaps the bundle's retrievers for new objects (the demo's live act
    does); the trainer must update those, not the ones it started with."""
    log = EventLog(tmp_path / "learn.sqlite")
    log.append(live_events[:300])
    trainer = OnlineTrainer(load_feed_model(model_dir), learning=OnlineLearning.parse("none", 0.0))
    trainer.learn(log.read(0, 100))
    bundle, old = trainer.bundle, trainer.trending
    bundle.retrievers = [type(r).from_state(*r.state(), bundle.catalog.table) for r in bundle.retrievers]  # fmt: skip
    trending = trainer.trending
    assert old is not None and trending is not None and trending is not old
    old_scores, before = old.scores_.copy(), trending.scores_.copy()
    trainer.learn(log.read(100, 200))
    assert not np.array_equal(trending.scores_, before)
    assert np.array_equal(old.scores_, old_scores)


def test_videos_counters_follow_the_stream_only_when_asked(
    model_dir: Path, live_events: list[Event], tmp_path: Path
) -> None:
    model = load_feed_model(model_dir).state
    held = _learn_once(model_dir, live_events[:300], OnlineLearning(), tmp_path / "a").state
    live_learning = OnlineLearning(live_item_counters=True)
    live = _learn_once(model_dir, live_events[:300], live_learning, tmp_path / "b").state
    known = np.searchsorted(held.item_ids, model.item_ids)
    np.testing.assert_array_equal(held.item_n[known], model.item_n)
    assert live.item_n[np.searchsorted(live.item_ids, model.item_ids)].sum() > model.item_n.sum()
    assert not np.array_equal(held.hist, model.hist) or held.hist.shape != model.hist.shape


def test_learning_nothing_still_predicts_and_advances(
    model_dir: Path, live_events: list[Event], tmp_path: Path
) -> None:
    trainer = _learn_once(model_dir, live_events[:200], OnlineLearning.parse("none", 0.0), tmp_path)
    assert trainer.learned == 200 and trainer.metrics.seen == 200
    assert not any(_changed(trainer, load_feed_model(model_dir)).values())


def test_online_learning_refuses_unknown_tables_and_negative_rates(model_dir: Path) -> None:
    with pytest.raises(ConfigError, match="itme"):
        OnlineTrainer(load_feed_model(model_dir), learning=OnlineLearning(("itme",)))
    with pytest.raises(ConfigError, match="dense_lr"):
        OnlineLearning(dense_lr=-1.0)
    with pytest.raises(ConfigError, match="TABLE=SCALE"):
        OnlineLearning.parse("wide_item=fast", 0.0)
    with pytest.raises(ConfigError, match="scales"):
        OnlineLearning.parse("wide_item=0", 0.0)


def _wide_item_column_changed(trainer: OnlineTrainer, frozen: FeedBundle, task: str) -> bool:
    column = trainer.ranker.config.tasks.index(task)
    table, twin = (
        trainer.ranker.embeddings.tables["wide_item"],
        frozen.ranker.embeddings.tables["wide_item"],
    )
    common = np.intersect1d(table.ids(), twin.ids())
    return not torch.equal(table.weights_of(common)[:, column], twin.weights_of(common)[:, column])


def test_online_task_weights_scale_each_tasks_learning(
    model_dir: Path, live_events: list[Event], tmp_path: Path
) -> None:
    """A task weighted 0 online leaves its bias column alone; the default weights it 3."""
    frozen = load_feed_model(model_dir)
    held = OnlineLearning.parse("wide_item", 0.0, "is_like=0")
    trainer = _learn_once(model_dir, live_events[:400], held, tmp_path / "held")
    assert not _wide_item_column_changed(trainer, frozen, "is_like")
    assert _wide_item_column_changed(trainer, frozen, "long_view")
    default = OnlineLearning.parse("wide_item", 0.0)
    assert default.task_weights == {"is_like": 3.0, "is_follow": 3.0}
    trainer = _learn_once(model_dir, live_events[:400], default, tmp_path / "default")
    assert _wide_item_column_changed(trainer, frozen, "is_like")


def test_online_task_weights_parse_and_refuse_bad_values(model_dir: Path) -> None:
    assert OnlineLearning.parse("item", 0.0, "none").task_weights == {}
    assert OnlineLearning.parse("item", 0.0, "is_like=2, is_click=0.5").task_weights == {
        "is_like": 2.0, "is_click": 0.5,
    }  # fmt: skip
    with pytest.raises(ConfigError, match="TASK=WEIGHT"):
        OnlineLearning.parse("item", 0.0, "is_like=lots")
    with pytest.raises(ConfigError, match=">= 0"):
        OnlineLearning.parse("item", 0.0, "is_like=-1")
    with pytest.raises(ConfigError, match="is_lkie"):
        OnlineTrainer(
            load_feed_model(model_dir), learning=OnlineLearning.parse("item", 0.0, "is_lkie=3")
        )
