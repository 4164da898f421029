"""Canonical records: one interaction schema, one item schema, one user schema.

Every adapter (KuaiRand, MovieLens, generic Parquet/CSV, the simulator, HTTP intake) produces
these. Columnar (pyarrow) on the hot path; the pydantic `Event` is for the HTTP boundary.

Event columns (all int64 unless noted):
    user_id, item_id      raw 64-bit ids, never remapped
    timestamp_ms          event time: when the item was shown (start of play), epoch ms (UTC)
    tab                   surface/tab the item was shown on (0 when unknown)
    hour                  local hour 0..23 of the event
    watch_ms              play time in milliseconds (0 = not played)
    duration_ms           item duration in milliseconds (0 = unknown)
    is_click, long_view, is_like, is_follow, is_comment, is_share, is_hate   (int8, 0/1)
"""

from __future__ import annotations

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

LABELS: tuple[str, ...] = (
    "is_click",
    "long_view",
    "is_like",
    "is_follow",
    "is_comment",
    "is_share",
    "is_hate",
)
ID_COLUMNS = ("user_id", "item_id")

EVENT_SCHEMA = pa.schema(
    [
        ("user_id", pa.int64()),
        ("item_id", pa.int64()),
        ("timestamp_ms", pa.int64()),
        ("tab", pa.int64()),
        ("hour", pa.int64()),
        ("watch_ms", pa.int64()),
        ("duration_ms", pa.int64()),
        *[(label, pa.int8()) for label in LABELS],
    ]
)

# Extra int64 columns (categorical item features such as video_type) may follow these.
ITEM_SCHEMA = pa.schema(
    [
        ("item_id", pa.int64()),
        ("author_id", pa.int64()),
        ("duration_ms", pa.int64()),  # 0 = unknown
        ("upload_ms", pa.int64()),  # 0 = unknown
        ("music_id", pa.int64()),  # 0 = none
        ("tags", pa.list_(pa.int64())),
        ("visible", pa.bool_()),  # False: hidden or moderated, never served
    ]
)

# Extra int64 columns (categorical profile fields, already integer-coded) may follow.
USER_SCHEMA = pa.schema([("user_id", pa.int64())])

MAX_WATCH_MS = 6 * 3600 * 1000  # longer than any feed session: a logging error
MAX_DURATION_MS = 6 * 3600 * 1000


def empty_events() -> pa.Table:
    return EVENT_SCHEMA.empty_table()


class Event(BaseModel):
    """One feedback event at the HTTP boundary (`POST /v1/events`)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    user_id: int = Field(ge=0, lt=2**63)
    item_id: int = Field(ge=0, lt=2**63)
    timestamp_ms: int = Field(
        ge=0, lt=2**63, description="when the item was shown (start of play), epoch milliseconds"
    )
    tab: int = Field(default=0, ge=0, lt=2**31)
    watch_ms: int = Field(default=0, ge=0, le=MAX_WATCH_MS)
    duration_ms: int = Field(default=0, ge=0, le=MAX_DURATION_MS, description="0 = unknown")
    is_click: int = Field(default=1, ge=0, le=1)
    long_view: int = Field(default=0, ge=0, le=1)
    is_like: int = Field(default=0, ge=0, le=1)
    is_follow: int = Field(default=0, ge=0, le=1)
    is_comment: int = Field(default=0, ge=0, le=1)
    is_share: int = Field(default=0, ge=0, le=1)
    is_hate: int = Field(default=0, ge=0, le=1)
