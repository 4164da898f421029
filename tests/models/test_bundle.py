"""Model directories: what `load_feed_model` refuses, with a message that says what to do."""

from __future__ import annotations

from pathlib import Path

import pytest
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from reelrec.errors import IntegrityError
from reelrec.models import load_feed_model
from reelrec.store.manifest import read_manifest, write_model_dir


def test_a_model_from_an_older_reelrec_is_refused_with_a_clear_message(
    model_dir: Path, tmp_path: Path
) -> None:
    """A model written before the wide tables existed: same files, fewer tables."""
    manifest = read_manifest(model_dir)
    config = dict(manifest.config)
    config["tables"] = [t for t in config["tables"] if not t["name"].startswith("wide_")]
    files = {f.name: (model_dir / f.name).read_bytes() for f in manifest.files}
    old = tmp_path / "old"
    write_model_dir(old, files, kind=manifest.kind, config=config, version=manifest.version)
    with pytest.raises(IntegrityError, match=r"older reelrec .*wide_item.*reelrec train"):
        load_feed_model(old)


def test_a_model_without_the_users_sessions_is_refused(model_dir: Path, tmp_path: Path) -> None:
    """A model written before the session features: its state has no last event times."""
    manifest = read_manifest(model_dir)
    files = {f.name: (model_dir / f.name).read_bytes() for f in manifest.files}
    state = st_load(files["state.safetensors"])
    files["state.safetensors"] = st_save({k: v for k, v in state.items() if k != "last_ms"})
    old = tmp_path / "old"
    write_model_dir(old, files, kind=manifest.kind, config=manifest.config,
                    version=manifest.version)  # fmt: skip
    with pytest.raises(IntegrityError, match=r"older reelrec .*last_ms.*reelrec train"):
        load_feed_model(old)
