"""The "image" of the reconciler's RunPod tests: a stand-in for the run agent that reports through the database.

The fake RunPod runs ``python -m tests.server.stub_pod worker run --run-id N --seed S`` in a pod. It marks the
run ``running`` with a heartbeat, works for ``$STUB_SECONDS``, then marks it ``succeeded`` (as the agent would
through the API) and exits. ``$STUB_DB_URL`` is the control plane's database.
"""

from __future__ import annotations

import os
import time

from tradelab.server.db import make_engine, session_factory, transaction
from tradelab.server.models import Run, RunState, utcnow
from tradelab.server.routes.runs import change_state


def report(run_id: int, state: RunState) -> None:
    """Move the run to ``state`` (when it is still active) with a fresh heartbeat."""
    engine = make_engine(os.environ["STUB_DB_URL"])
    with transaction(session_factory(engine)) as session:
        run = session.get(Run, run_id)
        if run is not None and not RunState(run.state).final:
            run.heartbeat_at = run.active_at = utcnow()
            change_state(session, run, state)
    engine.dispose()


if __name__ == "__main__":
    run = int(os.environ["TRADELAB_RUN_ID"])
    report(run, RunState.RUNNING)
    time.sleep(float(os.environ.get("STUB_SECONDS", "1")))
    report(run, RunState.SUCCEEDED)
