"""The control plane's tables (SQLAlchemy 2, typed). Alembic migrations create and change them.

Times are timezone-aware UTC. Configs and reports are JSON columns. A run moves through
:class:`RunState` only forwards; the worker's reconciler is the only writer of states after ``queued``,
except a run's own token, which reports ``running`` progress.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    """The current time, UTC, timezone-aware."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Base of every table."""

    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSON,
        list[Any]: JSON,
        datetime: DateTime(timezone=True),
    }


class RunState(StrEnum):
    """Where a run is: ``queued → starting → running → succeeded | failed | cancelled``."""

    QUEUED = "queued"
    STARTING = "starting"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        """Whether the run can no longer change state."""
        return self in (RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED)


class Token(Base):
    """A bearer token, stored as the SHA-256 of its secret: ``admin`` tokens, or ``run`` tokens scoped to one
    attempt of one run (see :func:`tradelab.server.security.run_token_open`)."""

    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    #: A run token's attempt of its run (``Run.attempts`` when it was issued): it expires when that attempt ends.
    attempt: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]


class Dataset(Base):
    """A dataset version registered from the candle store, with its validation report."""

    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("symbol", "timeframe", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    symbol: Mapped[str] = mapped_column(String(64))
    timeframe: Mapped[str] = mapped_column(String(16))
    version: Mapped[str] = mapped_column(String(64))
    rows: Mapped[int] = mapped_column(BigInteger)
    start: Mapped[datetime]
    end: Mapped[datetime]
    report: Mapped[dict[str, Any]]
    registered_at: Mapped[datetime] = mapped_column(default=utcnow)


class EnvConfigVersion(Base):
    """One immutable version of a named env config (validated against ``EnvConfig``)."""

    __tablename__ = "env_configs"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    config: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Experiment(Base):
    """An experiment config (validated against ``ExperimentConfig``), with tags and notes."""

    __tablename__ = "experiments"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    config: Mapped[dict[str, Any]]
    tags: Mapped[list[Any]] = mapped_column(default=list)
    notes: Mapped[str] = mapped_column(Text, default="")
    cloned_from: Mapped[int | None] = mapped_column(ForeignKey("experiments.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RunKind(StrEnum):
    """What a run's agent executes: training (the default), a sweep, an ensemble's evaluation, or a re-evaluation
    of another run on the newest data."""

    TRAIN = "train"
    SWEEP = "sweep"
    ENSEMBLE = "ensemble"
    EVALUATE = "evaluate"


class Run(Base):
    """One run of an experiment (one seed), from the queue to a final state."""

    __tablename__ = "runs"
    __table_args__ = (Index("ix_runs_state_queued", "state", "queued_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"), index=True)
    state: Mapped[str] = mapped_column(String(16), default=RunState.QUEUED)
    kind: Mapped[str] = mapped_column(String(16), default=RunKind.TRAIN, server_default=RunKind.TRAIN.value)
    #: What the kind needs (see :mod:`tradelab.server.routes.jobs`); None for a training run.
    params: Mapped[dict[str, Any] | None]
    seed: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=2)
    backend: Mapped[str] = mapped_column(String(32), default="local")
    idempotency_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    compute_id: Mapped[str | None] = mapped_column(String(128))
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    max_wall_time_s: Mapped[float | None] = mapped_column(Float)
    #: What the run's compute has cost, every attempt included (accrues while it runs).
    cost: Mapped[float] = mapped_column(Float, default=0.0)
    #: What the active attempt may still cost at worst; counted against the budgets beside ``cost``.
    reserved: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    #: What the active attempt has cost so far (part of ``cost``).
    attempt_cost: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    #: The last heartbeat that showed work (busy CPU or GPU), for the idle timeout.
    active_at: Mapped[datetime | None]
    #: How often an interruptible pod of the run was taken away (free retries, up to a limit).
    preemptions: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    gpu_type: Mapped[str | None] = mapped_column(String(64))
    #: The most the run may cost (its worst case is checked against it before every start).
    max_cost: Mapped[float | None] = mapped_column(Float)
    #: The worker that may start the claimed run (another takes over once ``start_lease_at`` is stale).
    start_lease: Mapped[str | None] = mapped_column(String(64))
    start_lease_at: Mapped[datetime | None]
    artifact_url: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    queued_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]


class MetricPoint(Base):
    """One value of one metric of a run at one training step."""

    __tablename__ = "metric_points"
    __table_args__ = (
        # Covering (migration 0002): a series reads from the index alone.
        Index("ix_metric_points_series", "run_id", "key", "step", "id", postgresql_include=["value"]),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(128))
    step: Mapped[int] = mapped_column(BigInteger)
    value: Mapped[float] = mapped_column(Float)


class RunLog(Base):
    """A line of a run's log."""

    __tablename__ = "run_logs"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    line: Mapped[str] = mapped_column(Text)


class Budget(Base):
    """A monthly spending cap: global (no experiment) or per experiment, in the compute's currency (USD)."""

    __tablename__ = "budgets"
    __table_args__ = (UniqueConstraint("experiment_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    experiment_id: Mapped[int | None] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    monthly_cap: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Watch(Base):
    """A run re-evaluated on the newest data every ``every_s`` seconds (an ``evaluate`` run the worker queues)."""

    __tablename__ = "watches"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    window_days: Mapped[int] = mapped_column(Integer)
    every_s: Mapped[float] = mapped_column(Float)
    backend: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_queued_at: Mapped[datetime | None]


class Worker(Base):
    """A live reconciler (``tradelab worker``), checked in every tick: ``/api/compute/backends`` reports a backend
    available while one of its workers is live (the RunPod key is on the worker's machine, not the API's), and a
    launch is checked against the hourly prices its workers know."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    backend: Mapped[str] = mapped_column(String(32), index=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: Hourly price by GPU type, "" for the worker's default GPU type (the ones it has looked up).
    prices: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Event(Base):
    """Something clients follow live (``/api/events``): a run's state change, new metrics."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(32))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    payload: Mapped[dict[str, Any]]
