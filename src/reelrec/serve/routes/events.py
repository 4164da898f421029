"""`POST /v1/events`: validate each event, append the valid ones durably, update user state.

`POST /v1/blocks`: a user blocks an author (their items leave the user's feeds).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from fastapi import APIRouter
from pydantic import ValidationError

from reelrec.data.records import Event
from reelrec.serve.deps import EventLogDep, MetricsDep, RuntimeDep, UsersDep
from reelrec.serve.eventlog import DeadLetter
from reelrec.serve.schemas import (
    BlockRequest,
    BlockResponse,
    ErrorResponse,
    EventsRequest,
    EventsResponse,
    RejectedEvent,
)

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


def _authors(runtime: RuntimeDep, events: list[Event]) -> dict[int, int]:
    """item -> author for the hated items (to block their authors), from the served catalog."""
    served = runtime.holder.current
    hated = np.array([e.item_id for e in events if e.is_hate], dtype=np.int64)
    if served is None or hated.size == 0:
        return {}
    catalog = served.pipeline.model.catalog
    pos = catalog.positions(hated)
    return {int(i): int(catalog.author_id[p]) for i, p in zip(hated, pos, strict=True) if p >= 0}


@router.post("/events", response_model=EventsResponse, responses={413: {"model": ErrorResponse},
             422: {"model": ErrorResponse}})  # fmt: skip
def post_events(
    body: EventsRequest, runtime: RuntimeDep, log: EventLogDep, users: UsersDep,
    metrics: MetricsDep,
) -> EventsResponse:  # fmt: skip
    """Append valid events (fsync'd before this returns); report invalid ones by index."""
    valid, dead = validate_events(body.events)
    offsets = log.append(valid)
    log.append_dead(dead)
    users.record_events(valid, _authors(runtime, valid), int(time.time() * 1000))
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
def post_block(body: BlockRequest, users: UsersDep) -> BlockResponse:
    """Block an author for a user: their items no longer appear in the user's feeds."""
    users.block_author(body.user_id, body.author_id)
    return BlockResponse(user_id=body.user_id, author_id=body.author_id, blocked=True)
