"""Server settings: one `Settings(BaseSettings)`, read from keyword arguments or `REELREC_*`.

Paths are required (no silent defaults): `model` (a model directory or a model store root)
and `events_db` (the SQLite event log). The admin token is a secret and has no default:
without it the admin endpoints are disabled. `events_stream` (optional) is a Redis Stream that
every accepted event is also appended to, so trainers on other machines can consume it.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlparse

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from reelrec.errors import ConfigError

# Tokens people paste from examples; refusing them beats running with a guessable secret.
_PLACEHOLDER_TOKENS = {"changeme", "change-me", "secret", "token", "admin", "password"}
MIN_TOKEN_CHARS = 16
STREAM_URL_KEYS = {"stream", "group"}  # what `reelrec.online.log.open_source` reads


def check_stream_url(url: str) -> str:
    """Refuse an `events_stream` URL that `open_source` would not read as a Redis Stream.

    The messages name the bad part only: the URL may hold a password.
    """
    where = "events_stream (--events-stream, REELREC_EVENTS_STREAM)"
    parsed = urlparse(url)
    if parsed.scheme not in ("redis", "rediss"):
        raise ConfigError(
            f"{where}: scheme {parsed.scheme or '(none)'!r}: expected "
            "redis://HOST:PORT/DB?stream=KEY (or rediss:// for TLS)"
        )
    try:
        parsed.port  # noqa: B018  (parsing the port is the check)
    except ValueError as e:
        raise ConfigError(f"{where}: {e}") from None
    unknown = sorted(set(parse_qs(parsed.query)) - STREAM_URL_KEYS)
    if unknown:
        raise ConfigError(
            f"{where}: unknown query keys {unknown}: expected {sorted(STREAM_URL_KEYS)}"
        )
    return url


class Settings(BaseSettings):
    """Everything `create_app` needs. Environment variables use the `REELREC_` prefix."""

    model_config = SettingsConfigDict(env_prefix="REELREC_", extra="forbid")

    model: Path = Field(description="one model directory, or a model store root (v00000001/...)")
    events_db: Path = Field(description="SQLite event log (created if missing)")
    admin_token: SecretStr | None = Field(
        default=None, description="bearer token for /admin/*; unset = admin disabled"
    )
    events_stream: str | None = Field(
        default=None,
        description="redis://HOST:PORT/DB?stream=KEY: also append accepted events to this stream",
    )
    # A Redis that stops answering fails the events request after this long (503) instead of
    # holding a handler thread (redis-py 5 waits forever by default).
    events_stream_timeout_s: float = Field(default=2.0, gt=0, le=60)
    device: str = "cpu"
    # Intra-op threads per server process. One: concurrent requests already use the cores,
    # and small (K, d) matmuls gain little from splitting (applied by run_server only).
    torch_threads: int = Field(default=1, ge=1, le=256)
    # Handler threads (anyio's limiter; FastAPI's default is 40). A few more than cores:
    # enough to overlap fsyncs and GIL-free torch ops, few enough not to thrash the GIL.
    handler_threads: int = Field(default=8, ge=1, le=1000)

    # Model store watching (hot swap).
    watch: bool = True
    poll_interval_s: float = Field(default=1.0, gt=0, le=3600)

    # Pipeline sizes.
    per_retriever_k: int = Field(default=500, ge=1, le=10_000)
    candidates: int = Field(default=500, ge=1, le=10_000, description="ranked per request")

    # Per-user live state.
    # Several workers share the event log: each applies every worker's events and blocks to
    # its user state, reading the log (serve/follow.py). `run_server --workers N` sets it.
    follow_log: bool = False
    # Where the workers' shared state starts in the log: run_server sets the log's end at
    # launch, so a worker that starts late (or is restarted) still applies every event the
    # server accepted. None: the log's end when this worker starts (a lone server's state).
    follow_from: int | None = Field(default=None, ge=0)
    max_users: int = Field(default=100_000, ge=1)
    history_len: int = Field(default=50, ge=1, le=10_000)
    seen_len: int = Field(default=2_000, ge=1, le=100_000)
    seen_ttl_s: float = Field(default=6 * 3600, gt=0)

    # Re-rank (see pipeline.rerank for the rules).
    max_per_author: int = Field(default=2, ge=1)
    max_topic_share: float = Field(default=0.34, gt=0, le=1)
    freshness_weight: float = Field(default=0.1, ge=0)
    freshness_half_life_h: float = Field(default=24.0, gt=0)
    trend_weight: float = Field(default=0.2, ge=0)

    # Limits.
    max_body_bytes: int = Field(default=1 << 20, ge=1024)
    # Load shedding: a feed request that waited longer than this for a handler thread gets a
    # fast 503 instead of being computed for a client that has likely given up.
    max_queue_ms: float = Field(default=1000.0, gt=0)

    @field_validator("admin_token")
    @classmethod
    def _refuse_weak_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or value.get_secret_value() == "":
            return None
        token = value.get_secret_value()
        if token.lower() in _PLACEHOLDER_TOKENS or len(token) < MIN_TOKEN_CHARS:
            raise ValueError(
                f"REELREC_ADMIN_TOKEN is a placeholder or shorter than {MIN_TOKEN_CHARS} "
                "characters: use e.g. `python -c 'import secrets; print(secrets.token_hex(24))'`"
            )
        return value

    @field_validator("events_stream")
    @classmethod
    def _check_stream_url(cls, value: str | None) -> str | None:
        return check_stream_url(value) if value else None
