"""Fixtures shared by the whole suite."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from tradelab.data.store import Store
from tradelab.settings import get_settings

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _tradelab_logger_restored() -> Iterator[None]:
    """Undo a test's logging set-up: ``tradelab serve``/``worker`` invoked in-process point the ``tradelab``
    logger at the stderr of that invocation, which is closed once it returns (a later log line would fail)."""
    logger = logging.getLogger("tradelab")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved[0], saved[1], saved[2]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh ``TRADELAB_HOME`` for code that uses the default settings (CLI, ``tradelab.data.load``)."""
    root = tmp_path / "home"
    monkeypatch.setenv("TRADELAB_HOME", str(root))
    get_settings.cache_clear()
    yield root
    get_settings.cache_clear()


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """An empty store in a temporary folder."""
    return Store(tmp_path / "store")


@pytest.fixture
def shared_data() -> Path:
    """The real candles of ``../shared/data`` (read-only); skips when this checkout has none beside it."""
    if not (SHARED_DATA / "btc").is_dir():
        pytest.skip(f"real market data not found at {SHARED_DATA} (it lives beside the repo, not in it)")
    return SHARED_DATA


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes, to prove a failed operation changed nothing."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
