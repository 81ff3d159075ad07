"""The run agent: what a compute resource executes for one run (``tradelab agent --run-id N``).

It executes the job of the run's kind (:mod:`tradelab.server.jobs`; training by default) and reports to the
control plane with the run's own token: ``running`` at the start, a heartbeat every few seconds (saying
whether the process did CPU or GPU work since the last one, for the idle timeout), every validation's
metrics, the log, and ``succeeded`` (with the artifact folder) or ``failed`` (with the error) at the end.

The token, the API URL and the run's folder arrive in the environment (``TRADELAB_RUN_TOKEN``,
``TRADELAB_API_URL``, ``TRADELAB_RUN_URL``), never on the command line, with the attempt's number and the end of
its wall time (``TRADELAB_ATTEMPT``, ``TRADELAB_DEADLINE`` in epoch seconds); the config is read from the API. On
a pod, the dataset is first pulled from ``TRADELAB_DATA_URL``. A run whose folder already holds a checkpoint (an
earlier attempt was preempted or killed) resumes from it instead of starting over.

What survives an outage of the API or its database:

- Metric points and log lines wait in the reporter's :class:`Outbox` until the API has taken them, and go out in
  the order they were made; the training never fails because of the API, nor waits on it longer than one try
  per report.
- The first read of the spec and the final posts are retried with exponential backoff on transient failures (no
  connection, a timeout, a 5xx) until the attempt's deadline (:data:`PATIENCE_S` when the worker gave none). The
  API stores a batch delivered twice once (:mod:`tradelab.server.reports`), so a post whose answer was lost is
  simply sent again.
- A refusal (a 4xx other than 429: the run is final, the token no longer valid) ends the delivery at once.
- Before its final posts the agent writes ``<run folder>/attempts/<attempt>/outcome.json`` (its state, artifact
  folder or error, and every report not delivered yet), and rewrites it with what is left when it gives up: the
  worker records from it a result the API never heard of.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import resource
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import httpx

from tradelab.settings import get_settings

HEARTBEAT_S = 5.0
#: The first wait before a delivery is tried again; it doubles after each failure, up to :data:`MAX_DELAY_S`.
FIRST_DELAY_S = 0.5
MAX_DELAY_S = 30.0
#: How long a delivery keeps trying when the worker gave the attempt no deadline.
PATIENCE_S = 600.0
#: The most metric points and log lines per post.
POINTS_PER_POST = 5_000
LINES_PER_POST = 1_000
#: What a run's status post is answered once its state was recorded: the move is refused, or its token expired.
_STATE_TAKEN = frozenset({httpx.codes.CONFLICT, httpx.codes.UNAUTHORIZED})
logger = logging.getLogger(__name__)


class ReportRefusedError(Exception):
    """The API refused a report for good (a 4xx: the run is final, its token no longer valid): never retried."""

    def __init__(self, response: httpx.Response) -> None:
        request = response.request
        super().__init__(f"{request.method} {request.url.path}: {response.status_code} {response.text[:500]}")
        self.response = response


class ApiUnreachableError(Exception):
    """The API did not take a report before the delivery's deadline (it failed only transiently)."""


class Outbox:
    """A run's metric points and log lines not delivered yet, oldest first (what ``outcome.json`` lists)."""

    def __init__(self) -> None:
        self.points: list[dict[str, Any]] = []
        self.lines: list[str] = []
        self.guard = threading.Lock()  # the two lists
        self.sending = threading.Lock()  # one sender at a time, so batches go out in order

    def add_points(self, points: list[dict[str, Any]]) -> None:
        """Queue metric points (mappings with key, step and value)."""
        with self.guard:
            self.points.extend(points)

    def add_line(self, line: str) -> None:
        """Queue a log line."""
        with self.guard:
            self.lines.append(line)

    def pending(self) -> tuple[list[dict[str, Any]], list[str]]:
        """Copies of the points and lines not delivered yet."""
        with self.guard:
            return list(self.points), list(self.lines)

    def send(self, post: Callable[[str, dict[str, Any]], object], *, wait: bool = True) -> None:
        """``post("metrics" | "logs", body)`` what is pending, oldest first, each batch dropped once posted.

        What ``post`` raises is raised, its batch and the later ones still pending. Without ``wait``, returns at
        once while another thread is sending.
        """
        if not self.sending.acquire(blocking=wait):
            return
        try:
            while batch := self._next():
                what, body, size = batch
                post(what, body)
                with self.guard:
                    del (self.points if what == "metrics" else self.lines)[:size]
        finally:
            self.sending.release()

    def _next(self) -> tuple[str, dict[str, Any], int] | None:
        with self.guard:
            if self.points:
                points = self.points[:POINTS_PER_POST]
                return "metrics", {"points": points}, len(points)
            if self.lines:
                lines = self.lines[:LINES_PER_POST]
                return "logs", {"lines": lines}, len(lines)
            return None


