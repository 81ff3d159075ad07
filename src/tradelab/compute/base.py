"""The interface every compute backend implements, so the reconciler drives local processes and cloud pods alike.

Every resource a backend starts is tagged with the lab's id, the run's id and an idempotency key, so that
``start`` is idempotent (a reconciler that crashed after starting and retries gets the same resource back)
orphans (resources no run owns) can be found with :meth:`ComputeBackend.list_owned`, and a start whose resource
was never recorded can be found again with :meth:`ComputeBackend.find`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar


class ComputeState(StrEnum):
    """What a compute resource is doing."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"  # exited 0
    FAILED = "failed"  # exited non-zero
    GONE = "gone"  # unknown to the backend (terminated, or never started)
    PREEMPTED = "preempted"  # an interruptible resource the provider took back


class ComputeError(RuntimeError):
    """A backend call failed. ``transient`` errors (rate limits, 5xx, network) may succeed when retried later.

    :param message: what failed, for the run's error and the worker's log.
    :param transient: whether retrying later may help.
    """

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True, slots=True)
class ComputeSpec:
    """What to run: a command with its environment (secrets go in ``env``, never in ``command``).

    A leading ``"tradelab"`` in ``command`` means the lab's own CLI: the local backend runs it with the
    worker's interpreter, a pod with its image's entrypoint.

    :param gpu_type: the accelerator to run on (a backend's own id, e.g. RunPod's GPU type id); None for its default.
    """

    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    max_wall_time_s: float | None = None
    gpu_type: str | None = None


@dataclass(frozen=True, slots=True)
class Handle:
    """A started resource: its backend and the backend's id for it."""

    backend: str
    resource_id: str


@dataclass(frozen=True, slots=True)
class Owned:
    """A resource the backend holds for this lab, with the run it was started for."""

    handle: Handle
    run_id: int
    idempotency_key: str


class ComputeBackend(ABC):
    """Starts, watches and stops the compute of runs."""

    name: ClassVar[str]

    @abstractmethod
    def price_per_hour(self, gpu_type: str | None) -> float:
        """What one resource of ``gpu_type`` costs per hour at most, for budget checks before a start."""

    @abstractmethod
    def start(self, run_id: int, spec: ComputeSpec, idempotency_key: str) -> Handle:
        """Start ``spec`` for run ``run_id``; with a key already used, return that resource instead.

        :raises ComputeError: the backend refused or could not be reached (``transient`` says whether to retry).
        """

    @abstractmethod
    def find(self, idempotency_key: str) -> Handle | None:
        """The resource started with ``idempotency_key``, running or ended, without starting one; None when the
        backend has none (never started, or gone): how a restarted reconciler adopts a start it never recorded."""

    @abstractmethod
    def status(self, handle: Handle) -> ComputeState:
        """The resource's state."""

    @abstractmethod
    def logs(self, handle: Handle, tail: int = 100) -> list[str]:
        """The last ``tail`` lines of the resource's output."""

    @abstractmethod
    def terminate(self, handle: Handle) -> None:
        """Stop the resource (idempotent: terminating a gone resource does nothing)."""

    @abstractmethod
    def list_owned(self) -> list[Owned]:
        """Every live resource this lab owns on the backend."""

    @abstractmethod
    def cost_so_far(self, handle: Handle) -> float:
        """What the resource has cost up to now (its final cost once it ended; 0 when it is unknown)."""
