"""Fuzz the API from its own OpenAPI schema (schemathesis), on SQLite and Postgres.

With an admin token, schemathesis with every check (``st run --checks all``: positive and negative data, its
examples, coverage, fuzzing and stateful phases, a fixed seed) finds no failure: no 5xx, every answer documented,
every request the schema allows accepted and every one it forbids refused, wrong methods answered 405 with the
path's ``Allow``. Every mutating endpoint refuses a missing or wrong token (401), admin endpoints refuse a run token
(403); and no answer ever holds a token's secret.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import Case
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import events, from_schema
from schemathesis.specs.openapi.schemas import OpenApiSchema

from tests.bars import make_bars
from tests.experiments.runs import tiny_config
from tradelab.data.store import Store
from tradelab.server.app import create_app
from tradelab.server.db import transaction
from tradelab.server.models import Experiment, Run, RunState
from tradelab.server.registry import register_dataset
from tradelab.server.routes import datasets
from tradelab.server.security import issue_token

#: The fuzzing phase's examples per operation (the coverage phase adds every edge case the schema defines).
EXAMPLES = 5
#: The run's seed: the same requests every time.
SEED = 16
#: The endless SSE stream: left out of the schemathesis run (its schema is a text stream, not JSON).
EVENTS = "/api/events"
#: Operations whose body holds a document the server validates past its JSON Schema: an experiment config (its
#: algorithm's hyper-parameters and action spaces, its split's dates; ``set`` overrides applied to it), an env
#: config (its features' tools and their parameters), a tool's parameters. A schema-valid body may still be an
#: invalid config, answered 422 with every problem and its path; any other refusal of schema-valid data still fails.
VALIDATED_DOCUMENTS = (
    "POST /api/experiments",
    "POST /api/experiments/{experiment_id}/clone",
    "POST /api/env-configs",
    "POST /api/tools/{name}/preview",
)
#: Endpoints a run token may call on its own run.
RUN_WRITER = {("POST", f"/api/runs/{{run_id}}/{action}") for action in ("heartbeat", "status", "logs", "metrics")} | {
    ("GET", "/api/runs/{run_id}/spec")  # what the run's agent executes, read with the run's own token
}
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}


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
    """The API over a database holding an experiment, a queued and a running run, the running one's token and a
    registered dataset of two days of bars (every first id exists: fuzzed ids reach the handlers' logic); its store
    and home are temporary."""
    monkeypatch.setattr(datasets, "start_stream", _no_spawn)
    app = create_app(db_url)
    app.state.store = Store(home / "store")
    app.state.store.write("SYN", "1m", make_bars(2 * 1440))
    app.state.events_max_s = 0.2
    app.state.events_poll_s = 0.05
    with transaction(app.state.sessions) as session:
        register_dataset(session, app.state.store, "SYN")
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


def _every_check_config(admin: str) -> SchemathesisConfig:
    """``st run --checks all --mode all --seed SEED`` with the admin token, deterministic and without a cache."""
    positive_statuses = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]  # the check's own default
    config = SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "cache": {"enabled": False},
            "headers": {"Authorization": f"Bearer {admin}"},
            "generation": {
                "mode": "all",
                "max-examples": EXAMPLES,
                "deterministic": True,
                "database": "none",
                "no-shrink": True,
            },
            "operations": [
                {
                    "include-name": name,
                    "checks": {"positive_data_acceptance": {"expected-statuses": [*positive_statuses, "422"]}},
                }
                for name in VALIDATED_DOCUMENTS
            ],
        }
    )
    config.projects.override.checks.update(included_check_names=["all"])
    return config


def _failures(stream: Any) -> list[str]:
    """Every failed check and engine error of a schemathesis run, one line each (the request as curl)."""
    found: list[str] = []
    for event in stream:
        if isinstance(event, events.ScenarioFinished):
            for case_id, checks in event.recorder.checks.items():
                for check in checks:
                    if check.failure_info is not None:
                        label = event.recorder.cases[case_id].value.operation.label
                        failure = check.failure_info.failure
                        request = check.failure_info.code_sample
                        found.append(f"{label} [{check.name}] {failure.title}: {failure.message}\n{request}")
        elif isinstance(event, events.NonFatalError | events.FatalError):
            found.append(f"engine error: {event!r}")
        elif isinstance(event, events.EngineFinished):
            found += [f"{failure.operation} {failure.title}: {failure.message}" for failure in event.failures]
    return found


@contextmanager
def _served(app: FastAPI) -> Iterator[str]:
    """``app`` served by uvicorn in a thread of this process, at the URL given: schemathesis over HTTP runs a third
    faster than through its in-process ASGI transport. The socket listens before the server starts, so requests
    wait in its backlog instead of the test waiting for the server."""
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [listening]})
        thread.start()
        try:
            yield "http://{}:{}".format(*listening.getsockname())
        finally:
            server.should_exit = True
            thread.join(timeout=30)


def test_schemathesis_with_every_check_finds_no_failure(api: Api) -> None:
    with _served(api.app) as url:
        schema = schemathesis.openapi.from_url(f"{url}/openapi.json", config=_every_check_config(api.admin))
        failures = _failures(from_schema(schema.exclude(path=EVENTS)).execute())
    assert not failures, f"{len(failures)} failures:\n\n" + "\n\n".join(failures)


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


def _running_again(api: Api, run_id: int) -> None:
    """Put run ``run_id`` back to running: a fuzzed status report may have ended it, and its token with it."""
    with transaction(api.app.state.sessions) as session:
        run = session.get(Run, run_id)
        assert run is not None
        run.state, run.ended_at = RunState.RUNNING, None


def test_a_run_token_writes_only_to_its_own_run(api: Api) -> None:
    own = api.run_ids[1]
    for method, path in sorted(RUN_WRITER):
        operation = api.schema[path][method]

        def scoped(case: Case) -> None:
            _running_again(api, own)
            response = _as(case, api.run_token).call()
            if case.path_parameters["run_id"] == own:
                assert response.status_code not in (401, 403), (case.operation.label, response.status_code)
            else:
                assert response.status_code == 403, (case.operation.label, response.status_code)
            _no_secret(api, response.content)

        _fuzz(api, operation, 6, scoped)


def test_what_the_fuzzing_found_stays_fixed(api: Api) -> None:
    """Ids past 32 bits and offsets past JSON's exact integers are 422s; a NUL in text (Postgres refuses it) is a
    422 on every database."""
    with TestClient(api.app, headers={"Authorization": f"Bearer {api.admin}"}) as client:
        for path in ("/api/runs/2147483648", "/api/experiments/2147483648", "/api/runs/0"):
            assert client.get(path).status_code == 422, path
        assert client.get("/api/datasets/-1").status_code == 404  # no dataset has such an id
        assert client.get("/api/runs", params={"offset": 2**53}).status_code == 422
        assert client.post(f"/api/experiments/{api.experiment_id}/runs", json={"seed": 2**31}).status_code == 422
        nul = client.post(f"/api/runs/{api.run_ids[1]}/logs", json={"lines": ["a\x00b"]})
        assert nul.status_code == 422 and api.admin not in nul.text
        queued_at = client.get(f"/api/runs/{api.run_ids[0]}").json()["queued_at"]
        assert queued_at.endswith(("Z", "+00:00")), queued_at


def test_the_schema_states_what_the_server_enforces(api: Api) -> None:
    """What schemathesis found (issue 16): values the schema forbids are refused (no ``false`` as a number, no
    ``0`` as a flag, no bare number as a time), values it allows are accepted (``3.0`` is an integer, an empty
    range is empty), every constraint is stated, and bodies that are not UTF-8 JSON are the documented 422."""
    experiment, running = api.experiment_id, api.run_ids[1]
    with TestClient(api.app, headers={"Authorization": f"Bearer {api.admin}"}) as client:
        for method, path, body in [
            ("POST", f"/api/experiments/{experiment}/runs", {"seed": False}),
            ("PUT", "/api/budgets/global", {"monthly_cap": False}),
            ("POST", f"/api/runs/{running}/heartbeat", {"busy": 0}),
            ("POST", f"/api/runs/{running}/metrics", {"points": [{"key": "a", "step": "1", "value": 1.0}]}),
            ("POST", f"/api/experiments/{experiment}/clone", {"set": [""]}),
            ("POST", f"/api/experiments/{experiment}/ensembles", {"members": [1, 1]}),
            ("POST", "/api/datasets/streams", {"exchange": "binance", "symbol": "BTC/USDT"}),
            ("POST", "/api/datasets/streams", {"exchange": "binance", "symbol": "BTCUSDT", "since": 0.5}),
        ]:
            assert client.request(method, path, json=body).status_code == 422, (path, body)
        assert client.get("/api/datasets/1/bars", params={"start": "0.5"}).status_code == 422
        assert client.post(f"/api/experiments/{experiment}/runs", json={"seed": 3.0}).json()["seed"] == 3
        undecodable = client.post(
            f"/api/runs/{running}/logs", content=b"\xff\xfe", headers={"content-type": "application/json"}
        )
        assert undecodable.status_code == 422 and undecodable.json()["detail"][0]["type"] == "json_invalid"
        schema = client.get("/openapi.json").json()
        backend = schema["components"]["schemas"]["RunCreate"]["properties"]["backend"]
        assert backend["pattern"] == "^(local|runpod)$"
        symbol = schema["paths"]["/api/datasets/streams/{symbol}/{timeframe}"]["delete"]["parameters"][0]
        assert symbol["schema"]["pattern"] == "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


def test_a_wrong_method_is_a_405_naming_every_method_of_the_path(api: Api) -> None:
    """``Allow`` lists every route of the path (not the first one's), and the dashboard's catch-all GET does not
    turn a wrong method on an API path into a 404."""
    with TestClient(api.app, headers={"Authorization": f"Bearer {api.admin}"}) as client:
        for method, path, allowed in [
            ("GET", "/api/budgets/global", "PUT"),
            ("OPTIONS", f"/api/runs/{api.run_ids[0]}/watch", "DELETE, GET, PUT"),
            ("OPTIONS", "/api/datasets/register", "POST"),
            ("GET", "/api/datasets/register", "POST"),
            ("PATCH", "/api/experiments", "GET, POST"),
        ]:
            answer = client.request(method, path)
            assert (answer.status_code, answer.headers.get("allow")) == (405, allowed), (method, path)
        assert client.get("/api/no-such-endpoint").status_code == 404
        assert client.get(f"/api/runs/{api.run_ids[0]}/watch").status_code == 404  # the route's own 404: not watched
