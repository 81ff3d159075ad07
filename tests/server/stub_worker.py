"""A reconciler whose runs execute a stand-in command instead of the run agent (for tests without the API).

``python -m tests.server.stub_worker DB_URL COMPUTE_ROOT SECONDS`` reconciles forever; the stand-in of every
run sleeps ``SECONDS`` and exits 0 (without reporting, so the reconciler sees a process that ended silently).
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from sqlalchemy.orm import Session

from tradelab.compute.base import ComputeSpec
from tradelab.compute.local import LocalBackend
from tradelab.server.db import make_engine
from tradelab.server.models import Run
from tradelab.server.worker import Reconciler, WorkerConfig


class StubReconciler(Reconciler):
    """Runs ``sleep <seconds>`` for every run."""

    seconds = 30.0

    def _spec(self, session: Session, run: Run) -> ComputeSpec:
        return ComputeSpec([sys.executable, "-c", f"import time; time.sleep({self.seconds})"])


def stub_reconciler(db_url: str, root: Path, seconds: float, **config: object) -> StubReconciler:
    """A :class:`StubReconciler` over ``db_url`` with a local backend in ``root``, the runs' folders beside it."""
    config = {"storage_url": (root.parent / "artifacts").as_uri(), **config}
    reconciler = StubReconciler(make_engine(db_url), LocalBackend(root, hourly_price=1.0), WorkerConfig(**config))  # type: ignore[arg-type]
    reconciler.seconds = seconds
    return reconciler


if __name__ == "__main__":
    url, compute_root, sleep_s = sys.argv[1], Path(sys.argv[2]), float(sys.argv[3])
    stub_reconciler(url, compute_root, sleep_s, concurrency=4).run_forever(threading.Event(), 0.2)
