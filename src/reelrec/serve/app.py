"""The FastAPI app: `create_app(settings)` wires the model holder, event log (and event stream),
user state, metrics, middleware and routes. `run_server` (in `__init__`) runs it on uvicorn."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

import reelrec
from reelrec.device import resolve_device
from reelrec.errors import IntegrityError
from reelrec.serve.deps import EventStream, Runtime
from reelrec.serve.eventlog import EventLog
from reelrec.serve.follow import LogFollower
from reelrec.serve.metrics import ServerMetrics
from reelrec.serve.middleware import BodyLimitMiddleware, MetricsMiddleware
from reelrec.serve.pipeline import PipelineConfig, RerankConfig
from reelrec.serve.routes import api_router
from reelrec.serve.routes.viewer import STATIC
from reelrec.serve.settings import Settings
from reelrec.serve.state import UserStateStore
from reelrec.serve.swap import ModelHolder

log = logging.getLogger(__name__)


def _field_name(loc: tuple[object, ...] | list[object]) -> str:
    """("query", "n") -> "n"; ("body", "events", 3) -> "events[3]"; ("body",) -> "body"."""
    parts = (
        list(loc[1:])
        if len(loc) > 1 and loc[0] in ("query", "body", "path", "header")
        else list(loc)
    )
    name = ""
    for part in parts:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or "body"


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    """422 with the offending field named: {"message": "n: ...", "detail": [{field,...}]}."""
    assert isinstance(exc, RequestValidationError)
    detail = []
    for e in exc.errors():
        kind = str(e.get("type", ""))
        message = str(e.get("msg", ""))
        if kind == "json_invalid":  # loc is ("body", char position): name the body instead
            field = "body"
            message = f"{message} at character {e['loc'][-1]}: {e.get('ctx', {}).get('error', '')}"
        else:
            field = _field_name(e.get("loc", ()))
        detail.append({"field": field, "message": message, "type": kind})
    first = detail[0] if detail else {"field": "request", "message": "invalid request"}
    more = f" (+{len(detail) - 1} more)" if len(detail) > 1 else ""
    return JSONResponse(
        {"message": f"{first['field']}: {first['message']}{more}", "detail": detail},
        status_code=422,
    )


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400:
        # Only FastAPI's body parsing raises 400 here (bytes that are not UTF-8 JSON): report
        # it like every other malformed body, as a 422 naming the body.
        message = f"body: {exc.detail} (expected a UTF-8 JSON object)"
        detail = [{"field": "body", "message": message, "type": "body_unparsable"}]
        return JSONResponse({"message": message, "detail": detail}, status_code=422)
    return JSONResponse(
        {"message": str(exc.detail), "detail": exc.detail},
        status_code=exc.status_code,
        headers=exc.headers,
    )


async def internal_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"message": "internal server error", "detail": type(exc).__name__}, 500)


def open_event_stream(settings: Settings) -> EventStream | None:
    """The Redis Stream of `settings.events_stream` (None when unset). Connects lazily: a
    Redis that is down does not stop the server, it fails event requests (503)."""
    url = settings.events_stream
    if url is None:
        return None
    import redis

    from reelrec.online.log import RedisStreamLog, open_source

    trainers = open_source(url)  # the stream key exactly as `reelrec online --events URL` reads it
    assert isinstance(trainers, RedisStreamLog)  # settings accept redis:// URLs only
    trainers.close()
    # Timeouts, so that a Redis that stops answering fails the request instead of holding a
    # handler thread (redis-py 5 waits forever by default).
    timeout = settings.events_stream_timeout_s
    client = redis.Redis.from_url(
        url.split("?", 1)[0], socket_timeout=timeout, socket_connect_timeout=timeout
    )
    return RedisStreamLog(client, trainers.stream)


def build_runtime(settings: Settings) -> Runtime:
    metrics = ServerMetrics()
    pipeline_cfg = PipelineConfig(
        per_retriever_k=settings.per_retriever_k,
        candidates=settings.candidates,
        rerank=RerankConfig(
            max_per_author=settings.max_per_author,
            max_topic_share=settings.max_topic_share,
            freshness_weight=settings.freshness_weight,
            freshness_half_life_h=settings.freshness_half_life_h,
            trend_weight=settings.trend_weight,
        ),
    )
    holder = ModelHolder(
        settings.model, device=resolve_device(settings.device), pipeline_cfg=pipeline_cfg,
        metrics=metrics,
    )  # fmt: skip
    users = UserStateStore(
        max_users=settings.max_users, history_len=settings.history_len,
        seen_len=settings.seen_len, seen_ttl_s=settings.seen_ttl_s,
    )  # fmt: skip
    return Runtime(
        settings, holder, EventLog(settings.events_db), users, metrics,
        stream=open_event_stream(settings),
    )  # fmt: skip


def create_app(settings: Settings) -> FastAPI:
    """A feed server app. The model loads when the app starts (lifespan), then is watched."""
    runtime = build_runtime(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.handler_threads
        if runtime.events.closed:  # the app is being started again after a shutdown
            runtime.events = EventLog(settings.events_db)
            runtime.stream = open_event_stream(settings)
        first = runtime.holder.check_now()
        if first.refused and runtime.holder.store is None:
            # One model directory and it does not load: nothing to serve, fail loudly.
            raise IntegrityError(f"--model {settings.model}: {first.refused}")
        # Live state starts empty (or, with workers, at the server's launch), except the
        # author blocks: users made those for good. After the model: hates need its catalog.
        start = settings.follow_from if settings.follow_log else None
        runtime.follower = LogFollower(
            events_after=runtime.events.last_offset() if start is None else start
        )
        runtime.follower.catch_up(runtime)
        if first.version is None:
            log.warning("no valid model version in %s yet: not ready", settings.model)
        if settings.watch:
            runtime.holder.start(settings.poll_interval_s)
        try:
            yield
        finally:
            runtime.holder.stop()
            runtime.events.close()
            if runtime.stream is not None:
                runtime.stream.close()

    app = FastAPI(
        title="reelrec feed server",
        version=reelrec.__version__,
        description="retrieve -> filter -> rank -> re-rank short-video feeds; event intake.",
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.include_router(api_router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, internal_error)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=runtime.metrics)  # outermost: sees 413s
    return app


def app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory` with several workers: settings from REELREC_* env."""
    from reelrec.serve import _tune_process

    settings = Settings()  # type: ignore[call-arg]
    _tune_process(settings)
    return create_app(settings)
