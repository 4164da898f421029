"""Several workers, one event log: each worker's user state follows every worker's events.

In-process: two apps on one SQLite log stand for two workers. Then the real thing: `reelrec
serve --workers 2` in a subprocess, where a keep-alive connection pins a client to one worker
and the per-worker Prometheus counters say which one.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient

from tests.serve.conftest import free_port, make_settings, running_client, wait_for

USER = 555_000_111


def _now_ms() -> int:
    return int(time.time() * 1000)


def _feed(client: Any, user: int, n: int = 100) -> dict[str, Any]:
    r = client.get("/v1/feed", params={"user_id": user, "n": n})
    assert r.status_code == 200, r.text
    return dict(r.json())


def _long_view(client: Any, user: int, item: int) -> None:
    event = {"user_id": user, "item_id": item, "timestamp_ms": _now_ms(), "long_view": 1}
    r = client.post("/v1/events", json={"events": [event]})
    assert r.status_code == 200 and r.json()["accepted"] == 1, r.text


def _history(client: TestClient, user: int) -> list[int]:
    snapshot = client.app.state.runtime.users.snapshot(user, _now_ms())  # type: ignore[attr-defined]
    return list(snapshot.history.tolist())


def test_a_worker_sees_another_workers_events(model_dir: Path, tmp_path: Path) -> None:
    settings = make_settings(model_dir, tmp_path, follow_log=True)
    with running_client(settings) as a, running_client(settings) as b:
        item = _feed(a, USER + 1, n=5)["items"][0]
        _long_view(a, USER, item["item_id"])
        page = _feed(b, USER)
        assert page["cold_start"] is False  # b knows the user's history from a's event
        assert item["item_id"] not in {it["item_id"] for it in page["items"]}  # and it is seen
        assert _history(a, USER) == _history(b, USER) == [item["item_id"]]  # applied once each


def test_a_worker_that_starts_late_applies_the_events_since_launch(
    model_dir: Path, tmp_path: Path
) -> None:
    """Workers come up one by one: events a first worker took before another started count."""
    settings = make_settings(model_dir, tmp_path, follow_log=True, follow_from=0)
    with running_client(settings) as a:
        item = _feed(a, USER + 6, n=5)["items"][0]["item_id"]
        _long_view(a, USER, item)
        with running_client(settings) as late:
            assert _feed(late, USER)["cold_start"] is False
            assert _history(late, USER) == [item]


def test_a_block_or_hate_on_one_worker_holds_on_the_other(model_dir: Path, tmp_path: Path) -> None:
    settings = make_settings(model_dir, tmp_path, follow_log=True)
    with running_client(settings) as a, running_client(settings) as b:
        first, second = _feed(a, USER + 2, n=40)["items"][:2]
        assert a.post(
            "/v1/blocks", json={"user_id": USER, "author_id": first["author_id"]}
        ).is_success
        hate = {
            "user_id": USER,
            "item_id": second["item_id"],
            "timestamp_ms": _now_ms(),
            "is_hate": 1,
        }
        assert a.post("/v1/events", json={"events": [hate]}).is_success
        authors = {it["author_id"] for it in _feed(b, USER)["items"]}
        assert first["author_id"] not in authors and second["author_id"] not in authors


def test_without_follow_log_workers_do_not_share(model_dir: Path, tmp_path: Path) -> None:
    """The problem `follow_log` solves (one process per worker, state in memory)."""
    settings = make_settings(model_dir, tmp_path)
    with running_client(settings) as a, running_client(settings) as b:
        _long_view(a, USER, _feed(a, USER + 3, n=5)["items"][0]["item_id"])
        assert _feed(b, USER)["cold_start"] is True


def test_blocks_outlive_a_restart(model_dir: Path, tmp_path: Path) -> None:
    settings = make_settings(model_dir, tmp_path)
    with running_client(settings) as client:
        author = _feed(client, USER + 4, n=5)["items"][0]["author_id"]
        assert client.post("/v1/blocks", json={"user_id": USER, "author_id": author}).is_success
    with running_client(settings) as client:
        assert author not in {it["author_id"] for it in _feed(client, USER)["items"]}


def _accepted(client: httpx.Client) -> float:
    text = client.get("/metrics").text
    match = re.search(r"^reelrec_events_accepted_total (\S+)$", text, re.MULTILINE)
    assert match, "no reelrec_events_accepted_total in /metrics"
    return float(match.group(1))


def test_serve_with_two_workers_shares_user_state(model_dir: Path, tmp_path: Path) -> None:
    port = free_port()
    cmd = [sys.executable, "-m", "reelrec.cli", "serve", "--model", str(model_dir),
           "--port", str(port), "--workers", "2", "--events-db", str(tmp_path / "e.sqlite")]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            try:
                return httpx.get(f"{base}/readyz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(ready, 120, "reelrec serve --workers 2 to be ready")
        with httpx.Client(base_url=base) as poster:
            item = _feed(poster, USER + 5, n=5)["items"][0]["item_id"]
            _long_view(poster, USER, item)
        # A fresh keep-alive connection stays on one worker; the one whose counter is 0 did
        # not take the POST. Connections spread over the workers, so one turns up quickly.
        other: httpx.Client | None = None
        deadline = time.monotonic() + 60
        while other is None and time.monotonic() < deadline:
            client = httpx.Client(base_url=base)
            if _accepted(client) == 0:
                other = client
            else:
                client.close()
        assert other is not None, "every connection reached the worker that took the POST"
        try:
            wait_for(lambda: other.get("/readyz").status_code == 200, 120, "the other worker")
            page = _feed(other, USER)
            assert page["cold_start"] is False
            assert item not in {it["item_id"] for it in page["items"]}
        finally:
            other.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
