"""``/compute/backends``: where runs can execute (this machine, or RunPod GPU pods)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from tradelab.server.deps import require_admin
from tradelab.settings import get_settings

router = APIRouter(prefix="/compute", tags=["compute"], dependencies=[Depends(require_admin)])


@dataclass(frozen=True)
class Backend:
    """A compute backend: its name, what it is, and whether it can take runs now (e.g. credentials present)."""

    name: str
    description: str
    available: Callable[[], bool]


#: Every compute backend, by name.
BACKENDS: dict[str, Backend] = {
    "local": Backend("local", "this machine: runs execute in worker subprocesses", lambda: True),
    "runpod": Backend(
        "runpod",
        "RunPod GPU pods (a worker started with --backend runpod launches them; needs TRADELAB_RUNPOD_API_KEY)",
        lambda: get_settings().runpod_api_key is not None,
    ),
}


class ComputeBackendPublic(BaseModel):
    """A compute backend as the API shows it."""

    name: str
    description: str
    available: bool


class ComputeBackendsPublic(BaseModel):
    """Every compute backend."""

    data: list[ComputeBackendPublic]
    count: int


@router.get("/backends")
def list_backends() -> ComputeBackendsPublic:
    """The compute backends and whether each is available now."""
    backends = BACKENDS.values()
    data = [ComputeBackendPublic(name=b.name, description=b.description, available=b.available()) for b in backends]
    return ComputeBackendsPublic(data=data, count=len(data))
