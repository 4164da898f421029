"""`ModelStore`: numbered model versions under one root folder, for publishers and servers.

Layout::

    root/
      v00000001/          a model directory (manifest.json + files), see `write_model_dir`
      v00000002/
      .lock               held (flock) while a version number is chosen and written
      .pins/              one empty file per (version, process) that is using a version

A version becomes visible only when `write_model_dir` renames its finished temp folder into
place, so a reader never sees half a version. Whether it is *valid* (every file present with
the sha256 its manifest names) is checked by `verify` / `latest_valid`. Retention (`prune`)
keeps the newest `keep` versions and never deletes a version some live process has pinned:
a feed server pins the version it serves, and the pin is ignored once its process is gone.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reelrec.errors import ConfigError, IntegrityError
from reelrec.store.atomic import fsync_dir
from reelrec.store.manifest import MANIFEST, Manifest, read_file, read_manifest, write_model_dir

log = logging.getLogger(__name__)

_VERSION_DIR = re.compile(r"^v(\d{8})$")
_PIN = re.compile(r"^v(\d{8})\.(\d+)\.[0-9a-f]+$")


def version_dir_name(version: int) -> str:
    if not 0 < version < 10**8:
        raise ConfigError(f"model version {version} is out of range 1..99999999")
    return f"v{version:08d}"


def is_model_dir(path: Path) -> bool:
    """True when `path` is one model directory (it holds a manifest), not a store root."""
    return (Path(path) / MANIFEST).is_file()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


@dataclass(frozen=True)
class Pin:
    """A marker that this process uses `version`; release it with `ModelStore.unpin`."""

    version: int
    path: Path


class ModelStore:
    """Versioned model directories under `root` (created on first publish).

    Example::

        store = ModelStore(Path("models"))
        m = store.publish_dir(Path("runs/model"))   # -> root/v00000001
        version, path = store.latest_valid()
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # ----------------------------------------------------------------- reading
    def path(self, version: int) -> Path:
        return self.root / version_dir_name(version)

    def versions(self) -> list[int]:
        """Version numbers present (finished renames only), ascending."""
        if not self.root.is_dir():
            return []
        found = []
        for entry in os.scandir(self.root):
            match = _VERSION_DIR.match(entry.name)
            if match and entry.is_dir():
                found.append(int(match.group(1)))
        return sorted(found)

    def latest(self) -> int | None:
        versions = self.versions()
        return versions[-1] if versions else None

    def verify(self, version: int) -> Manifest:
        """Read and verify one version (sha256 of every file); IntegrityError if it fails."""
        manifest = read_manifest(self.path(version), verify=True)
        if manifest.version != version:
            raise IntegrityError(
                f"{self.path(version)}: manifest says version {manifest.version}, "
                f"folder says {version}"
            )
        return manifest

    def latest_valid(self, newer_than: int = 0) -> tuple[int, Path] | None:
        """The newest version > `newer_than` that verifies, or None. Broken ones are logged."""
        for version in reversed(self.versions()):
            if version <= newer_than:
                return None
            try:
                self.verify(version)
            except IntegrityError as e:
                log.warning("model store: skipping version %d: %s", version, e)
                continue
            return version, self.path(version)
        return None

    # ----------------------------------------------------------------- writing
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a+") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def publish(
        self,
        files: dict[str, bytes],
        *,
        kind: str,
        config: dict[str, Any],
        parent: int | None = None,
        extra: dict[str, Any] | None = None,
        keep: int | None = None,
    ) -> Manifest:
        """Write `files` as the next version (atomically); optionally prune to `keep` after.

        The version number is chosen under an exclusive file lock, so concurrent publishers
        (trainer processes) never collide.
        """
        with self._locked():
            version = (self.latest() or 0) + 1
            manifest = write_model_dir(
                self.path(version),
                files,
                kind=kind,
                config=config,
                version=version,
                parent=parent if parent is not None else (version - 1 or None),
                extra=extra,
            )
        log.info("model store: published version %d in %s", version, self.root)
        if keep is not None:
            self.prune(keep)
        return manifest

    def publish_dir(self, model_dir: Path, keep: int | None = None) -> Manifest:
        """Copy a verified model directory (e.g. `reelrec train --out`) in as the next version.

        Every file is checked against its manifest while it is read, so a corrupted source is
        refused (IntegrityError) instead of being republished under a fresh, valid manifest.
        """
        source = read_manifest(model_dir, verify=True)
        files = {e.name: read_file(model_dir, source, e.name) for e in source.files}
        extra = dict(source.extra)
        extra["source_version"] = source.version
        return self.publish(files, kind=source.kind, config=source.config, extra=extra, keep=keep)

    # --------------------------------------------------------------- retention
    def pin(self, version: int) -> Pin:
        """Mark `version` as in use by this process (retention will not delete it)."""
        pins = self.root / ".pins"
        pins.mkdir(parents=True, exist_ok=True)
        path = pins / f"{version_dir_name(version)}.{os.getpid()}.{uuid.uuid4().hex[:12]}"
        path.touch()
        return Pin(version=version, path=path)

    def unpin(self, pin: Pin) -> None:
        with contextlib.suppress(FileNotFoundError):
            pin.path.unlink()

    def pinned(self) -> set[int]:
        """Versions pinned by live processes; pins of dead processes are removed."""
        pins = self.root / ".pins"
        if not pins.is_dir():
            return set()
        live: set[int] = set()
        for entry in os.scandir(pins):
            match = _PIN.match(entry.name)
            if match is None:
                continue
            if _pid_alive(int(match.group(2))):
                live.add(int(match.group(1)))
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
        return live

    def prune(self, keep: int) -> list[int]:
        """Delete all but the newest `keep` versions, sparing pinned ones. Returns deleted."""
        if keep < 1:
            raise ConfigError(f"keep={keep}: retention must keep at least 1 version")
        with self._locked():
            versions = self.versions()
            spared = set(versions[-keep:]) | self.pinned()
            deleted = [v for v in versions if v not in spared]
            for version in deleted:
                # Rename first so a reader never sees a half-deleted version folder.
                doomed = self.root / f".{version_dir_name(version)}.deleting.{uuid.uuid4().hex}"
                os.replace(self.path(version), doomed)
                shutil.rmtree(doomed, ignore_errors=True)
            if deleted:
                fsync_dir(self.root)
        return deleted
