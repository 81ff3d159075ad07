"""The run agent: its work detector (heartbeats say "busy" only when the process used the CPU or a GPU), and its
reporter, which retries with backoff until the deadline, stops at a refusal, and sends what waited in order."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from tradelab.server.agent import (
    FIRST_DELAY_S,
    MAX_DELAY_S,
    PATIENCE_S,
    ApiUnreachableError,
    Reporter,
    ReportRefusedError,
    Work,
)


def test_work_is_busy_after_cpu_work_and_idle_after_sleeping() -> None:
    work = Work()
    deadline = time.process_time() + 0.2
    while time.process_time() < deadline:  # 0.2 s of CPU
        pass
    assert work.busy()
    time.sleep(0.3)  # a hung or waiting process: no CPU
    assert not work.busy()


class FakeTime:
    """A clock only the reporter's sleep moves: tries are counted and delayed without waiting."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self.delays: list[float] = []

    def sleep(self, delay: float) -> None:
        self.delays.append(delay)
        self.now += delay

    def clock(self) -> float:
        return self.now


def _reporter(
    answers: list[Exception | int], time_: FakeTime, deadline: float | None = None
) -> tuple[Reporter, list[tuple[str, str, Any]]]:
    """A reporter whose API gives ``answers`` in turn (an exception raised, or a status), then 201s; the requests
    that API got."""
    received: list[tuple[str, str, Any]] = []  # method, path, JSON body

    def answer(request: httpx.Request) -> httpx.Response:
        received.append((request.method, request.url.path, json.loads(request.content) if request.content else None))
        if answers:
            given = answers.pop(0)
            if isinstance(given, Exception):
                raise given
            return httpx.Response(given, json={"detail": "no"})
        return httpx.Response(201, json={})

    reporter = Reporter(
        "http://api",
        "secret",
        7,
        deadline=deadline,
        sleep=time_.sleep,
        clock=time_.clock,
        transport=httpx.MockTransport(answer),
    )
    return reporter, received


POINT = {"key": "val/sharpe", "step": 512, "value": 1.0}


def test_a_delivery_is_retried_with_doubling_delays_until_the_api_is_back() -> None:
    time_ = FakeTime()
    down = httpx.ConnectError("connection refused")
    reporter, received = _reporter([down, down, down, 503], time_)
    reporter.outbox.add_points([POINT])
    reporter.deliver()
    assert time_.delays == [FIRST_DELAY_S, 2 * FIRST_DELAY_S, 4 * FIRST_DELAY_S, 8 * FIRST_DELAY_S]
    assert received[-1] == ("POST", "/api/runs/7/metrics", {"points": [POINT]})
    assert len(received) == 5 and reporter.outbox.pending() == ([], [])


def test_delays_are_capped_and_the_deadline_ends_the_tries_keeping_what_is_undelivered() -> None:
    time_ = FakeTime()
    reporter, received = _reporter([httpx.ConnectError("refused")] * 100, time_, deadline=time_.now + 120)
    reporter.outbox.add_points([POINT])
    with pytest.raises(ApiUnreachableError):
        reporter.deliver()
    assert time_.delays == [0.5, 1, 2, 4, 8, 16, MAX_DELAY_S, MAX_DELAY_S]  # the next 30 s would pass the deadline
    assert len(received) == len(time_.delays) + 1  # a try before each wait and after the last
    assert time_.now <= 1_000.0 + 120 and reporter.outbox.pending() == ([POINT], [])
    unbounded = FakeTime()
    patient, _ = _reporter([httpx.ConnectError("refused")] * 100, unbounded)  # no deadline given: PATIENCE_S
    with pytest.raises(ApiUnreachableError):
        patient.patiently("GET", "spec")
    assert PATIENCE_S - MAX_DELAY_S < sum(unbounded.delays) <= PATIENCE_S


def test_a_refusal_ends_the_delivery_at_once() -> None:
    time_ = FakeTime()
    reporter, received = _reporter([409], time_)
    reporter.outbox.add_points([POINT])
    with pytest.raises(ReportRefusedError, match="409"):
        reporter.deliver()
    assert time_.delays == [] and len(received) == 1
    assert reporter.outbox.pending() == ([POINT], [])  # left for outcome.json


def test_a_conflict_after_a_lost_answer_means_the_state_was_recorded_by_the_lost_try() -> None:
    for refusal in (409, 401):  # the move refused, or the token expired with the attempt the lost try ended
        lost, _ = _reporter([httpx.ReadTimeout("no answer"), refusal], FakeTime())
        assert lost.patiently("POST", "status", {"state": "succeeded"}).status_code == refusal
    refused, _ = _reporter([httpx.ConnectError("refused"), 409], FakeTime())  # the first try never reached the API
    with pytest.raises(ReportRefusedError):
        refused.patiently("POST", "status", {"state": "succeeded"})


def test_reports_that_fail_wait_and_go_out_in_the_order_they_were_made() -> None:
    reporter, received = _reporter([httpx.ConnectError("refused")], FakeTime())
    reporter.metrics(512, {"sharpe": 1.0, "trades": 3, "note": "x", "bad": float("nan")}, "val")  # one try: fails
    reporter.outbox.add_line("a line")
    reporter.metrics(1024, {"sharpe": 2.0}, "val")  # delivers what waited with the new point
    posted = [body for _, _, body in received[1:]]
    points = [("val/sharpe", 512, 1.0), ("val/trades", 512, 3.0), ("val/sharpe", 1024, 2.0)]
    assert posted == [
        {"points": [{"key": key, "step": step, "value": value} for key, step, value in points]},
        {"lines": ["a line"]},
    ]
    assert reporter.outbox.pending() == ([], [])
