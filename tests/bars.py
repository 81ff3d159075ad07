"""Small hand-made bar frames and files for tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from tradelab.data.schema import COLUMNS, TS, to_ms


def make_bars(n: int, start: str = "2024-01-01", *, step_ms: int = 60_000, seed: int = 0) -> pl.DataFrame:
    """``n`` consistent canonical bars every ``step_ms`` from ``start``: a seeded random walk around 100."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
    open_ = np.concatenate([[100.0], close[:-1]])
    spread = np.abs(rng.normal(0, 5e-4, n)) * close
    return pl.DataFrame(
        {
            TS: to_ms(start) + np.arange(n, dtype=np.int64) * step_ms,
            "open": open_,
            "high": np.maximum(open_, close) + spread,
            "low": np.minimum(open_, close) - spread,
            "close": close,
            "volume": rng.uniform(1, 10, n),
        }
    ).with_columns(pl.col(TS).cast(COLUMNS[TS]))


def binance_lines(bars: pl.DataFrame, *, scale: int = 1) -> list[str]:
    """Rows of a Binance kline CSV (no header) for ``bars``; ``scale=1000`` writes microseconds."""
    lines = []
    for row in bars.iter_rows(named=True):
        t = int(row[TS].timestamp() * 1000) * scale
        lines.append(
            f"{t},{row['open']},{row['high']},{row['low']},{row['close']},{row['volume']},"
            f"{t + 59_999 * scale},0,0,0,0,0"
        )
    return lines


def write_lines(path: Path, lines: list[str]) -> Path:
    """Write text lines to ``path`` (with a final newline)."""
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
