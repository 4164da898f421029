"""Per-user state from the shared event log: what keeps several workers consistent.

`reelrec serve --workers N` runs N processes, each with its own `UserStateStore`, and a
user's requests land on any of them. So that every worker sees every worker's events, a
worker in that mode does not apply the events it accepts directly: it appends them to the
shared SQLite log, then applies everything in the log past the offset it last applied (its
own events and the others', in offset order). A feed request catches up first: one indexed
read, which finds nothing new most of the time. Author blocks go through the log's `blocks`
table the same way, in every mode, so they also survive a restart.

Every worker starts from the log's end at the server's launch (`Settings.follow_from`), so a
worker that comes up late, or that uvicorn restarts, still applies every event since then.
What stays per worker: the items a worker served (a user may see an item again from another
worker within `seen_ttl_s`).
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

import numpy as np

from reelrec.serve.eventlog import EventLog
from reelrec.serve.state import UserStateStore, positive_mask

if TYPE_CHECKING:
    from reelrec.serve.deps import Runtime

READ_LIMIT = 10_000  # events per read while catching up


def hated_authors(runtime: Runtime, item_ids: np.ndarray) -> dict[int, int]:
    """item -> author for the given (hated) items, from the served model's catalog."""
    served = runtime.holder.current
    if served is None or item_ids.size == 0:
        return {}
    catalog = served.pipeline.model.catalog
    pos = catalog.positions(item_ids)
    return {int(i): int(catalog.author_id[p]) for i, p in zip(item_ids, pos, strict=True) if p >= 0}


class LogFollower:
    """Applies the event log's new events and blocks to a worker's `UserStateStore`.

    Args:
        events_after: the last event offset already applied (the log's end at start-up:
            a worker starts with an empty live state, as a single server does).
        blocks_after: the last block id already applied (0: every block ever made).
    """

    def __init__(self, events_after: int, blocks_after: int = 0) -> None:
        self.events_after = events_after
        self.blocks_after = blocks_after
        self._lock = threading.Lock()  # one catch-up at a time: a range is applied once

    def catch_up(self, runtime: Runtime) -> int:
        """Apply what the log gained since the last call; the number of events applied."""
        with self._lock:
            self._blocks(runtime.events, runtime.users)
            return self._events(runtime)

    def _blocks(self, log: EventLog, users: UserStateStore) -> None:
        while (rows := log.read_blocks(self.blocks_after, READ_LIMIT)).size:
            for user, author in rows[:, 1:].tolist():
                users.block_author(user, author)
            self.blocks_after = int(rows[-1, 0])

    def _events(self, runtime: Runtime) -> int:
        applied = 0
        while (batch := runtime.events.read(self.events_after, READ_LIMIT)).offsets.size:
            ev = batch.events
            items = ev.column("item_id").to_numpy()
            hated = ev.column("is_hate").to_numpy() > 0
            runtime.users.record_columns(
                ev.column("user_id").to_numpy(), items, positive_mask(ev.column("long_view").to_numpy()),
                hated, ev.column("timestamp_ms").to_numpy(),
                hated_authors(runtime, np.unique(items[hated])), int(time.time() * 1000),
            )  # fmt: skip
            self.events_after = int(batch.offsets[-1])
            applied += len(batch.offsets)
        return applied
