"""Bad query input on GET /v1/feed: always 4xx with the field named, never 5xx."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "user_id"),
        ({"user_id": "abc"}, "user_id"),
        ({"user_id": "1.5"}, "user_id"),
        ({"user_id": "-1"}, "user_id"),
        ({"user_id": str(2**63)}, "user_id"),
        ({"user_id": "1e3"}, "user_id"),
        ({"user_id": 1, "n": 0}, "n"),
        ({"user_id": 1, "n": 201}, "n"),
        ({"user_id": 1, "n": "ten"}, "n"),
        ({"user_id": 1, "debug": "maybe"}, "debug"),
        ({"user_id": 1, "tab": -1}, "tab"),
        ({"user_id": 1, "num": 50}, "num"),
    ],
)
def test_bad_feed_query_fails(client: TestClient, params: dict[str, object], field: str) -> None:
    r = client.get("/v1/feed", params=params)
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["detail"][0]["field"] == field
    assert body["message"].startswith(f"{field}: ")


def test_unknown_route_is_404(client: TestClient) -> None:
    r = client.get("/v1/nope")
    assert r.status_code == 404 and r.json()["message"]


def test_wrong_method_is_405(client: TestClient) -> None:
    assert client.delete("/v1/feed").status_code == 405


def test_path_like_input_is_just_a_bad_id(client: TestClient) -> None:
    r = client.get("/v1/feed", params={"user_id": "../../etc/passwd"})
    assert r.status_code == 422
    assert client.get("/static/../settings.py").status_code == 404


def test_server_binds_localhost_by_default() -> None:
    import inspect

    from reelrec.serve import run_server

    assert inspect.signature(run_server).parameters["host"].default == "127.0.0.1"
