"""`GET /v1/feed`: one personalised page for a user (cold-start page for unknown users)."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Query, Request

from reelrec.serve.deps import (
    MetricsDep,
    RuntimeDep,
    ServedDep,
    UsersDep,
    shed_if_queued_too_long,
)
from reelrec.serve.pipeline import FeedResult
from reelrec.serve.schemas import (
    CandidateCounts,
    ErrorResponse,
    FeedItem,
    FeedQuery,
    FeedResponse,
    StageTimings,
)
from reelrec.serve.swap import Served

router = APIRouter(prefix="/v1", tags=["feed"])


def to_response(user_id: int, result: FeedResult, served: Served, debug: bool) -> FeedResponse:
    """Pydantic starts here: numpy arrays of the pipeline become the JSON page."""
    catalog = served.pipeline.model.catalog
    offsets, values = catalog.tag_offsets, catalog.tag_values
    items = []
    for j, (item, pos) in enumerate(
        zip(result.item_ids.tolist(), result.positions.tolist(), strict=True)
    ):
        items.append(
            FeedItem(
                item_id=item,
                score=float(result.scores[j]),
                boost=float(result.boosts[j]),
                retriever=result.retrievers[j],
                author_id=int(catalog.author_id[pos]),
                tags=values[offsets[pos] : offsets[pos + 1]].tolist(),
                duration_ms=int(catalog.duration_ms[pos]),
                upload_ms=int(catalog.upload_ms[pos]),
                tasks={k: float(v[j]) for k, v in result.tasks.items()} if debug else None,
            )
        )
    t = result.timings_s
    return FeedResponse(
        user_id=user_id,
        model_version=result.model_version,
        cold_start=result.cold_start,
        items=items,
        count=len(items),
        timing=StageTimings(
            retrieve_ms=t["retrieve"] * 1e3,
            filter_ms=t["filter"] * 1e3,
            rank_ms=t["rank"] * 1e3,
            rerank_ms=t["rerank"] * 1e3,
            total_ms=t["total"] * 1e3,
        ),  # fmt: skip
        candidates=CandidateCounts(**result.counts),
        filtered=result.filtered,
    )


@router.get(
    "/feed",
    response_model=FeedResponse,
    response_model_exclude_none=True,
    responses={422: {"model": ErrorResponse}, 503: {"model": ErrorResponse}},
)
def get_feed(
    request: Request,
    runtime: RuntimeDep,
    served: ServedDep,
    users: UsersDep,
    metrics: MetricsDep,
    query: Annotated[FeedQuery, Query()],
) -> FeedResponse:
    """A feed page: retrieve, filter, rank and re-rank; unknown users get a cold-start page."""
    shed_if_queued_too_long(request, runtime)
    runtime.catch_up()  # several workers: the others' events for this user, first
    now_ms = int(time.time() * 1000)
    snapshot = users.snapshot(query.user_id, now_ms)
    result = served.pipeline.recommend(query.user_id, query.n, snapshot, now_ms, query.tab)
    users.record_served(query.user_id, result.item_ids, now_ms)
    metrics.observe_feed(result.timings_s, result.counts, result.filtered)
    return to_response(query.user_id, result, served, query.debug)
