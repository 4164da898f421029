"""`events_stream`: accepted events also go to a Redis Stream that a trainer consumes; a bad
URL is refused at settings time; a Redis that is down or hung gives 503, never 500."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from reelrec.cli import app as cli
from reelrec.errors import ConfigError
from reelrec.online.log import RedisStreamLog, open_source
from reelrec.serve import run_server
from reelrec.serve.eventlog import EventLog
from reelrec.serve.settings import Settings
from tests.online.conftest import redis_url  # noqa: F401  (the real redis-server fixture)
from tests.serve.conftest import free_port, make_settings, running_client


def ev(**kw: Any) -> dict[str, Any]:
    base = {"user_id": 5, "item_id": 7, "timestamp_ms": int(time.time() * 1000)}
    base.update(kw)
    return base


def test_accepted_events_reach_a_stream_consumer_in_order(
    model_dir: Path,
    tmp_path: Path,
    redis_url: str,  # noqa: F811
) -> None:
    url = f"{redis_url}?stream=t-serve&group=g"
    batches = [
        [ev(item_id=1, watch_ms=900), ev(user_id=6, item_id=2, is_like=1)],
        [ev(item_id=3, tab=2), {"user_id": 1}, ev(user_id=7, item_id=4, is_hate=1)],
    ]
    with running_client(make_settings(model_dir, tmp_path, events_stream=url)) as c:
        for events in batches:
            r = c.post("/v1/events", json={"events": events})
            assert r.status_code == 200, r.text
        assert r.json()["accepted"] == 2  # the invalid event went to dead letters only
    sqlite = EventLog(tmp_path / "events.sqlite", readonly=True).read(after_offset=0)
    consumer = open_source(url)
    assert isinstance(consumer, RedisStreamLog)
    streamed = consumer.read(after_offset=0, limit=100)
    assert len(streamed.offsets) == 4 and consumer.last_offset() == streamed.offsets[-1]
    assert streamed.events.to_pylist() == sqlite.events.to_pylist()  # every field, same order
    assert streamed.events.column("item_id").to_pylist() == [1, 2, 3, 4]
    assert streamed.events.column("is_hate").to_pylist() == [0, 0, 0, 1]
    consumer.close()


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("http://127.0.0.1:6379/0", "scheme 'http'"),
        ("127.0.0.1:6379", "scheme"),
        ("redis://127.0.0.1:port/0", "Port"),
        ("redis://127.0.0.1:6379/0?strem=x", "unknown query keys \\['strem'\\]"),
    ],
)
def test_bad_stream_url_fails(url: str, match: str) -> None:
    with pytest.raises(ValidationError, match=match) as info:
        Settings(model=Path("m"), events_db=Path("e"), events_stream=url)
    assert "events_stream" in str(info.value)


def test_bad_stream_url_fails_before_serving(tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()
    with pytest.raises(ConfigError, match="events_stream .*scheme 'kafka'"):
        run_server(model=tmp_path / "store", events_db=tmp_path / "e.sqlite",
                   events_stream="kafka://broker:9092")  # fmt: skip
    result = CliRunner().invoke(
        cli, ["serve", "--model", str(tmp_path / "store"), "--events-stream", "http://x"]
    )
    assert result.exit_code == 2 and "--events-stream" in result.output


def _post_while_redis_fails(
    model_dir: Path, tmp_path: Path, url: str, **overrides: Any
) -> tuple[int, str, str, float]:
    """Post two events: (status, message, /metrics text, seconds the post took)."""
    settings = make_settings(model_dir, tmp_path, events_stream=url, **overrides)
    with running_client(settings) as c:
        start = time.perf_counter()
        r = c.post("/v1/events", json={"events": [ev(item_id=1), ev(item_id=2)]})
        seconds = time.perf_counter() - start
        assert c.post("/v1/events", json={"events": ["bad"]}).status_code == 200  # no append
        return r.status_code, r.json()["message"], c.get("/metrics").text, seconds


def test_redis_down_gives_503_after_the_durable_append(model_dir: Path, tmp_path: Path) -> None:
    status, message, metrics, _ = _post_while_redis_fails(
        model_dir,
        tmp_path,
        f"redis://127.0.0.1:{free_port()}/0",  # nothing listens there
    )
    assert status == 503
    assert "event stream unavailable (ConnectionError" in message
    assert "offsets 1-2" in message
    assert "reelrec_stream_append_errors_total 1.0" in metrics
    sqlite = EventLog(tmp_path / "events.sqlite", readonly=True).read(after_offset=0)
    assert sqlite.events.column("item_id").to_pylist() == [1, 2]  # durable first


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (kernel backlog) and never answers: a hung Redis."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield int(s.getsockname()[1])


def test_hung_redis_gives_503_within_the_timeout(
    model_dir: Path, tmp_path: Path, silent_port: int
) -> None:
    status, message, _, seconds = _post_while_redis_fails(
        model_dir, tmp_path, f"redis://127.0.0.1:{silent_port}/0", events_stream_timeout_s=0.2
    )
    assert status == 503 and "TimeoutError" in message, message
    assert seconds < 3  # the 0.2 s timeout, not redis-py's wait (5 s in v8, forever in v5)
