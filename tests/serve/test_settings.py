"""Settings: required paths, admin token rules, environment prefix."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from reelrec.serve.settings import Settings


def test_paths_are_required() -> None:
    with pytest.raises(ValidationError, match="model"):
        Settings(events_db=Path("x"))  # type: ignore[call-arg]


def test_admin_token_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REELREC_ADMIN_TOKEN", "a" * 32)
    s = Settings(model=Path("m"), events_db=Path("e"))
    assert s.admin_token is not None and s.admin_token.get_secret_value() == "a" * 32
    assert "a" * 32 not in repr(s)


def test_no_token_means_admin_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REELREC_ADMIN_TOKEN", raising=False)
    assert Settings(model=Path("m"), events_db=Path("e")).admin_token is None
    monkeypatch.setenv("REELREC_ADMIN_TOKEN", "")
    assert Settings(model=Path("m"), events_db=Path("e")).admin_token is None


@pytest.mark.parametrize("token", ["changeme", "short-token"])
def test_weak_admin_token_fails(token: str) -> None:
    with pytest.raises(ValidationError, match="REELREC_ADMIN_TOKEN"):
        Settings(model=Path("m"), events_db=Path("e"), admin_token=token)  # type: ignore[arg-type]


def test_unknown_setting_fails() -> None:
    with pytest.raises(ValidationError, match="colour"):
        Settings(model=Path("m"), events_db=Path("e"), colour=1)  # type: ignore[call-arg]
