"""`SimConfig`: the size and behaviour of a simulated short-video world.

Defaults are the demo's world: 2,000 users, 5,000 videos at the start, 1,000 uploads a day,
7 logged days (about 400k events, simulated in a couple of seconds on one core).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from reelrec.errors import ConfigError

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
# 2024-03-04 00:00 UTC, a Monday: a fixed start keeps logs identical across runs and machines.
DEFAULT_START_MS = 1_709_510_400_000


@dataclass(frozen=True)
class SimConfig:
    """Parameters of the simulated world. Every field is validated in `__post_init__`.

    Sizes:
        users: simulated users.
        videos: videos in the catalog before the first logged day (uploaded in the 30 days
            before `start_ms`).
        days: logged days (`simulate_logs` covers [start_ms, start_ms + days)).
        live_days: extra days after the logs for the live environment (uploads, trends and
            interest drift are generated for days + live_days).
        creators: authors; None = max(20, videos // 20).
        uploads_per_day: new videos per day, spread over the day like user activity.
    Content:
        topics: number of topics (each video has a main and a secondary topic).
        subtags_per_topic: sub-tags per topic (each video carries its topic tag and 1-2).
        music: distinct music ids (Zipf-popular; 20% of videos have none).
        hidden_fraction: share of videos that are not visible (moderated / private).
        latent_dim: size of the hidden taste vectors behind the non-topic part of affinity.
    Behaviour:
        sessions_per_day: mean sessions per user per day (scaled by the user's activity).
        activity_sigma: log-normal sigma of user activity (1.0: the top 10% of users make
            about 40% of the events).
        interest_drift: share of a user's topic interest replaced each day.
        trends_per_day: mean number of topic trends starting per day.
        max_session_items: hard cap on items per session.
    Logging policy (the feed that produced the logs):
        log_mix: weights of (popular, random, personalised-by-topic) slots.
    """

    users: int = 2000
    videos: int = 5000
    days: int = 7
    seed: int = 0
    topics: int = 20
    subtags_per_topic: int = 8
    creators: int | None = None
    uploads_per_day: int = 1000
    live_days: int = 2
    sessions_per_day: float = 1.5
    activity_sigma: float = 1.0
    interest_drift: float = 0.05
    trends_per_day: float = 2.0
    music: int = 2000
    hidden_fraction: float = 0.02
    latent_dim: int = 8
    max_session_items: int = 200
    log_mix: tuple[float, float, float] = (0.4, 0.3, 0.3)
    start_ms: int = DEFAULT_START_MS

    def __post_init__(self) -> None:
        for name in ("users", "videos", "days", "topics", "subtags_per_topic", "music"):
            _check_int(name, getattr(self, name), lo=1)
        _check_int("seed", self.seed, lo=0)
        _check_int("latent_dim", self.latent_dim, lo=1)
        _check_int("uploads_per_day", self.uploads_per_day, lo=0)
        _check_int("live_days", self.live_days, lo=0)
        _check_int("max_session_items", self.max_session_items, lo=1)
        _check_int("start_ms", self.start_ms, lo=0)
        if self.creators is not None:
            _check_int("creators", self.creators, lo=1)
        _check_float("sessions_per_day", self.sessions_per_day, lo=0.0, lo_open=True)
        _check_float("activity_sigma", self.activity_sigma, lo=0.0, hi=3.0)
        _check_float("interest_drift", self.interest_drift, lo=0.0, hi=1.0)
        _check_float("trends_per_day", self.trends_per_day, lo=0.0, hi=100.0)
        _check_float("hidden_fraction", self.hidden_fraction, lo=0.0, hi=0.5)
        mix = self.log_mix
        if (
            not isinstance(mix, tuple | list)
            or len(mix) != 3
            or any(not _is_real(w) or w < 0 for w in mix)
            or sum(mix) <= 0
        ):
            raise ConfigError(
                f"log_mix: expected three non-negative weights (popular, random, personal) "
                f"with a positive sum, got {mix!r}"
            )

    @property
    def n_creators(self) -> int:
        return self.creators if self.creators is not None else max(20, self.videos // 20)

    @property
    def horizon_days(self) -> int:
        """Days the world is generated for: the logged days plus the live days."""
        return self.days + self.live_days

    @property
    def end_ms(self) -> int:
        """End of the logged period (exclusive); the live period starts here."""
        return self.start_ms + self.days * DAY_MS

    @property
    def horizon_end_ms(self) -> int:
        return self.start_ms + self.horizon_days * DAY_MS

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> SimConfig:
        """Strict: unknown keys are an error naming the key."""
        known = {f.name for f in fields(cls)}
        for key in d:
            if key not in known:
                raise ConfigError(f"{key}: unknown SimConfig field (known: {sorted(known)})")
        kw = dict(d)
        if "log_mix" in kw and isinstance(kw["log_mix"], list):
            kw["log_mix"] = tuple(kw["log_mix"])
        return cls(**kw)  # type: ignore[arg-type]


def _is_real(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _check_int(name: str, value: object, lo: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"{name}: expected an integer, got {value!r}")
    if value < lo:
        raise ConfigError(f"{name}: must be >= {lo}, got {value}")


def _check_float(
    name: str, value: object, lo: float, hi: float | None = None, lo_open: bool = False
) -> None:
    if not _is_real(value):
        raise ConfigError(f"{name}: expected a finite number, got {value!r}")
    v = float(value)  # type: ignore[arg-type]
    if v < lo or (lo_open and v == lo) or (hi is not None and v > hi):
        rng = f"{'(' if lo_open else '['}{lo}, {hi if hi is not None else 'inf'}]"
        raise ConfigError(f"{name}: must be in {rng}, got {value}")
