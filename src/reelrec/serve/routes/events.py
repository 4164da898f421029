"""`POST /v1/events`: validate each event, append the valid ones durably, update user state.

With `events_stream` set, the valid events are also appended to that Redis Stream, after the
SQLite log (durable first). When that append fails the request gets a 503: the events are in
the SQLite log but maybe not (or only partly) in the stream, and the client's retry appends
them again, so both logs may hold duplicates of a batch answered 503 (at-least-once).

`POST /v1/blocks`: a user blocks an author (their items leave the user's feeds).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import redis
from fastapi import APIRouter, HTTPException, status
from pydantic import ValidationError

from reelrec.data.records import Event
from reelrec.serve.deps import (
    EventLogDep,
    EventStream,
    EventStreamDep,
    MetricsDep,
    RuntimeDep,
    UsersDep,
)
from reelrec.serve.eventlog import DeadLetter
from reelrec.serve.follow import hated_authors
from reelrec.serve.metrics import ServerMetrics
from reelrec.serve.schemas import (
    BlockRequest,
    BlockResponse,
    ErrorResponse,
    EventsRequest,
    EventsResponse,
    RejectedEvent,
)

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1", tags=["events"])


def validate_events(raw: list[Any]) -> tuple[list[Event], list[DeadLetter]]:
    """Split a posted list into valid Events and dead letters (index, reason, message)."""
    valid: list[Event] = []
    dead: list[DeadLetter] = []
    for i, obj in enumerate(raw):
        if not isinstance(obj, dict):
            dead.append(DeadLetter(i, "not_an_object", f"events[{i}]: expected a JSON object", obj))
            continue
        try:
            valid.append(Event.model_validate(obj))
        except ValidationError as e:
            first = e.errors(include_url=False)[0]
            where = ".".join(str(part) for part in first["loc"]) or "event"
            more = f" (+{e.error_count() - 1} more)" if e.error_count() > 1 else ""
            message = f"events[{i}].{where}: {first['msg']}{more}"
            field = where if first["loc"] else None
            dead.append(DeadLetter(i, first["type"], message, obj, field))
    return valid, dead


def _append_to_stream(
    stream: EventStream | None, valid: list[Event], offsets: tuple[int, int] | None,
    metrics: ServerMetrics,
) -> None:  # fmt: skip
    """XADD the events already in the SQLite log; 503 (never 500) when Redis fails."""
    if stream is None or not valid:
        return
    try:
        stream.append(valid)
    except redis.RedisError as e:
        metrics.stream_append_errors.inc()
        log.warning("events_stream append failed (%d events): %s", len(valid), e)
        where = f"offsets {offsets[0]}-{offsets[1]}" if offsets else "the SQLite log"
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"event stream unavailable ({type(e).__name__}: {e}): the {len(valid)} events are "
            f"in the SQLite log ({where}) but maybe not in the stream; retrying may duplicate them",
            headers={"Retry-After": "1"},
        ) from e


@router.post("/events", response_model=EventsResponse, responses={413: {"model": ErrorResponse},
             422: {"model": ErrorResponse}, 503: {"model": ErrorResponse}})  # fmt: skip
def post_events(
    body: EventsRequest, runtime: RuntimeDep, events_log: EventLogDep, stream: EventStreamDep,
    users: UsersDep, metrics: MetricsDep,
) -> EventsResponse:  # fmt: skip
    """Append valid events (fsync'd before this returns); report invalid ones by index."""
    valid, dead = validate_events(body.events)
    offsets = events_log.append(valid)
    events_log.append_dead(dead)
    # Before the user state: a 503 here is retried, and the retry should count once there
    # (with follow_log the batch is in the log, so it reaches the state either way: like the
    # logs, the state then holds the retried batch twice).
    _append_to_stream(stream, valid, offsets, metrics)
    if runtime.settings.follow_log:
        runtime.catch_up()  # this batch and the other workers' events, in log order
    else:
        hated = np.array([e.item_id for e in valid if e.is_hate], dtype=np.int64)
        users.record_events(valid, hated_authors(runtime, hated), int(time.time() * 1000))
    metrics.events_accepted.inc(len(valid))
    for letter in dead:
        metrics.events_rejected.labels(letter.reason).inc()
    return EventsResponse(
        accepted=len(valid),
        rejected=[
            RejectedEvent(index=d.index, reason=d.reason, field=d.field, message=d.message)
            for d in dead
        ],
        first_offset=offsets[0] if offsets else None,
        last_offset=offsets[1] if offsets else None,
    )


@router.post("/blocks", response_model=BlockResponse, responses={422: {"model": ErrorResponse}})
def post_block(
    body: BlockRequest, runtime: RuntimeDep, events_log: EventLogDep, users: UsersDep
) -> BlockResponse:
    """Block an author for a user: their items no longer appear in the user's feeds (kept in
    the event log: the block outlives a restart and reaches every worker)."""
    events_log.append_block(body.user_id, body.author_id)
    if runtime.settings.follow_log:
        runtime.catch_up()
    else:
        users.block_author(body.user_id, body.author_id)
    return BlockResponse(user_id=body.user_id, author_id=body.author_id, blocked=True)
