"""Hot swap on a real uvicorn server: the watcher swaps in new versions while clients hammer
/v1/feed (none fail), and refuses a corrupted version (the old one keeps serving)."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import httpx

from reelrec.serve import create_app
from reelrec.serve.swap import ModelHolder
from reelrec.store.versions import ModelStore
from tests.serve.conftest import live_server, make_settings, wait_for
from tests.serve.test_admin import _corrupt


def _version(base: str) -> int | None:
    return httpx.get(f"{base}/readyz").json()["model_version"]  # type: ignore[no-any-return]


def test_hot_swap_under_concurrent_requests(
    store: ModelStore, model_dir: Path, tmp_path: Path
) -> None:
    settings = make_settings(store.root, tmp_path, watch=True, poll_interval_s=0.05)
    app = create_app(settings)
    stop = threading.Event()
    statuses: Counter[int] = Counter()
    versions: Counter[int] = Counter()
    errors: list[str] = []
    lock = threading.Lock()

    def hammer(worker: int) -> None:
        with httpx.Client(base_url=base, timeout=30) as http:
            i = 0
            while not stop.is_set():
                try:
                    r = http.get("/v1/feed", params={"user_id": worker * 1000 + i % 50, "n": 10})
                    with lock:
                        statuses[r.status_code] += 1
                        if r.status_code == 200:
                            versions[r.json()["model_version"]] += 1
                except httpx.HTTPError as e:  # a dropped connection is a failure too
                    with lock:
                        errors.append(repr(e))
                i += 1

    with live_server(app) as base:
        assert _version(base) == 1
        threads = [threading.Thread(target=hammer, args=(w,)) for w in range(4)]
        for t in threads:
            t.start()
        try:
            wait_for(lambda: sum(statuses.values()) >= 20, what="requests on v1")
            for expected in (2, 3):
                store.publish_dir(model_dir)
                wait_for(lambda e=expected: _version(base) == e, what=f"swap to v{expected}")  # type: ignore[misc]
                seen = sum(statuses.values())
                wait_for(
                    lambda s=seen: sum(statuses.values()) >= s + 20, what="requests after swap"
                )  # type: ignore[misc]
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=60)
        metrics = httpx.get(f"{base}/metrics").text

    assert errors == []
    assert set(statuses) == {200}, statuses
    assert {1, 2, 3} <= set(versions), versions
    assert "reelrec_model_swaps_total 2.0" in metrics


def test_watcher_refuses_corrupted_version(
    store: ModelStore, model_dir: Path, tmp_path: Path
) -> None:
    settings = make_settings(store.root, tmp_path, watch=True, poll_interval_s=0.05)
    app = create_app(settings)
    holder: ModelHolder = app.state.runtime.holder
    # Build the corrupted version beside the store, then move it in whole, so the watcher can
    # only ever see it corrupted (as after a bad disk or a partial copy by hand).
    side = ModelStore(tmp_path / "side")
    side.publish_dir(model_dir)
    side.publish_dir(model_dir)
    _corrupt(side.path(2))
    with live_server(app) as base:
        assert _version(base) == 1
        side.path(2).rename(store.path(2))
        wait_for(
            lambda: (
                'swap_failures_total{reason="IntegrityError"} 1.0'
                in httpx.get(f"{base}/metrics").text
            ),
            what="the refusal to be counted",
        )
        assert _version(base) == 1
        r = httpx.get(f"{base}/v1/feed", params={"user_id": 1, "n": 5})
        assert r.status_code == 200 and r.json()["model_version"] == 1
        # A good version after the bad one is taken.
        store.publish_dir(model_dir)
        wait_for(lambda: _version(base) == 3, what="swap to v3")
        assert holder.current is not None and holder.current.version == 3
