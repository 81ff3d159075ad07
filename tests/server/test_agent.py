"""The run agent's work detector: heartbeats say "busy" only when the process used the CPU (or a GPU)."""

from __future__ import annotations

import time

from tradelab.server.agent import Work


def test_work_is_busy_after_cpu_work_and_idle_after_sleeping() -> None:
    work = Work()
    deadline = time.process_time() + 0.2
    while time.process_time() < deadline:  # 0.2 s of CPU
        pass
    assert work.busy()
    time.sleep(0.3)  # a hung or waiting process: no CPU
    assert not work.busy()
