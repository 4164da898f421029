"""`run_server` / `reelrec serve` refuse bad --model paths before binding a port."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from reelrec.cli import app as cli
from reelrec.errors import ConfigError, IntegrityError
from reelrec.serve import run_server
from reelrec.store.manifest import write_model_dir


def test_missing_model_dir_fails(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such directory"):
        run_server(model=tmp_path / "nope", events_db=tmp_path / "e.sqlite")


def test_corrupted_model_dir_fails(tmp_path: Path) -> None:
    write_model_dir(tmp_path / "m", {"w.safetensors": b"abc"}, kind="feed", config={})
    (tmp_path / "m" / "w.safetensors").write_bytes(b"xyz")
    with pytest.raises(IntegrityError, match="sha256"):
        run_server(model=tmp_path / "m", events_db=tmp_path / "e.sqlite")


def test_bad_workers_fails(tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()
    with pytest.raises(ConfigError, match="workers"):
        run_server(model=tmp_path / "store", workers=0, events_db=tmp_path / "e.sqlite")


def test_cli_serve_missing_model_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["serve", "--model", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "no such directory" in result.output
