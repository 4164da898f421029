"""Model directories: `manifest.json` + files (safetensors weights, Parquet tables, JSON).

A model directory is written into a hidden temp folder, each file fsync'd, the manifest
written last, then renamed into place: a reader never sees a half-written version. Loading
verifies every file's size and sha256 against the manifest before anything is used.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from reelrec.errors import IntegrityError
from reelrec.store.atomic import atomic_write_json, fsync_dir, sha256_file

FORMAT = "reelrec-model/1"
MANIFEST = "manifest.json"


class FileEntry(BaseModel):
    name: str
    sha256: str
    bytes: int


class Manifest(BaseModel):
    format: str = FORMAT
    version: int
    parent: int | None = None
    created: float
    kind: str  # what the directory holds, e.g. "ranker", "delta"
    config: dict[str, Any]
    files: list[FileEntry]
    extra: dict[str, Any] = {}

    def file(self, name: str) -> FileEntry:
        for f in self.files:
            if f.name == name:
                return f
        raise KeyError(name)


def write_model_dir(
    path: Path,
    files: dict[str, bytes],
    *,
    kind: str,
    config: dict[str, Any],
    version: int = 1,
    parent: int | None = None,
    extra: dict[str, Any] | None = None,
) -> Manifest:
    """Atomically create (or replace) `path` holding `files` and a manifest naming them."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes 0700; a server running as another user must read it
    try:
        entries = []
        for name, data in files.items():
            if "/" in name or name.startswith(".") or name == MANIFEST:
                raise ValueError(f"bad file name in model directory: {name!r}")
            target = tmp / name
            with open(target, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            entries.append(FileEntry(name=name, sha256=sha256_file(target), bytes=len(data)))
        manifest = Manifest(
            version=version,
            parent=parent,
            created=time.time(),
            kind=kind,
            config=config,
            files=entries,
            extra=extra or {},
        )
        atomic_write_json(manifest.model_dump(), tmp / MANIFEST)
        if path.exists():
            old = path.with_name(f".{path.name}.old.{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
        fsync_dir(path.parent)
        return manifest
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_manifest(path: Path, verify: bool = True) -> Manifest:
    """Read and (by default) verify a model directory; raise IntegrityError on any mismatch."""
    path = Path(path)
    mpath = path / MANIFEST
    if not mpath.is_file():
        raise IntegrityError(f"{path}: not a model directory (no {MANIFEST})")
    try:
        manifest = Manifest.model_validate(json.loads(mpath.read_text()))
    except (json.JSONDecodeError, ValidationError, UnicodeDecodeError) as e:
        raise IntegrityError(f"{mpath}: unreadable manifest ({e.__class__.__name__}: {e})") from e
    if manifest.format != FORMAT:
        raise IntegrityError(f"{mpath}: format {manifest.format!r}, expected {FORMAT!r}")
    if verify:
        for entry in manifest.files:
            f = path / entry.name
            if not f.is_file():
                raise IntegrityError(f"{path}: file {entry.name} listed in the manifest is missing")
            size = f.stat().st_size
            if size != entry.bytes:
                raise IntegrityError(
                    f"{f}: {size} bytes, manifest says {entry.bytes} (truncated or replaced)"
                )
            if sha256_file(f) != entry.sha256:
                raise IntegrityError(f"{f}: sha256 does not match the manifest (corrupted)")
    return manifest


def read_file(path: Path, manifest: Manifest, name: str) -> bytes:
    """Read one listed file, checking it against the manifest again (it may have changed)."""
    import hashlib

    data = (Path(path) / name).read_bytes()
    if hashlib.sha256(data).hexdigest() != manifest.file(name).sha256:
        raise IntegrityError(f"{Path(path) / name}: sha256 does not match the manifest")
    return data
