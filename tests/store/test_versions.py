"""ModelStore: numbering, verification, publishing from a model dir, pins and retention."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from reelrec.errors import ConfigError, IntegrityError
from reelrec.store.manifest import read_manifest, write_model_dir
from reelrec.store.versions import ModelStore, is_model_dir, version_dir_name


def _publish(store: ModelStore, payload: bytes = b"w") -> int:
    return store.publish({"weights.bin": payload}, kind="ranker", config={"d": 1}).version


def test_versions_are_numbered_and_listed(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    assert store.versions() == [] and store.latest() is None
    assert [_publish(store, bytes([i])) for i in range(3)] == [1, 2, 3]
    assert store.versions() == [1, 2, 3]
    assert (tmp_path / "store" / "v00000002").is_dir()
    assert read_manifest(store.path(2)).parent == 1
    # Hidden temp folders and stray files are not versions.
    (tmp_path / "store" / ".v00000009.abc.tmp").mkdir()
    (tmp_path / "store" / "notes.txt").write_text("x")
    assert store.versions() == [1, 2, 3]


def test_latest_valid_skips_corrupted_versions(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    _publish(store, b"one")
    _publish(store, b"two")
    (store.path(2) / "weights.bin").write_bytes(b"tw0")  # same size, other bytes
    assert store.latest_valid() == (1, store.path(1))
    with pytest.raises(IntegrityError, match="sha256"):
        store.verify(2)
    assert store.latest_valid(newer_than=1) is None


def test_verify_fails_when_folder_and_manifest_disagree(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    write_model_dir(tmp_path / "v00000005", {"a": b"1"}, kind="ranker", config={}, version=4)
    with pytest.raises(IntegrityError, match="version 4"):
        store.verify(5)


def test_publish_dir_copies_a_verified_model_dir(tmp_path: Path) -> None:
    src = tmp_path / "model"
    write_model_dir(src, {"w.safetensors": b"abc"}, kind="feed", config={"x": 2}, version=7)
    assert is_model_dir(src) and not is_model_dir(tmp_path)
    store = ModelStore(tmp_path / "store")
    manifest = store.publish_dir(src)
    assert manifest.version == 1 and manifest.kind == "feed" and manifest.config == {"x": 2}
    assert manifest.extra["source_version"] == 7
    assert (store.path(1) / "w.safetensors").read_bytes() == b"abc"
    store.verify(1)


def test_publish_dir_of_corrupted_model_fails(tmp_path: Path) -> None:
    src = tmp_path / "model"
    write_model_dir(src, {"w.safetensors": b"abc"}, kind="feed", config={})
    (src / "w.safetensors").write_bytes(b"abd")
    store = ModelStore(tmp_path / "store")
    with pytest.raises(IntegrityError):
        store.publish_dir(src)
    assert store.versions() == []


def test_prune_keeps_newest_and_pinned(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    for i in range(5):
        _publish(store, bytes([i]))
    pin = store.pin(2)
    assert store.prune(keep=2) == [1, 3]
    assert store.versions() == [2, 4, 5]
    store.unpin(pin)
    assert store.prune(keep=2) == [2]
    assert store.versions() == [4, 5]


def test_publish_with_keep_prunes(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    for i in range(4):
        store.publish({"w": bytes([i])}, kind="ranker", config={}, keep=2)
    assert store.versions() == [3, 4]


def test_pins_of_dead_processes_are_ignored(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    _publish(store)
    _publish(store)
    code = f"from reelrec.store.versions import ModelStore; ModelStore({str(tmp_path)!r}).pin(1)"
    subprocess.run([sys.executable, "-c", code], check=True)
    assert len(os.listdir(tmp_path / ".pins")) == 1
    assert store.pinned() == set()  # its process exited
    assert store.prune(keep=1) == [1]


def test_prune_keep_zero_fails(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="keep"):
        ModelStore(tmp_path).prune(keep=0)


def test_version_out_of_range_fails() -> None:
    with pytest.raises(ConfigError, match="out of range"):
        version_dir_name(0)


def test_concurrent_publishers_get_distinct_versions(tmp_path: Path) -> None:
    code = (
        "import sys; from reelrec.store.versions import ModelStore; "
        f"s = ModelStore({str(tmp_path)!r}); "
        "[s.publish({'w': bytes([i])}, kind='r', config={}) for i in range(5)]"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(3)]
    assert all(p.wait(timeout=60) == 0 for p in procs)
    store = ModelStore(tmp_path)
    assert store.versions() == list(range(1, 16))
    for v in store.versions():
        store.verify(v)
