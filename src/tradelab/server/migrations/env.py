"""Alembic environment: the control plane's models, the URL from ``tradelab.server.db.alembic_config``."""

from __future__ import annotations

from alembic import context

from tradelab.server.db import make_engine
from tradelab.server.models import Base

config = context.config


def run_migrations() -> None:
    """Apply the migrations online, in one transaction (batch mode on SQLite, which cannot ALTER much)."""
    engine = make_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=engine.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations()
