"""Model tests use the session's real model (tests/conftest.py), loaded once."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(scope="session")
def model(feed_model: Any) -> Any:
    return feed_model
