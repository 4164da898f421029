"""Typed dependencies: handlers ask for what they need by type (`ServedDep`, `EventLogDep`...).

They are `async def` on purpose: they only read attributes, and FastAPI would run a sync
dependency in the thread pool, one thread hop per dependency per request.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Protocol

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from reelrec.data.records import Event
from reelrec.serve.eventlog import EventLog
from reelrec.serve.follow import LogFollower
from reelrec.serve.metrics import ServerMetrics
from reelrec.serve.settings import Settings
from reelrec.serve.state import UserStateStore
from reelrec.serve.swap import ModelHolder, Served


class EventStream(Protocol):
    """Where accepted events also go (`settings.events_stream`: a `RedisStreamLog`)."""

    def append(self, events: Sequence[Event]) -> tuple[int, int] | None: ...

    def close(self) -> None: ...


@dataclass
class Runtime:
    """Everything one app instance owns; lives on `app.state.runtime`."""

    settings: Settings
    holder: ModelHolder
    events: EventLog
    users: UserStateStore
    metrics: ServerMetrics
    stream: EventStream | None = None  # None: the SQLite event log only
    follower: LogFollower | None = None  # set when the app starts

    def catch_up(self) -> None:
        """With `settings.follow_log`: apply the other workers' new events and blocks."""
        if self.settings.follow_log and self.follower is not None:
            self.follower.catch_up(self)


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_served(runtime: RuntimeDep) -> Served:
    """The model this request will use to the end (read once: a swap cannot affect it)."""
    served = runtime.holder.current
    if served is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, "no model loaded yet (see /readyz)"
        )
    return served


ServedDep = Annotated[Served, Depends(get_served)]


async def get_event_log(runtime: RuntimeDep) -> EventLog:
    return runtime.events


EventLogDep = Annotated[EventLog, Depends(get_event_log)]


async def get_event_stream(runtime: RuntimeDep) -> EventStream | None:
    return runtime.stream


EventStreamDep = Annotated[EventStream | None, Depends(get_event_stream)]


async def get_users(runtime: RuntimeDep) -> UserStateStore:
    return runtime.users


UsersDep = Annotated[UserStateStore, Depends(get_users)]


async def get_metrics(runtime: RuntimeDep) -> ServerMetrics:
    return runtime.metrics


MetricsDep = Annotated[ServerMetrics, Depends(get_metrics)]


def shed_if_queued_too_long(request: Request, runtime: Runtime) -> None:
    """Call first thing in a thread-pool handler: 503 if the request queued > max_queue_ms.

    Under overload an open queue grows without bound and every request times out; refusing
    the stale ones fast keeps the server answering at its capacity (load shedding).
    """
    arrival = getattr(request.state, "arrival", None)
    if arrival is None:
        return
    waited_ms = (time.perf_counter() - arrival) * 1e3
    if waited_ms > runtime.settings.max_queue_ms:
        runtime.metrics.shed.inc()
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"overloaded: queued {waited_ms:.0f} ms (limit {runtime.settings.max_queue_ms:.0f})",
            headers={"Retry-After": "1"},
        )


_bearer = HTTPBearer(auto_error=False, description="REELREC_ADMIN_TOKEN")


async def require_admin(
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """404 when no admin token is configured (the endpoint does not exist), 401 on a bad one."""
    token = runtime.settings.admin_token
    if token is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, "admin endpoints are disabled (set REELREC_ADMIN_TOKEN)"
        )
    given = credentials.credentials if credentials is not None else ""
    if not hmac.compare_digest(given.encode(), token.get_secret_value().encode()):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing or wrong bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )


AdminDep = Annotated[None, Depends(require_admin)]
