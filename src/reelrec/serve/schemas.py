"""HTTP request and response models. Limits live on `Field`, not in handlers."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from reelrec.data.records import Event

MAX_N = 200
MAX_EVENTS = 1000
MAX_ID = 2**63 - 1
UserId = Annotated[int, Field(ge=0, le=MAX_ID, description="raw 64-bit user id")]


class FeedQuery(BaseModel):
    """Query of `GET /v1/feed`. Unknown parameters are refused (a typo is not ignored)."""

    model_config = ConfigDict(extra="forbid")

    user_id: UserId
    n: int = Field(default=20, ge=1, le=MAX_N, description="items on the page")
    tab: int = Field(default=0, ge=0, lt=2**31, description="surface/tab")
    debug: bool = Field(default=False, description="add per-task predictions")


class FeedItem(BaseModel):
    """One item of a feed page."""

    item_id: int
    score: float = Field(description="the ranker's fused score")
    boost: float = Field(description="freshness boost added before the diversity re-rank")
    retriever: str = Field(description="the retriever that found the item")
    author_id: int
    tags: list[int]
    duration_ms: int
    upload_ms: int
    tasks: dict[str, float] | None = Field(
        default=None, description="per-task predictions (debug=true only)"
    )


class StageTimings(BaseModel):
    """Server-side milliseconds per pipeline stage."""

    retrieve_ms: float
    filter_ms: float
    rank_ms: float
    rerank_ms: float
    total_ms: float


class CandidateCounts(BaseModel):
    retrieved: int
    after_filter: int
    ranked: int
    returned: int


class FeedResponse(BaseModel):
    user_id: int
    model_version: int
    cold_start: bool = Field(description="true when there is no history for this user")
    items: list[FeedItem]
    count: int
    timing: StageTimings
    candidates: CandidateCounts
    filtered: dict[str, int] = Field(description="candidates removed per filter")


# Events are validated one by one (so one bad event does not sink the batch): the body is
# typed as a list of anything, and the OpenAPI schema still documents each item as an Event.
_EVENT_LIST_SCHEMA: dict[str, Any] = {
    "type": "array",
    "items": Event.model_json_schema(),
    "minItems": 1,
    "maxItems": MAX_EVENTS,
}


class EventsRequest(BaseModel):
    """A batch of feedback events (1..1000)."""

    model_config = ConfigDict(extra="forbid")

    events: Annotated[
        list[Any], Field(min_length=1, max_length=MAX_EVENTS), WithJsonSchema(_EVENT_LIST_SCHEMA)
    ]


class RejectedEvent(BaseModel):
    index: int = Field(description="position of the event in the posted list")
    reason: str = Field(description="machine-readable reason, e.g. int_type, missing")
    field: str | None = Field(description="the offending field, when there is one")
    message: str


class EventsResponse(BaseModel):
    accepted: int
    rejected: list[RejectedEvent]
    first_offset: int | None = Field(description="event-log offset of the first accepted event")
    last_offset: int | None


class BlockRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    user_id: UserId
    author_id: Annotated[int, Field(ge=0, le=MAX_ID)]


class BlockResponse(BaseModel):
    user_id: int
    author_id: int
    blocked: bool


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    ready: bool
    model_version: int | None
    model_path: str | None = None


class ReloadResponse(BaseModel):
    swapped: bool
    model_version: int | None


class ErrorField(BaseModel):
    field: str
    message: str
    type: str


class ErrorResponse(BaseModel):
    """Every 4xx body: a one-line message and, for validation errors, the fields at fault."""

    message: str
    detail: list[ErrorField] | str
