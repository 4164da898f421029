"""HTTP routes, one module per resource; `api_router` includes them all."""

from fastapi import APIRouter

from reelrec.serve.routes import admin, events, feed, health, viewer

api_router = APIRouter()
api_router.include_router(feed.router)
api_router.include_router(events.router)
api_router.include_router(health.router)
api_router.include_router(admin.router)
api_router.include_router(viewer.router)

__all__ = ["api_router"]
