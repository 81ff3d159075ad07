"""``/compute/backends``: where runs can execute (this machine, or RunPod GPU pods), and whether a worker of each
is live to take them.

A run executes only when a worker of its backend claims it, and the RunPod key lives on that worker's machine,
never the API server's: so a backend is available while one of its workers checks in, whatever the server has.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from tradelab.server.deps import SessionDep, require_admin
from tradelab.server.models import Worker, utcnow

router = APIRouter(prefix="/compute", tags=["compute"], dependencies=[Depends(require_admin)])

#: A worker checked in this recently is live (it checks in every tick; a tick that starts pods can take a while).
WORKER_LIVE_S = 120.0


@dataclass(frozen=True)
class Backend:
    """A compute backend: its name and what it is."""

    name: str
    description: str


#: Every compute backend, by name.
BACKENDS: dict[str, Backend] = {
    "local": Backend("local", "this machine: runs execute in worker subprocesses"),
    "runpod": Backend(
        "runpod",
        "RunPod GPU pods, launched by a worker started with --backend runpod (TRADELAB_RUNPOD_API_KEY on its machine)",
    ),
}


def live_workers(session: Session, backend: str) -> list[Worker]:
    """The workers of ``backend`` that checked in within :data:`WORKER_LIVE_S`."""
    since = utcnow() - timedelta(seconds=WORKER_LIVE_S)
    return list(session.scalars(select(Worker).where(Worker.backend == backend, Worker.seen_at >= since)))


class ComputeBackendPublic(BaseModel):
    """A compute backend as the API shows it."""

    name: str
    description: str
    available: bool = Field(description="a live worker of this backend takes its runs now")
    workers: int = Field(description="the live workers of this backend")
    reason: str | None = Field(description="why it is unavailable; null when available")


class ComputeBackendsPublic(BaseModel):
    """Every compute backend."""

    data: list[ComputeBackendPublic]
    count: int


@router.get("/backends")
def list_backends(session: SessionDep) -> ComputeBackendsPublic:
    """The compute backends and whether a live worker of each takes runs now (else they wait in the queue)."""
    data = []
    for backend in BACKENDS.values():
        workers = len(live_workers(session, backend.name))
        reason = (
            None
            if workers
            else f"no {backend.name} worker checked in within {WORKER_LIVE_S:.0f} s: runs wait in the queue until "
            f"`tradelab worker --backend {backend.name}` runs"
        )
        data.append(ComputeBackendPublic(**vars(backend), available=workers > 0, workers=workers, reason=reason))
    return ComputeBackendsPublic(data=data, count=len(data))
