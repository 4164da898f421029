"""Feed server: FastAPI app, event log, live user state, hot model swap, metrics, viewer.

`run_server` is what `reelrec serve` calls; `create_app(Settings(...))` builds the app for
tests and embedding.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from reelrec.errors import ConfigError
from reelrec.serve.app import create_app
from reelrec.serve.eventlog import EventLog, LogBatch
from reelrec.serve.settings import Settings, check_stream_url
from reelrec.store.manifest import read_manifest
from reelrec.store.versions import is_model_dir

log = logging.getLogger(__name__)
DEFAULT_EVENTS_DB = Path("runs/events.sqlite")
# Longer than clients' idle pools (uvicorn's 5 s default lets a client reuse a connection
# the server is closing at that moment: a spurious "server disconnected" error).
KEEP_ALIVE_S = 75


def _tune_process(settings: Settings) -> None:
    """Process-wide knobs for a latency-bound server (not applied by create_app, so that
    embedding the app in another process does not change that process)."""
    import sys

    import torch

    torch.set_num_threads(settings.torch_threads)
    # Request threads hand the GIL to each other every 0.5 ms instead of 5 ms: a request
    # waiting behind a long Python stretch of another one waits less (lower tail latency).
    sys.setswitchinterval(0.0005)


def run_server(
    model: Path, host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
    events_db: Path | None = None, events_stream: str | None = None,
) -> None:  # fmt: skip
    """Serve feeds on uvicorn. `model` is one model directory or a model store root.

    With workers > 1 each worker process has its own metrics and user state, which it keeps
    in step with the shared event log (serve/follow.py: SQLite serialises the writers,
    offsets stay monotonic, each worker applies every worker's events). `events_stream`
    (redis://...) also appends accepted events to a Redis Stream shared across machines.
    """
    import uvicorn

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if not Path(model).is_dir():
        raise ConfigError(f"--model {model}: no such directory (a model dir or model store root)")
    if is_model_dir(model):
        read_manifest(model, verify=True)  # IntegrityError (exit 2) before binding the port
    if workers < 1:
        raise ConfigError(f"--workers {workers}: must be >= 1")
    if events_db is None:
        events_db = DEFAULT_EVENTS_DB
        log.info("event log: %s (pass --events-db to choose)", events_db)
    settings = Settings(model=Path(model), events_db=Path(events_db))  # env: admin token etc.
    if events_stream is not None:  # else REELREC_EVENTS_STREAM, if set, applies
        stream = check_stream_url(events_stream)  # ConfigError (exit 2) before binding the port
        settings = settings.model_copy(update={"events_stream": stream})
    _tune_process(settings)
    if workers == 1:
        uvicorn.run(
            create_app(settings), host=host, port=port, log_level="info", access_log=False,
            timeout_keep_alive=KEEP_ALIVE_S,
        )  # fmt: skip
        return
    os.environ["REELREC_MODEL"] = str(Path(model).resolve())
    os.environ["REELREC_EVENTS_DB"] = str(Path(events_db).resolve())
    os.environ["REELREC_FOLLOW_LOG"] = "1"
    # Workers start one by one (and uvicorn restarts one that dies): each starts from here.
    with contextlib.closing(EventLog(events_db)) as log_at_launch:
        os.environ["REELREC_FOLLOW_FROM"] = str(log_at_launch.last_offset())
    if events_stream is not None:
        os.environ["REELREC_EVENTS_STREAM"] = events_stream
    uvicorn.run(
        "reelrec.serve.app:app_from_env", factory=True, host=host, port=port, workers=workers,
        log_level="info", access_log=False, timeout_keep_alive=KEEP_ALIVE_S,
    )  # fmt: skip


__all__ = ["EventLog", "LogBatch", "Settings", "create_app", "run_server"]
