"""Fuzz the API from its own OpenAPI schema (schemathesis), on SQLite and Postgres.

With an admin token no answer is a 5xx and every answer is documented (status code and body schema); every
mutating endpoint refuses a missing or wrong token (401), admin endpoints refuse a run token (403); and no
answer ever holds a token's secret.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import Case
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.specs.openapi.schemas import OpenApiSchema

from tests.experiments.runs import tiny_config
from tradelab.data.store import Store
from tradelab.server.app import create_app
from tradelab.server.db import transaction
from tradelab.server.models import Experiment, Run, RunState
from tradelab.server.routes import datasets
from tradelab.server.security import issue_token

#: Examples per operation and database: ~40 operations, two databases, well under a minute in all.
EXAMPLES = 25
#: The endless SSE stream: fuzzed apart, with a short stream (its schema is a text stream, not JSON).
EVENTS = "/api/events"
#: Endpoints a run token may call on its own run.
RUN_WRITER = {("POST", f"/api/runs/{{run_id}}/{action}") for action in ("heartbeat", "status", "logs", "metrics")} | {
    ("GET", "/api/runs/{run_id}/spec")  # what the run's agent executes, read with the run's own token
}
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@dataclass
class Api:
    """The app over a seeded database, its schema, two token secrets and the ids that exist."""

    app: FastAPI
    schema: OpenApiSchema
    admin: str
    run_token: str
    experiment_id: int
    run_ids: list[int]

    @property
    def secrets(self) -> tuple[str, str]:
        return self.admin, self.run_token


def _no_spawn(store: Store, exchange: str, symbol: str, **_: Any) -> tuple[int, None]:
    """Stands in for starting a stream process: fuzzed bodies must not leave exchange clients running (the real
    start is tested in test_streams_api.py)."""
    return os.getpid(), None


@pytest.fixture
def api(db_url: str, admin_token: str, home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    """The API over a database holding an experiment, a queued and a running run, and the running one's token;
    its store and home are temporary."""
    monkeypatch.setattr(datasets, "start_stream", _no_spawn)
    app = create_app(db_url)
    app.state.store = Store(home / "store")
    app.state.events_max_s = 0.2
    app.state.events_poll_s = 0.05
    with transaction(app.state.sessions) as session:
        experiment = Experiment(name="tiny", config=tiny_config().model_dump(mode="json", by_alias=True))
        session.add(experiment)
        session.flush()
        runs = [Run(experiment_id=experiment.id, seed=0, state=state) for state in (RunState.QUEUED, RunState.RUNNING)]
        session.add_all(runs)
        session.flush()
        run_token = issue_token(session, "fuzzed run", role="run", run_id=runs[1].id)
        experiment_id, run_ids = experiment.id, [run.id for run in runs]
    schema = schemathesis.openapi.from_dict(app.openapi())
    schema.app = app
    yield Api(app, schema, admin_token, run_token, experiment_id, run_ids)
    app.state.engine.dispose()


def _operations(schema: OpenApiSchema) -> list[Any]:
    return [result.ok() for result in schema.get_all_operations()]


def _cases(api: Api, operation: Any) -> st.SearchStrategy[Case]:
    """Cases of ``operation``: generated as they come, and with path ids that exist (so handlers run deeper)."""
    names = {parameter.name for parameter in operation.path_parameters}
    known: dict[str, Any] = {}
    if "experiment_id" in names:
        known["experiment_id"] = api.experiment_id
    if "run_id" in names:
        known["run_id"] = st.sampled_from(api.run_ids)
    strategies = [operation.as_strategy()]
    if known:
        fixed = {key: value for key, value in known.items() if not isinstance(value, st.SearchStrategy)}
        drawn = {key: value for key, value in known.items() if isinstance(value, st.SearchStrategy)}
        if drawn:
            strategies += [
                st.fixed_dictionaries(drawn).flatmap(
                    lambda ids, fixed=fixed: operation.as_strategy(path_parameters={**fixed, **ids})
                )
            ]
        else:
            strategies.append(operation.as_strategy(path_parameters=fixed))
    return st.one_of(strategies)


def _fuzz(api: Api, operation: Any, examples: int, test: Callable[[Case], None]) -> None:
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure is reported as found, fast
        suppress_health_check=list(HealthCheck),
    )
    @given(case=_cases(api, operation))
    def run(case: Case) -> None:
        test(case)

    run()


def _no_secret(api: Api, body: bytes) -> None:
    for secret in api.secrets:
        assert secret.encode() not in body, "a token secret leaked into a response"


def _as(case: Case, secret: str | None) -> Case:
    headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
    if secret is not None:
        headers["Authorization"] = f"Bearer {secret}"
    case.headers = headers
    return case


def test_admin_fuzzing_finds_no_server_error_nor_undocumented_answer(api: Api) -> None:
    failures = []
    for operation in _operations(api.schema):
        examples = 3 if operation.path == EVENTS else EXAMPLES

        def check(case: Case) -> None:
            response = _as(case, api.admin).call_and_validate(checks=CHECKS)
            _no_secret(api, response.content)

        try:
            _fuzz(api, operation, examples, check)
        except (Exception, BaseExceptionGroup) as error:  # every operation's failure, not just the first one's
            failures.append(f"{operation.label}: {error}")
    assert not failures, "\n\n".join(failures)


def test_mutating_endpoints_refuse_a_missing_or_wrong_token_and_admin_ones_a_run_token(api: Api) -> None:
    operations = _operations(api.schema)
    mutating = [op for op in operations if op.method.upper() in MUTATING]
    assert len(mutating) >= 15
    for operation in mutating:

        def anonymous(case: Case) -> None:
            for secret in (None, "tl_not-a-token", api.admin[:-1]):
                response = _as(case, secret).call()
                assert response.status_code == 401, (case.operation.label, secret, response.status_code)
                assert response.headers.get("www-authenticate") == ["Bearer"]
                _no_secret(api, response.content)

        _fuzz(api, operation, 3, anonymous)
    admin_only = [
        op for op in operations if op.path.startswith("/api") and (op.method.upper(), op.path) not in RUN_WRITER
    ]
    for operation in admin_only:

        def run_token(case: Case) -> None:
            response = _as(case, api.run_token).call()
            assert response.status_code == 403, (case.operation.label, response.status_code)
            _no_secret(api, response.content)

        _fuzz(api, operation, 3, run_token)


def test_a_run_token_writes_only_to_its_own_run(api: Api) -> None:
    own = api.run_ids[1]
    for method, path in sorted(RUN_WRITER):
        operation = api.schema[path][method]

        def scoped(case: Case) -> None:
            response = _as(case, api.run_token).call()
            if case.path_parameters["run_id"] == own:
                assert response.status_code not in (401, 403), (case.operation.label, response.status_code)
            else:
                assert response.status_code == 403, (case.operation.label, response.status_code)
            _no_secret(api, response.content)

        _fuzz(api, operation, 6, scoped)


def test_what_the_fuzzing_found_stays_fixed(api: Api) -> None:
    """Ids past 32 bits and offsets past 64 bits are 422s; a NUL in text (Postgres refuses it) is never a 500."""
    with TestClient(api.app, headers={"Authorization": f"Bearer {api.admin}"}) as client:
        for path in ("/api/runs/2147483648", "/api/experiments/2147483648", "/api/runs/0", "/api/datasets/-1"):
            assert client.get(path).status_code == 422, path
        assert client.get("/api/runs", params={"offset": 2**63}).status_code == 422
        assert client.post(f"/api/experiments/{api.experiment_id}/runs", json={"seed": 2**31}).status_code == 422
        nul = client.post(f"/api/runs/{api.run_ids[1]}/logs", json={"lines": ["a\x00b"]})
        assert nul.status_code in (201, 422) and api.admin not in nul.text
        queued_at = client.get(f"/api/runs/{api.run_ids[0]}").json()["queued_at"]
        assert queued_at.endswith(("Z", "+00:00")), queued_at
