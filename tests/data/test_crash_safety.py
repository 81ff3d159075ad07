"""An ingest killed half-way (SIGKILL, no cleanup) leaves the previous dataset intact and readable."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.bars import make_bars
from tradelab.data.ingest import ingest_files
from tradelab.data.ingest.binance import write_binance
from tradelab.data.store import Store

# Runs an ingest that SIGKILLs itself just before its N-th atomic rename (a partition file or the manifest).
KILLER = textwrap.dedent(
    """
    import os, pathlib, signal, sys
    from tradelab.data.ingest import ingest_files
    from tradelab.data.store import Store

    store_root, path, kill_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
    original, calls = pathlib.Path.replace, [0]

    def replace(self, target):
        calls[0] += 1
        if calls[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return original(self, target)

    pathlib.Path.replace = replace
    ingest_files([path], "BTCUSDT", store=Store(pathlib.Path(store_root)))
    """
)


@pytest.mark.parametrize("kill_at", [1, 2, 3])
def test_killed_ingest_leaves_previous_dataset_intact(tmp_path: Path, store: Store, kill_at: int) -> None:
    bars = make_bars(4 * 24 * 60, start="2024-01-30")  # January and February partitions
    ingest_files([write_binance(bars[:2000], tmp_path / "old.csv")], "BTCUSDT", store=store)
    manifest_before = (store.root / "BTCUSDT" / "1m" / "manifest.json").read_bytes()
    old = store.load("BTCUSDT")
    new_file = write_binance(bars[1000:], tmp_path / "new.csv")  # rewrites January, adds to February

    run = subprocess.run(
        [sys.executable, "-c", KILLER, str(store.root), str(new_file), str(kill_at)], capture_output=True, text=True
    )
    assert run.returncode == -signal.SIGKILL, run.stderr
    assert (store.root / "BTCUSDT" / "1m" / "manifest.json").read_bytes() == manifest_before
    assert store.load("BTCUSDT").equals(old)

    ingest_files([new_file], "BTCUSDT", store=store)  # the retry completes and cleans up
    assert store.load("BTCUSDT").select(bars.columns).equals(bars)
    listed = {p.file for p in store.require("BTCUSDT").partitions}
    on_disk = {p.relative_to(store.root / "BTCUSDT" / "1m").as_posix() for p in store.root.rglob("*.parquet")}
    assert on_disk == listed
    assert not list(store.root.rglob(".tmp-*"))
