"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from reelrec.serve.deps import RuntimeDep
from reelrec.serve.schemas import Health, Ready

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is up and answering."""
    return Health(status="ok")


@router.get("/readyz", response_model=Ready, responses={503: {"model": Ready}})
async def readyz(runtime: RuntimeDep, response: Response) -> Ready:
    """Ready when a model is loaded (503 until then)."""
    served = runtime.holder.current
    if served is None:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return Ready(ready=False, model_version=None)
    return Ready(ready=True, model_version=served.version, model_path=str(served.path))


@router.get("/metrics", response_class=Response)
async def metrics(runtime: RuntimeDep) -> Response:
    """Prometheus text format."""
    return Response(generate_latest(runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)
