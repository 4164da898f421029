"""Per-user live state kept by the server: recent history, items seen, blocked authors.

Fed by `POST /v1/events` (and by the feed itself, which records what it served) and read by
the feed's filters and by `UserContext.history`. In memory, per process, bounded: at most
`max_users` users (least recently active evicted first) and fixed-length queues per user.

Rules:
- *seen* = served in a feed, or any event on the item; an item seen within `seen_ttl_s` is
  filtered out of the next feeds.
- *history* (the ranker's sequence feature) = items the user long-viewed (`long_view == 1`),
  the same rule the feature builder trains with: a broader rule here would hand the ranker
  histories unlike those it learned from.
- *session* (the ranker's session features) = the time of the user's last event and how
  many events its session has had, by the events' own timestamps and features/history.py's
  rule (a pause over 30 minutes starts a new session).
- *blocked authors*: explicit blocks, plus the author of any item the user marked `is_hate`
  (the "not interested" button).
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, field

import numpy as np

from reelrec.data.records import Event
from reelrec.features.history import after_event


@dataclass
class UserState:
    """One user's recent activity. Queues are oldest first."""

    history: deque[int]
    seen_ids: deque[int]
    seen_ms: deque[int]
    blocked_authors: set[int] = field(default_factory=set)
    last_event_ms: int = -1
    session_events: int = 0


@dataclass(frozen=True)
class UserSnapshot:
    """A consistent copy of one user's state for one feed request (arrays are int64)."""

    known: bool
    history: np.ndarray
    seen: np.ndarray
    blocked_authors: np.ndarray
    last_event_ms: int = -1
    session_events: int = 0


def is_positive(event: Event) -> bool:
    """Enters the history (see the module docstring; features/builder.py has the twin rule)."""
    return bool(event.long_view)


def positive_mask(long_view: np.ndarray) -> np.ndarray:
    """`is_positive` on a column of events (as read back from the event log)."""
    return long_view > 0


_EMPTY = np.empty(0, dtype=np.int64)


class UserStateStore:
    """Thread-safe, bounded map user_id -> UserState (an LRU over users)."""

    def __init__(
        self, *, max_users: int = 100_000, history_len: int = 50, seen_len: int = 2000,
        seen_ttl_s: float = 6 * 3600,
    ) -> None:  # fmt: skip
        self.max_users = max_users
        self.history_len = history_len
        self.seen_len = seen_len
        self.seen_ttl_ms = int(seen_ttl_s * 1000)
        self._users: OrderedDict[int, UserState] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._users)

    def _get(self, user_id: int) -> UserState:
        """The user's state, created if new and moved to the most-recent end (lock held)."""
        state = self._users.get(user_id)
        if state is None:
            state = UserState(
                history=deque(maxlen=self.history_len),
                seen_ids=deque(maxlen=self.seen_len),
                seen_ms=deque(maxlen=self.seen_len),
            )
            self._users[user_id] = state
            while len(self._users) > self.max_users:
                self._users.popitem(last=False)
        else:
            self._users.move_to_end(user_id)
        return state

    def record_events(self, events: list[Event], author_of: dict[int, int], now_ms: int) -> None:
        """Apply accepted events. `author_of` maps item -> author for `is_hate` blocks."""
        self.record_columns(
            np.fromiter((e.user_id for e in events), np.int64, len(events)),
            np.fromiter((e.item_id for e in events), np.int64, len(events)),
            np.fromiter((is_positive(e) for e in events), np.bool_, len(events)),
            np.fromiter((bool(e.is_hate) for e in events), np.bool_, len(events)),
            np.fromiter((e.timestamp_ms for e in events), np.int64, len(events)),
            author_of,
            now_ms,
        )

    def record_columns(
        self, user_ids: np.ndarray, item_ids: np.ndarray, positive: np.ndarray,
        hated: np.ndarray, timestamps: np.ndarray, author_of: dict[int, int], now_ms: int,
    ) -> None:  # fmt: skip
        """`record_events` on columns (N,) each: events as read back from the event log."""
        rows = zip(user_ids.tolist(), item_ids.tolist(), positive.tolist(), hated.tolist(),
                   timestamps.tolist(), strict=True)  # fmt: skip
        with self._lock:
            for user, item, pos, hate, ts in rows:
                state = self._get(user)
                state.seen_ids.append(item)
                state.seen_ms.append(now_ms)
                last, n = after_event(ts, state.last_event_ms, state.session_events)
                state.last_event_ms, state.session_events = int(last), int(n)
                if pos:
                    state.history.append(item)
                if hate and item in author_of:
                    state.blocked_authors.add(author_of[item])

    def record_served(self, user_id: int, item_ids: np.ndarray, now_ms: int) -> None:
        with self._lock:
            state = self._get(user_id)
            for item in item_ids.tolist():
                state.seen_ids.append(item)
                state.seen_ms.append(now_ms)

    def block_author(self, user_id: int, author_id: int) -> None:
        with self._lock:
            self._get(user_id).blocked_authors.add(author_id)

    def snapshot(self, user_id: int, now_ms: int) -> UserSnapshot:
        """Copy what one feed request needs; seen items older than the TTL are left out."""
        with self._lock:
            state = self._users.get(user_id)
            if state is None:
                return UserSnapshot(False, _EMPTY, _EMPTY, _EMPTY)
            seen_ids = np.fromiter(state.seen_ids, dtype=np.int64, count=len(state.seen_ids))
            seen_ms = np.fromiter(state.seen_ms, dtype=np.int64, count=len(state.seen_ms))
            history = np.fromiter(state.history, dtype=np.int64, count=len(state.history))
            blocked = np.fromiter(
                state.blocked_authors, dtype=np.int64, count=len(state.blocked_authors)
            )
            last_ms, session = state.last_event_ms, state.session_events
        recent = seen_ms >= now_ms - self.seen_ttl_ms
        return UserSnapshot(True, history, seen_ids[recent], blocked, last_ms, session)
