"""The run agent: what a compute resource executes for one run (``tradelab agent --run-id N``).

It trains and tests the run's experiment with the ordinary runner, and reports to the control plane with
the run's own token: ``running`` at the start, a heartbeat every few seconds, every validation's metrics,
the log, and ``succeeded`` (with the artifact folder) or ``failed`` (with the error) at the end. The token,
the API URL and the config arrive in the environment (``TRADELAB_RUN_TOKEN``, ``TRADELAB_API_URL``,
``TRADELAB_RUN_CONFIG``), never on the command line.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
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
        while not stop.wait(HEARTBEAT_S):
            try:
                self.post("heartbeat", {})
                log.flush_to(self)
            except httpx.HTTPError:
                continue


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
    """Run the experiment of run ``run_id`` and report it; the process's exit status (0 on success)."""
    from tradelab.experiments.config import load_config
    from tradelab.experiments.runner import run_experiment

    reporter = Reporter(os.environ["TRADELAB_API_URL"], os.environ["TRADELAB_RUN_TOKEN"], run_id)
    reporter.post("status", {"state": "running"})
    log = LogForwarder()
    logging.getLogger("tradelab").addHandler(log)
    logging.getLogger("tradelab").setLevel(logging.INFO)
    stop = threading.Event()
    beating = threading.Thread(target=reporter.beat_until, args=(stop, log), daemon=True)
    beating.start()
    logger.info("run %d: training seed %d", run_id, seed)
    try:
        config = load_config(json.loads(os.environ["TRADELAB_RUN_CONFIG"]))
        out = os.environ.get("TRADELAB_STORAGE_URL") or str(get_settings().home / "artifacts" / f"run-{run_id}")

        def on_evaluation(timesteps: int, metrics: dict[str, Any]) -> bool:
            reporter.metrics(timesteps, metrics, "val")
            return True

        (outcome,) = run_experiment(config, out, seed=seed, progress=False, on_evaluation=on_evaluation)
        reporter.metrics(outcome.results["timesteps"], outcome.results["test"]["agent"], "test")
        logger.info("run %d: stopped by %s; artifacts in %s", run_id, outcome.results["stopped_by"], outcome.url)
        log.flush_to(reporter)
        reporter.post("status", {"state": "succeeded", "artifact_url": outcome.url})
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