class Reporter:
    """Reports a run to the API: status, heartbeats, and metrics and log lines through its :class:`Outbox`.

    :param deadline: when deliveries stop retrying (epoch seconds, as ``clock`` tells); None for
        :data:`PATIENCE_S` after each delivery's first try.
    :param sleep: waits between tries (tests pass one that records the delays instead of waiting).
    :param clock: the time now, in epoch seconds.
    :param transport: httpx's transport (tests pass a mock).
    """

    def __init__(
        self,
        api_url: str,
        token: str,
        run_id: int,
        *,
        deadline: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.run_id = run_id
        self.deadline, self.sleep, self.clock = deadline, sleep, clock
        self.outbox = Outbox()
        headers = {"Authorization": f"Bearer {token}"}
        self.client = httpx.Client(base_url=api_url, headers=headers, timeout=30, transport=transport)

    def request(self, method: str, what: str, body: dict[str, Any] | None = None) -> httpx.Response:
        """One try of ``method /api/runs/<id>/<what>``.

        :raises ReportRefusedError: for a 4xx answer (but 429, which is transient).
        :raises httpx.HTTPError: for a transient failure (no connection, a timeout, a 5xx).
        """
        response = self.client.request(method, f"/api/runs/{self.run_id}/{what}", json=body)
        if response.is_client_error and response.status_code != httpx.codes.TOO_MANY_REQUESTS:
            raise ReportRefusedError(response)
        return response.raise_for_status()

    def patiently(self, method: str, what: str, body: dict[str, Any] | None = None) -> httpx.Response:
        """:meth:`request`, tried again after each transient failure with a doubling delay, until the deadline.

        A status refused (409, or 401 for a token that expired with its attempt) after a try whose answer was lost
        counts as delivered: the lost try was applied, and a state can be reported once.

        :raises ReportRefusedError: for a 4xx answer.
        :raises ApiUnreachableError: when the next try would come after the deadline.
        """
        give_up = self.deadline if self.deadline is not None else self.clock() + PATIENCE_S
        delay, answer_lost = FIRST_DELAY_S, False
        while True:
            try:
                return self.request(method, what, body)
            except ReportRefusedError as refusal:
                if answer_lost and what == "status" and refusal.response.status_code in _STATE_TAKEN:
                    return refusal.response
                raise
            except httpx.HTTPError as error:
                if self.clock() + delay > give_up:
                    raise ApiUnreachableError(f"{method} {what}: {error!r}") from error
                if delay == FIRST_DELAY_S:
                    logger.warning("run %d: %s %s failed (%r), trying again", self.run_id, method, what, error)
                answer_lost = answer_lost or _maybe_applied(error)
                self.sleep(delay)
                delay = min(2 * delay, MAX_DELAY_S)

    def metrics(self, step: int, values: dict[str, Any], prefix: str) -> None:
        """Queue the finite values as metric points ``<prefix>/<name>`` at ``step``, and try to deliver them."""
        points = [
            {"key": f"{prefix}/{key}", "step": step, "value": float(value)}
            for key, value in values.items()
            if isinstance(value, int | float) and math.isfinite(value)
        ]
        self.outbox.add_points(points)
        self.flush()

    def flush(self) -> None:
        """Try once to deliver what is pending, unless another thread is at it; what fails stays pending."""
        try:
            self.outbox.send(lambda what, body: self.request("POST", what, body), wait=False)
        except (ReportRefusedError, httpx.HTTPError):
            return

    def deliver(self) -> None:
        """Deliver everything pending, :meth:`patiently`.

        :raises ReportRefusedError: when the API refused a batch.
        :raises ApiUnreachableError: when the deadline came first.
        """
        self.outbox.send(lambda what, body: self.patiently("POST", what, body))

    def beat_until(self, stop: threading.Event) -> None:
        """Every :data:`HEARTBEAT_S` seconds until ``stop``: a heartbeat, then one try at what is pending."""
        work = Work()
        while not stop.wait(HEARTBEAT_S):
            with contextlib.suppress(ReportRefusedError, httpx.HTTPError):
                self.request("POST", "heartbeat", {"busy": work.busy()})
            self.flush()


class Work:
    """Whether the process worked since the last look: it used CPU, or a GPU it sees was busy."""

    #: CPU seconds per wall second below which the process counts as idle (a hung or waiting process).
    MIN_CPU_SHARE = 0.02

    def __init__(self) -> None:
        self.cpu, self.at = self._cpu(), time.monotonic()

    def busy(self) -> bool:
        """True when the CPU share since the last call reached :attr:`MIN_CPU_SHARE` or a GPU was in use."""
        cpu, at = self._cpu(), time.monotonic()
        share = (cpu - self.cpu) / max(at - self.at, 1e-9)
        self.cpu, self.at = cpu, at
        return share >= self.MIN_CPU_SHARE or _gpu_busy()

    @staticmethod
    def _cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime


def _gpu_busy() -> bool:
    """Whether a visible GPU reports utilisation (False without CUDA or NVML)."""
    import torch

    if not torch.cuda.is_available():
        return False
    try:
        return torch.cuda.utilization() > 0
    except Exception:  # NVML missing: the CPU share decides
        return False


def _maybe_applied(error: httpx.HTTPError) -> bool:
    """Whether a failed try may have been applied all the same: its request went out and its answer was lost."""
    return isinstance(error, httpx.TransportError) and not isinstance(
        error, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout
    )


class LogForwarder(logging.Handler):
    """Queues the ``tradelab`` log records of the run in the reporter's outbox, which posts them in batches."""

    def __init__(self, outbox: Outbox) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        self.outbox = outbox

    def emit(self, record: logging.LogRecord) -> None:
        """Queue the formatted record."""
        self.outbox.add_line(self.format(record))


def run_agent(
    run_id: int, seed: int, *, sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.time
) -> int:
    """Execute run ``run_id`` (the job of its kind, see :mod:`tradelab.server.jobs`) and report it; the process's
    exit status: 0 when the job succeeded, even if its report was left to the worker in ``outcome.json``.

    :param sleep: and ``clock``: see :class:`Reporter`.
    """
    deadline = os.environ.get("TRADELAB_DEADLINE")
    attempt = int(os.environ.get("TRADELAB_ATTEMPT") or 1)
    out = os.environ.get("TRADELAB_RUN_URL") or str(get_settings().home / "artifacts" / "runs" / f"run-{run_id}")
    reporter = Reporter(
        os.environ["TRADELAB_API_URL"],
        os.environ["TRADELAB_RUN_TOKEN"],
        run_id,
        deadline=float(deadline) if deadline else None,
        sleep=sleep,
        clock=clock,
    )
    try:
        spec = reporter.patiently("GET", "spec").json()
        reporter.patiently("POST", "status", {"state": "running"})
    except (ReportRefusedError, ApiUnreachableError) as error:
        logger.error("run %d: not started: %s", run_id, error)
        reporter.client.close()
        return 1
    log = LogForwarder(reporter.outbox)
    tradelab_logger = logging.getLogger("tradelab")
    tradelab_logger.addHandler(log)
    tradelab_logger.setLevel(logging.INFO)
    stop = threading.Event()
    beating = threading.Thread(target=reporter.beat_until, args=(stop,), daemon=True)
    beating.start()
    try:
        outcome = _execute(run_id, seed, spec, out, reporter)
        _write_outcome(run_id, out, attempt, outcome, reporter.outbox)
        try:
            reporter.deliver()
            reporter.patiently("POST", "status", {key: value for key, value in outcome.items() if value is not None})
        except (ReportRefusedError, ApiUnreachableError) as error:
            logger.warning("run %d: gave up reporting its end, left in outcome.json: %s", run_id, error)
            _write_outcome(run_id, out, attempt, outcome, reporter.outbox)
        return 0 if outcome["state"] == "succeeded" else 1
    finally:
        stop.set()
        beating.join(timeout=HEARTBEAT_S + 1)
        tradelab_logger.removeHandler(log)
        reporter.client.close()


def _execute(run_id: int, seed: int, spec: dict[str, Any], out: str, reporter: Reporter) -> dict[str, Any]:
    """Run the spec's job: the outcome's ``state``, ``artifact_url`` and ``error``."""
    from tradelab.experiments.config import load_config
    from tradelab.server.jobs import JOBS, Job

    try:
        config = load_config(spec["config"])
        if os.environ.get("TRADELAB_DATA_URL"):
            from tradelab.compute.storage import pull_dataset

            dataset = config.env.dataset
            report = pull_dataset(dataset.symbol, dataset.timeframe, os.environ["TRADELAB_DATA_URL"])
            logger.info("run %d: dataset pulled (%s)", run_id, report)
        job = Job(run_id, config, seed, spec.get("params") or {}, spec.get("inputs") or [], out, reporter)
        return {"state": "succeeded", "artifact_url": JOBS[spec.get("kind", "train")](job), "error": None}
    except Exception:
        error = traceback.format_exc()
        logger.error("run %d failed:\n%s", run_id, error)
        return {"state": "failed", "artifact_url": None, "error": error[-4000:]}


def _write_outcome(run_id: int, out: str, attempt: int, outcome: dict[str, Any], outbox: Outbox) -> None:
    """Write ``<out>/attempts/<attempt>/outcome.json`` whole: ``outcome`` and what ``outbox`` has not delivered yet.

    A storage failure is logged, not raised: the API may still take the report.
    """
    from tradelab.experiments.artifacts import RunStorage
    from tradelab.server.outcomes import outcome_name

    points, lines = outbox.pending()
    document = {"attempt": attempt, **outcome, "metrics": points, "logs": lines}
    try:
        RunStorage(out).write_json(outcome_name(attempt), document)
    except Exception:  # any storage's failure: the report may still reach the API
        logger.exception("run %d: could not write the outcome of attempt %d to %s", run_id, attempt, out)
