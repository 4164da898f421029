"""Model directories: what `load_feed_model` refuses, with a message that says what to do."""

from __future__ import annotations

from pathlib import Path

import pytest

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
