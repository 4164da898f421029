"""Fixtures: apps built on the REAL model directory of tests/conftest.py (`model_dir`, written
by the real trainer on a small simulated world, once per session).

No fake models: everything the server touches comes from `load_feed_model`.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from reelrec.serve import Settings, create_app
from reelrec.store.versions import ModelStore

ADMIN_TOKEN = "test-admin-token-0123456789abcdef"


@pytest.fixture
def store(model_dir: Path, tmp_path: Path) -> ModelStore:
    """A model store root holding the trained model as version 1."""
    s = ModelStore(tmp_path / "store")
    s.publish_dir(model_dir)
    return s


def make_settings(model: Path, tmp: Path, **overrides: Any) -> Settings:
    base: dict[str, Any] = {"model": model, "events_db": tmp / "events.sqlite", "watch": False}
    base.update(overrides)
    return Settings(**base)


@contextlib.contextmanager
def running_client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(scope="module")
def module_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("serve")


@pytest.fixture(scope="module")
def client(model_dir: Path, module_tmp: Path) -> Iterator[TestClient]:
    """One app per test module on the trained model dir (admin enabled)."""
    with running_client(make_settings(model_dir, module_tmp, admin_token=ADMIN_TOKEN)) as c:
        yield c


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def live_server(app: FastAPI) -> Iterator[str]:
    """Run `app` on real uvicorn in a thread (127.0.0.1, free port); yields the base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def wait_for(predicate: Any, timeout_s: float = 30.0, what: str = "condition") -> None:
    """Poll `predicate` until true; fail with `what` after `timeout_s` (no blind sleeps)."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.02)
