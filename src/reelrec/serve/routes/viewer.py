"""`GET /`: the feed viewer page (static HTML + JS, no build step)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

STATIC = Path(__file__).resolve().parent.parent / "static"
router = APIRouter(tags=["viewer"])


@router.get("/", include_in_schema=False)
async def index() -> FileResponse:
    """The viewer page."""
    return FileResponse(STATIC / "index.html", media_type="text/html")
