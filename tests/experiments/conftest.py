"""Fixtures of the experiments tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.experiments.joined import FILES
from tradelab.cli import app


@pytest.fixture
def joined(shared_data: Path, home: Path) -> str:
    """The 2023 BTC files (merged) and the 2025 one ingested as one dataset into the test home: its symbol.

    The real data has a two-year hole (:data:`~tests.experiments.joined.HOLE`).
    """
    for name in FILES:
        result = CliRunner().invoke(app, ["data", "ingest", str(shared_data / name), "--symbol", "BTCUSDT"])
        assert result.exit_code == 0, result.output
    return "BTCUSDT"
