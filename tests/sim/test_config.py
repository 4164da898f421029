from __future__ import annotations

import pytest

from reelrec.errors import ConfigError
from reelrec.sim import SimConfig


def test_defaults_are_the_demo_world() -> None:
    cfg = SimConfig()
    assert (cfg.users, cfg.videos, cfg.days) == (2000, 5000, 7)
    assert cfg.end_ms == cfg.start_ms + 7 * 86_400_000
    assert cfg.horizon_days == cfg.days + cfg.live_days


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("users", 0),
        ("videos", -5),
        ("days", 1.5),
        ("seed", -1),
        ("topics", True),
        ("uploads_per_day", -1),
        ("creators", 0),
        ("sessions_per_day", 0.0),
        ("activity_sigma", float("nan")),
        ("interest_drift", 1.5),
        ("hidden_fraction", 0.9),
        ("max_session_items", 0),
        ("log_mix", (1.0, -1.0, 0.0)),
        ("log_mix", (0.0, 0.0, 0.0)),
        ("log_mix", (1.0, 1.0)),
    ],
)
def test_bad_field_fails(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=field):
        SimConfig(**{field: value})  # type: ignore[arg-type]


def test_from_dict_round_trip() -> None:
    cfg = SimConfig(users=10, log_mix=(1.0, 0.0, 0.0))
    assert SimConfig.from_dict(cfg.to_dict()) == cfg
    d = cfg.to_dict()
    d["log_mix"] = list(cfg.log_mix)  # as JSON gives it back
    assert SimConfig.from_dict(d) == cfg


def test_from_dict_unknown_key_fails() -> None:
    with pytest.raises(ConfigError, match="nusers"):
        SimConfig.from_dict({"nusers": 3})
