"""The run agent: what a compute resource executes for one run (``tradelab agent --run-id N``).

It executes the job of the run's kind (:mod:`tradelab.server.jobs`; training by default) and reports to the
control plane with the run's own token: ``running`` at the start, a heartbeat every few seconds (saying
whether the process did CPU or GPU work since the last one, for the idle timeout), every validation's
metrics, the log, and ``succeeded`` (with the artifact folder) or ``failed`` (with the error) at the end.

The token, the API URL and the run's folder arrive in the environment (``TRADELAB_RUN_TOKEN``,
``TRADELAB_API_URL``, ``TRADELAB_RUN_URL``), never on the command line; the config is read from the API. On a
pod, the dataset is first pulled from ``TRADELAB_DATA_URL``. A run whose folder already holds a checkpoint (an
earlier attempt was preempted or killed) resumes from it instead of starting over.
"""

from __future__ import annotations

import logging
import math
import os
import resource
import threading
import time
import traceback
from typing import Any

import httpx

from tradelab.settings import get_settings

HEARTBEAT_S = 5.0
logger = logging.getLogger(__name__)


class Reporter:
    """Posts a run's status, heartbeats, metrics and log lines to the API."""

    def __init__(self, api_url: str, token: str, run_id: int) -> None:
        self.run_id = run_id
        self.client = httpx.Client(base_url=api_url, headers={"Authorization": f"Bearer {token}"}, timeout=30)

    def post(self, what: str, body: dict[str, Any]) -> None:
        """POST ``body`` to ``/api/runs/<id>/<what>``, raising on an error status."""
        self.client.post(f"/api/runs/{self.run_id}/{what}", json=body).raise_for_status()

    def metrics(self, step: int, values: dict[str, Any], prefix: str) -> None:
        """The finite values as metric points ``<prefix>/<name>`` at ``step``."""
        points = [
            {"key": f"{prefix}/{key}", "step": step, "value": float(value)}
            for key, value in values.items()
            if isinstance(value, int | float) and math.isfinite(value)
        ]
        if points:
            self.post("metrics", {"points": points})

    def beat_until(self, stop: threading.Event, log: LogForwarder) -> None:
        """Every :data:`HEARTBEAT_S` seconds until ``stop``: a heartbeat, then the log lines gathered since
        (errors are retried at the next beat; lines are kept until they are delivered)."""
        work = Work()
        while not stop.wait(HEARTBEAT_S):
            try:
                self.post("heartbeat", {"busy": work.busy()})
                log.flush_to(self)
            except httpx.HTTPError:
                continue


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


class LogForwarder(logging.Handler):
    """Gathers the ``tradelab`` log records of the run, for the reporter to post in batches."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        self.lines: list[str] = []
        self.guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the formatted record."""
        with self.guard:
            self.lines.append(self.format(record))

    def flush_to(self, reporter: Reporter) -> None:
        """Post the gathered lines as the run's log (they stay gathered if the post fails)."""
        with self.guard:
            lines = list(self.lines)
        if lines:
            reporter.post("logs", {"lines": lines})
            with self.guard:
                del self.lines[: len(lines)]


def run_agent(run_id: int, seed: int) -> int:
    """Execute run ``run_id`` (the job of its kind, see :mod:`tradelab.server.jobs`) and report it; the process's
    exit status (0 on success)."""
    from tradelab.experiments.config import load_config
    from tradelab.server.jobs import JOBS, Job

    reporter = Reporter(os.environ["TRADELAB_API_URL"], os.environ["TRADELAB_RUN_TOKEN"], run_id)
    response = reporter.client.get(f"/api/runs/{run_id}/spec")
    response.raise_for_status()
    spec = response.json()
    reporter.post("status", {"state": "running"})
    log = LogForwarder()
    logging.getLogger("tradelab").addHandler(log)
    logging.getLogger("tradelab").setLevel(logging.INFO)
    stop = threading.Event()
    beating = threading.Thread(target=reporter.beat_until, args=(stop, log), daemon=True)
    beating.start()
    try:
        config = load_config(spec["config"])
        out = os.environ.get("TRADELAB_RUN_URL") or str(get_settings().home / "artifacts" / "runs" / f"run-{run_id}")
        if os.environ.get("TRADELAB_DATA_URL"):
            from tradelab.compute.storage import pull_dataset

            dataset = config.env.dataset
            report = pull_dataset(dataset.symbol, dataset.timeframe, os.environ["TRADELAB_DATA_URL"])
            logger.info("run %d: dataset pulled (%s)", run_id, report)
        job = Job(run_id, config, seed, spec.get("params") or {}, spec.get("inputs") or [], out, reporter)
        url = JOBS[spec.get("kind", "train")](job)
        log.flush_to(reporter)
        reporter.post("status", {"state": "succeeded", "artifact_url": url})
        return 0
    except Exception:
        error = traceback.format_exc()
        logger.error("run %d failed:\n%s", run_id, error)
        log.flush_to(reporter)
        reporter.post("status", {"state": "failed", "error": error[-4000:]})
        return 1
    finally:
        stop.set()
        beating.join(timeout=HEARTBEAT_S + 1)
        reporter.client.close()
