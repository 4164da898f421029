"""POST /v1/events: durable append with offsets, per-event rejection, limits, bad input."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from reelrec.serve.eventlog import EventLog


def ev(**kw: Any) -> dict[str, Any]:
    base = {"user_id": 5, "item_id": 7, "timestamp_ms": int(time.time() * 1000)}
    base.update(kw)
    return base


def test_valid_events_are_appended_with_offsets(client: TestClient) -> None:
    log: EventLog = client.app.state.runtime.events  # type: ignore[attr-defined]
    before = log.last_offset()
    r = client.post("/v1/events", json={"events": [ev(item_id=1), ev(item_id=2, is_like=1)]})
    assert r.status_code == 200
    body = r.json()
    assert body == {
        "accepted": 2,
        "rejected": [],
        "first_offset": before + 1,
        "last_offset": before + 2,
    }
    # Durable before the response: a separate read-only connection sees both rows.
    reader = EventLog(log.path, readonly=True)
    batch = reader.read(after_offset=before)
    assert batch.offsets.tolist() == [before + 1, before + 2]
    assert batch.events.column("is_like").to_pylist() == [0, 1]


def test_invalid_events_are_rejected_by_index_and_dead_lettered(client: TestClient) -> None:
    log: EventLog = client.app.state.runtime.events  # type: ignore[attr-defined]
    events = [
        ev(),
        ev(user_id="5"),  # string id
        ev(item_id=1.5),  # float id
        ev(is_like=2),  # label out of range
        {"user_id": 1, "item_id": 2},  # timestamp missing
        ev(colour="red"),  # unknown field
        "not an object",
        ev(user_id=True),  # bool is not an integer id
        ev(user_id=2**63),  # beyond int64
        ev(watch_ms=-1),
    ]
    r = client.post("/v1/events", json={"events": events})
    assert r.status_code == 200
    body = r.json()
    assert body["accepted"] == 1
    rejected = {x["index"]: x for x in body["rejected"]}
    assert sorted(rejected) == list(range(1, 10))
    assert rejected[1]["field"] == "user_id" and rejected[1]["reason"] == "int_type"
    assert rejected[2]["field"] == "item_id"
    assert rejected[3]["field"] == "is_like" and "1" in rejected[3]["message"]
    assert rejected[4]["field"] == "timestamp_ms" and rejected[4]["reason"] == "missing"
    assert rejected[5]["field"] == "colour" and rejected[5]["reason"] == "extra_forbidden"
    assert rejected[6]["reason"] == "not_an_object" and rejected[6]["field"] is None
    assert rejected[7]["field"] == "user_id"
    assert rejected[8]["field"] == "user_id"
    assert rejected[9]["field"] == "watch_ms"
    assert all(x["message"].startswith(f"events[{i}]") for i, x in rejected.items())
    dead = log.dead_letters(limit=9)
    assert sorted(d["batch_index"] for d in dead) == list(range(1, 10))
    assert any(json.loads(d["payload"]) == "not an object" for d in dead)


def test_events_update_metrics(client: TestClient) -> None:
    client.post("/v1/events", json={"events": [ev(), ev(item_id="x")]})
    text = client.get("/metrics").text
    assert "reelrec_events_accepted_total" in text
    assert 'reelrec_events_rejected_total{reason="int_type"}' in text


def test_too_many_events_fails(client: TestClient) -> None:
    r = client.post("/v1/events", json={"events": [ev()] * 1001})
    assert r.status_code == 422
    assert r.json()["detail"][0]["field"] == "events"
    assert "1000" in r.json()["message"]


def test_exactly_1000_events_is_fine(client: TestClient) -> None:
    r = client.post("/v1/events", json={"events": [ev(item_id=i) for i in range(1000)]})
    assert r.status_code == 200 and r.json()["accepted"] == 1000


def test_empty_batch_fails(client: TestClient) -> None:
    r = client.post("/v1/events", json={"events": []})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "events"


def test_body_over_1mib_fails_with_413(client: TestClient) -> None:
    big = {"events": [ev(pad="x" * 2000) for _ in range(600)]}
    r = client.post("/v1/events", json=big)
    assert r.status_code == 413 and "1048576" in r.json()["message"]


def test_streamed_body_over_1mib_fails_with_413(client: TestClient) -> None:
    def chunks():  # type: ignore[no-untyped-def]
        yield b'{"events": ['
        for _ in range(2000):
            yield (json.dumps(ev(pad="y" * 600)) + ",").encode()
        yield b"{}]}"

    r = client.post("/v1/events", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", "body"),
        (b'{"evnts": []}', "events"),
        (b'{"events": {"user_id": 1}}', "events"),
        (b'{"events": [], "extra": 1}', "events"),
        (b"[]", "body"),
        (b"", "body"),
    ],
)
def test_malformed_body_fails_with_field(client: TestClient, body: bytes, field: str) -> None:
    r = client.post("/v1/events", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    fields = [d["field"] for d in r.json()["detail"]]
    assert any(f.startswith(field) for f in fields), fields
    assert r.json()["message"]


def test_wrong_content_type_fails(client: TestClient) -> None:
    r = client.post("/v1/events", content=b"user_id=1", headers={"content-type": "text/plain"})
    assert 400 <= r.status_code < 500 and r.json()["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"user_id": "1", "author_id": 2}, "user_id"),
        ({"user_id": 1}, "author_id"),
        ({"user_id": 1, "author_id": -2}, "author_id"),
        ({"user_id": 1.0, "author_id": 2}, "user_id"),
    ],
)
def test_bad_block_request_fails(client: TestClient, body: dict[str, Any], field: str) -> None:
    r = client.post("/v1/blocks", json=body)
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == field


def test_non_utf8_body_fails_with_422(client: TestClient) -> None:
    r = client.post(
        "/v1/events",
        content=b'\x11o\xff\x1f{"events"',
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "body"
