"""The control plane's foundation on SQLite and Postgres: migrations, tokens, health, request ids, 503s."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi.testclient import TestClient
from sqlalchemy import inspect, select
from typer.testing import CliRunner

from tradelab.cli import app as cli_app
from tradelab.server.app import create_app
from tradelab.server.db import make_engine, session_factory, transaction
from tradelab.server.log import JsonFormatter
from tradelab.server.models import Base, Token
from tradelab.server.security import digest, issue_token


def test_migrations_create_every_table(db_url: str) -> None:
    engine = make_engine(db_url)
    assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_migrations_build_exactly_the_tables_the_models_declare(db_url: str) -> None:
    engine = make_engine(db_url)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    # the covering index of metric points holds `value` (migration 0002), which the model cannot declare
    assert [d for d in differences if "ix_metric_points_series" not in str(d)] == []


def test_tokens_are_stored_as_digests_only(db_url: str) -> None:
    engine = make_engine(db_url)
    with transaction(session_factory(engine)) as session:
        secret = issue_token(session, "someone")
    with transaction(session_factory(engine)) as session:
        stored = session.scalars(select(Token)).all()
    assert [t.digest for t in stored] == [digest(secret)] and all(secret not in t.digest for t in stored)
    engine.dispose()


def test_health_needs_no_token_and_ready_checks_the_database(client: TestClient) -> None:
    anonymous = TestClient(client.app)
    assert anonymous.get("/health").json() == {"status": "ok"}
    response = client.get("/ready", headers={"X-Request-ID": "abc123"})
    assert response.json() == {"status": "ready"} and response.headers["X-Request-ID"] == "abc123"
    assert len(client.get("/health").headers["X-Request-ID"]) == 32  # a fresh id when none was sent


def test_ready_answers_503_when_the_database_is_gone(tmp_path: Path) -> None:
    app = create_app(f"sqlite:///{tmp_path / 'missing-folder' / 'x' / 'db.sqlite'}")
    (tmp_path / "missing-folder" / "x").rmdir()  # the engine made the folder; without it SQLite cannot open
    response = TestClient(app).get("/ready")
    assert response.status_code == 503 and "unavailable" in response.json()["detail"]


def test_init_migrates_and_prints_a_working_admin_token_once(home: Path) -> None:
    result = CliRunner().invoke(cli_app, ["init"])
    assert result.exit_code == 0, result.output
    secret = result.output.strip().splitlines()[-1]
    assert secret.startswith("tl_") and (home / "tradelab.db").is_file()
    engine = make_engine()
    with transaction(session_factory(engine)) as session:
        (token,) = session.scalars(select(Token)).all()
    assert token.digest == digest(secret) and token.role == "admin"
    engine.dispose()


def test_request_logs_are_json_lines_without_secrets(
    client: TestClient, admin_token: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="tradelab.server"):
        client.get("/ready?token=should-not-matter", headers={"X-Request-ID": "req-1"})
    (record,) = [r for r in caplog.records if getattr(r, "request_id", None) == "req-1"]
    line = JsonFormatter().format(record)
    entry = json.loads(line)
    assert entry["path"] == "/ready" and entry["status"] == 200 and entry["request_id"] == "req-1"
    assert admin_token not in line and "should-not-matter" not in line
