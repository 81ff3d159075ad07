"""Control-plane fixtures: every database test runs on SQLite and on Postgres (``TRADELAB_TEST_DATABASE_URL``)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from tradelab.server.app import create_app
from tradelab.server.db import database_url, make_engine, session_factory, transaction, upgrade
from tradelab.server.security import issue_token


def _postgres_database() -> Iterator[str]:
    """A fresh, migrated Postgres database for one test, dropped afterwards."""
    base = os.environ.get("TRADELAB_TEST_DATABASE_URL")
    if not base:
        pytest.skip("TRADELAB_TEST_DATABASE_URL is not set (CI sets it; e.g. postgresql://postgres@127.0.0.1/test)")
    admin = create_engine(database_url(base), isolation_level="AUTOCOMMIT")
    name = f"tradelab_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = database_url(base).rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty control-plane database: a SQLite file, then a fresh Postgres database."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'control.db'}"
        upgrade(url)
        yield url
    else:
        for url in _postgres_database():
            upgrade(url)
            yield url


@pytest.fixture
def admin_token(db_url: str) -> str:
    """A fresh admin token's secret."""
    engine = make_engine(db_url)
    with transaction(session_factory(engine)) as session:
        secret = issue_token(session, "test admin")
    engine.dispose()
    return secret


@pytest.fixture
def client(db_url: str, admin_token: str) -> Iterator[TestClient]:
    """The API over :func:`db_url`, authenticated with :func:`admin_token`."""
    app = create_app(db_url)
    with TestClient(app, headers={"Authorization": f"Bearer {admin_token}"}) as test_client:
        yield test_client
    app.state.engine.dispose()
