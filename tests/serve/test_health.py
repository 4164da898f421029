"""/healthz, /readyz, /metrics, and an app with no model yet."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from tests.serve.conftest import make_settings, running_client


def test_healthz(client: TestClient) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_readyz_with_model(client: TestClient, model_dir: Path) -> None:
    r = client.get("/readyz")
    assert r.status_code == 200
    assert r.json()["ready"] is True and r.json()["model_path"] == str(model_dir)


def test_metrics_after_feed(client: TestClient) -> None:
    client.get("/v1/feed", params={"user_id": 3, "n": 5})
    client.get("/v1/feed", params={"user_id": "x"})
    text = client.get("/metrics").text
    for stage in ("retrieve", "filter", "rank", "rerank", "total"):
        assert f'reelrec_feed_stage_seconds_bucket{{le="0.0005",stage="{stage}"}}' in text
    for stage in ("retrieved", "after_filter", "ranked", "returned"):
        assert f'reelrec_feed_candidates_count{{stage="{stage}"}}' in text
    assert 'reelrec_http_request_seconds_count{endpoint="/v1/feed",method="GET"}' in text
    assert 'reelrec_http_requests_total{endpoint="/v1/feed",method="GET",status="422"} 1.0' in text
    assert "reelrec_model_version " in text and "reelrec_model_version 0.0" not in text
    assert "reelrec_model_swaps_total 0.0" in text


def test_empty_store_is_not_ready_then_serves_503(tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()
    with running_client(make_settings(tmp_path / "store", tmp_path)) as c:
        r = c.get("/readyz")
        assert r.status_code == 503 and r.json()["ready"] is False
        r = c.get("/v1/feed", params={"user_id": 1})
        assert r.status_code == 503 and "no model" in r.json()["message"]
        # Events are still taken while no model is loaded.
        r = c.post("/v1/events", json={"events": [{"user_id": 1, "item_id": 2, "timestamp_ms": 3}]})
        assert r.status_code == 200 and r.json()["accepted"] == 1
        assert c.get("/healthz").status_code == 200


def test_requests_queued_too_long_are_shed_with_503(model_dir: Path, tmp_path: Path) -> None:
    # A 1 microsecond queue budget: every feed request has waited longer by the time its
    # handler thread runs, so each is refused fast instead of computed late.
    with running_client(make_settings(model_dir, tmp_path, max_queue_ms=0.001)) as c:
        r = c.get("/v1/feed", params={"user_id": 1})
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert r.json()["message"].startswith("overloaded: queued")
        assert "reelrec_feed_shed_total 1.0" in c.get("/metrics").text
        assert c.get("/healthz").status_code == 200  # only the feed sheds
