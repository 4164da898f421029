"""`POST /admin/reload`: check the model store now (bearer token; disabled without one)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from reelrec.serve.deps import AdminDep, RuntimeDep
from reelrec.serve.schemas import ErrorResponse, ReloadResponse

router = APIRouter(prefix="/admin", tags=["admin"])


@router.post(
    "/reload",
    response_model=ReloadResponse,
    responses={401: {"model": ErrorResponse}, 404: {"model": ErrorResponse},
               409: {"model": ErrorResponse}},
)  # fmt: skip
def reload_model(_: AdminDep, runtime: RuntimeDep) -> ReloadResponse:
    """Swap in the newest verified model version now; 409 if the newest was refused."""
    result = runtime.holder.check_now()
    if result.refused is not None:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"new model version refused, still serving {result.version}: {result.refused}",
        )
    return ReloadResponse(swapped=result.swapped, model_version=result.version)
