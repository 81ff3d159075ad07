"""What an attempt's agent left in ``<run folder>/attempts/<k>/outcome.json`` for the worker.

The agent writes the file whole before its final report (and again when it gives up reporting), with the metric
points and log lines it had not delivered yet. When an attempt's compute ended without the run reporting a final
state (the API or its database was down), the worker records this outcome instead: a run that finished is never
recorded failed for want of a connection at its end.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from tradelab.compute.storage import filesystem
from tradelab.experiments.artifacts import RunStorage


class Outcome(BaseModel):
    """How an attempt ended, with the reports it had not delivered (see :mod:`tradelab.server.agent`)."""

    attempt: int
    state: Literal["succeeded", "failed"]
    artifact_url: str | None = None
    error: str | None = None
    metrics: list[dict[str, Any]] = []  # checked as they are stored (tradelab.server.reports)
    logs: list[str] = []


def outcome_name(attempt: int) -> str:
    """Where in the run's folder attempt ``attempt`` leaves its outcome (the agent writes it, the worker reads it)."""
    return f"attempts/{attempt}/outcome.json"


def read_outcome(run_url: str, attempt: int) -> Outcome | None:
    """The outcome attempt ``attempt`` of the run whose folder is ``run_url`` left; None when it left none.

    :raises ValueError: the file is not an outcome of that attempt (naming the file and what is wrong), or is a
        link leading out of the run's folder.
    :raises OSError: the storage could not be read (try again later).
    """
    name = outcome_name(attempt)
    fs, root = filesystem(run_url)
    if not fs.exists(f"{root.rstrip('/')}/{name}"):  # checked first: opening the folder would create it
        return None
    storage = RunStorage(run_url)
    try:
        outcome = Outcome.model_validate_json(storage.read_bytes(name))
    except ValidationError as error:  # each field and what is wrong with it, without echoing the file
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'the file'}: {e['msg']}" for e in error.errors())
        raise ValueError(f"{storage.path(name)} is not a valid outcome: {problems}") from error
    if outcome.attempt != attempt:
        raise ValueError(f"{storage.path(name)} is the outcome of attempt {outcome.attempt}, not {attempt}")
    return outcome
