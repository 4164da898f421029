"""POST /admin/reload: token rules, swapping in a new version, refusing a corrupted one."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from reelrec.store.versions import ModelStore
from tests.serve.conftest import ADMIN_TOKEN, make_settings, running_client

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def test_admin_disabled_without_token(model_dir: Path, tmp_path: Path) -> None:
    with running_client(make_settings(model_dir, tmp_path)) as c:
        r = c.post("/admin/reload", headers=AUTH)
        assert r.status_code == 404 and "REELREC_ADMIN_TOKEN" in r.json()["message"]


def test_admin_wrong_or_missing_token_fails(client: TestClient) -> None:
    assert client.post("/admin/reload").status_code == 401
    r = client.post("/admin/reload", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert client.post("/admin/reload", headers={"Authorization": ADMIN_TOKEN}).status_code == 401


def test_admin_reload_with_nothing_new(client: TestClient) -> None:
    r = client.post("/admin/reload", headers=AUTH)
    assert r.status_code == 200 and r.json()["swapped"] is False


def _corrupt(path: Path) -> None:
    target = max(
        (f for f in path.iterdir() if f.suffix == ".safetensors"), key=lambda f: f.stat().st_size
    )
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))


def test_reload_swaps_new_version_and_refuses_corrupted(
    store: ModelStore, model_dir: Path, tmp_path: Path
) -> None:
    settings = make_settings(store.root, tmp_path, admin_token=ADMIN_TOKEN)
    with running_client(settings) as c:
        assert c.get("/v1/feed", params={"user_id": 1}).json()["model_version"] == 1
        store.publish_dir(model_dir)
        r = c.post("/admin/reload", headers=AUTH)
        assert r.status_code == 200 and r.json() == {"swapped": True, "model_version": 2}
        assert c.get("/v1/feed", params={"user_id": 1}).json()["model_version"] == 2

        store.publish_dir(model_dir)
        _corrupt(store.path(3))
        r = c.post("/admin/reload", headers=AUTH)
        assert r.status_code == 409 and "IntegrityError" in r.json()["message"]
        assert c.get("/v1/feed", params={"user_id": 1}).json()["model_version"] == 2
        assert c.get("/readyz").json()["model_version"] == 2
        text = c.get("/metrics").text
        assert 'reelrec_model_swap_failures_total{reason="IntegrityError"} 1.0' in text
        assert "reelrec_model_swaps_total 1.0" in text
        # Refused once, not retried on every check.
        assert c.post("/admin/reload", headers=AUTH).json()["swapped"] is False
        # Retention never deletes the version being served.
        assert store.prune(keep=1) == [1]
        assert 2 in store.versions()
