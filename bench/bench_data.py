"""Data benchmark: our ingest, validation and loads against the obvious pandas baseline, same data, same run.

One year of synthetic 1-minute bars (525,600 rows) is written as a Binance kline CSV with a header, then:

1. ours: ``ingest_files`` into a fresh store, vs pandas: ``read_csv`` + ``to_parquet`` (median of 5);
2. peak RSS of each, each measured in a fresh child process so imports and earlier runs do not count;
3. ours: ``validate_dataset`` over the stored year (median of 5);
4. ours: ``Store.load`` of one month (median of 20).

Prints a table against the goals and writes ``bench/results/bench_data.json``. The exit status is 0
even when a goal is missed: this is a report, not a test.

Usage: ``.venv/bin/python bench/bench_data.py`` (``make bench``).

.. note:: Libraries are imported inside functions, not at the top: the peak-RSS children re-run this
    file and must load only what they measure (pandas for the baseline, tradelab for ours).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TypeVar

RESULTS = Path(__file__).resolve().parent / "results" / "bench_data.json"
SYMBOL, TIMEFRAME = "BENCH", "1m"
YEAR_START, MONTH = "2023-01-01", ("2023-06-01", "2023-07-01")
YEAR_BARS, MONTH_BARS = 525_600, 30 * 1440
REPEATS, LOAD_REPEATS = 5, 20
CHILD_FLAG = "--peak-rss-child"
DECIMALS = {"s": 3, "ms": 1, "MB": 0}
T = TypeVar("T")


@dataclass
class Row:
    """One line of the report; ``ours``/``pandas`` in ``unit``, ``samples`` in seconds (timings only)."""

    metric: str
    unit: str
    ours: float
    goal: str
    passed: bool | None  # None for reference rows, which have no goal
    pandas: float | None = None
    samples_ours: list[float] = field(default_factory=list)
    samples_pandas: list[float] = field(default_factory=list)

    def show(self, value: float) -> str:
        """``value`` with the unit, to a useful precision."""
        return f"{value:.{DECIMALS[self.unit]}f} {self.unit}"

    @property
    def ratio(self) -> float | None:
        """pandas / ours: how many times better we are (higher is better for both time and memory)."""
        return self.pandas / self.ours if self.pandas is not None else None


def ingest_ours(csv: Path, root: Path) -> int:
    """Ingest ``csv`` into a store at ``root``; return the number of bars added."""
    from tradelab.data.ingest import ingest_files
    from tradelab.data.store import Store

    return ingest_files([csv], SYMBOL, TIMEFRAME, store=Store(root)).added_rows


def ingest_pandas(csv: Path, root: Path) -> int:
    """The baseline: ``pd.read_csv`` and ``to_parquet``; return the number of rows."""
    import pandas as pd

    frame = pd.read_csv(csv)
    frame.to_parquet(root / "bars.parquet")
    return len(frame)


def ingest_floor(csv: Path, root: Path) -> int:
    """A lower bound for any checked ingest: polars ``read_csv`` + ``write_parquet``, no checks, no hashes."""
    import polars as pl

    frame = pl.read_csv(csv)
    frame.write_parquet(root / "bars.parquet", compression="zstd", compression_level=1)
    return frame.height


INGESTS: dict[str, Callable[[Path, Path], int]] = {"ours": ingest_ours, "pandas": ingest_pandas}


def time_ingest(
    ingest: Callable[[Path, Path], int], csv: Path, repeats: int, advance: Callable[[], None]
) -> list[float]:
    """Seconds per run of ``ingest``, each into a fresh temporary folder.

    :raises RuntimeError: when a run does not store the whole year (the timing would be meaningless).
    """
    seconds = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
            started = time.perf_counter()
            rows = ingest(csv, Path(tmp))
            seconds.append(time.perf_counter() - started)
        if rows != YEAR_BARS:
            raise RuntimeError(f"{ingest.__name__} stored {rows} rows, expected {YEAR_BARS}")
        advance()
    return seconds


def timed(call: Callable[[], T], repeats: int, advance: Callable[[], None]) -> tuple[list[float], T]:
    """Seconds per call of ``call`` (``repeats`` >= 1), and its last result."""
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = call()
        seconds.append(time.perf_counter() - started)
        advance()
    return seconds, result


def peak_rss_mb(which: str, csv: Path) -> float:
    """Peak resident memory (MB) of one ingest run alone in a fresh Python process, imports included.

    .. note:: The child reports its own peak. ``ru_maxrss`` from ``wait4`` or ``RUSAGE_CHILDREN`` will
        not do on Linux: a child inherits the parent's high-water mark through fork and exec, so it
        would read as this (large) process's peak.
    """
    with tempfile.TemporaryDirectory(prefix="bench-data-rss-") as tmp:
        argv = [sys.executable, str(Path(__file__).resolve()), CHILD_FLAG, which, str(csv), tmp]
        child = subprocess.run(argv, capture_output=True, text=True, check=False)
    if child.returncode != 0:
        raise RuntimeError(f"the {which} peak-RSS child failed:\n{child.stderr}")
    return float(child.stdout.split()[-1])


def own_peak_rss_mb() -> float:
    """This process's peak resident memory in MB (``VmHWM`` on Linux, ``ru_maxrss`` elsewhere)."""
    status = Path("/proc/self/status")
    if status.exists():
        (line,) = (line for line in status.read_text().splitlines() if line.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024  # kB
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 * 1024)  # bytes on macOS


def run() -> list[Row]:
    """Run every measurement with a progress display; return the report rows."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from tradelab.data.ingest.binance import write_binance
    from tradelab.data.ingest.synth import generate_bars
    from tradelab.data.store import Store
    from tradelab.data.validate import validate_dataset

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp, Progress(*columns) as progress:

        def step(description: str, total: int) -> Callable[[], None]:
            task = progress.add_task(description, total=total)
            return lambda: progress.advance(task)

        advance = step("generate a year of 1m bars, write a Binance CSV", 1)
        # With a header row, as Binance's futures files have: both sides read the column names from it.
        bars = generate_bars(365, seed=0, start=YEAR_START, gaps=False)
        csv = write_binance(bars, Path(tmp) / "BENCHUSDT-1m-2023.csv", header=True)
        advance()
        ours = time_ingest(ingest_ours, csv, REPEATS, step("ingest: ours", REPEATS))
        pandas = time_ingest(ingest_pandas, csv, REPEATS, step("ingest: pandas read_csv + to_parquet", REPEATS))
        floor = time_ingest(ingest_floor, csv, REPEATS, step("reference: polars read + write, unchecked", REPEATS))
        advance = step("peak RSS (fresh processes)", len(INGESTS))
        rss = {}
        for which in INGESTS:
            rss[which] = peak_rss_mb(which, csv)
            advance()

        store = Store(Path(tmp) / "store")
        ingest_ours(csv, store.root)
        validate, report = timed(
            lambda: validate_dataset(store, SYMBOL, TIMEFRAME), REPEATS, step("validate the year", REPEATS)
        )
        if report.rows != YEAR_BARS:
            raise RuntimeError(f"validate_dataset saw {report.rows} rows, expected {YEAR_BARS}")
        load, month = timed(
            lambda: store.load(SYMBOL, TIMEFRAME, *MONTH), LOAD_REPEATS, step("load one month", LOAD_REPEATS)
        )
        if month.height != MONTH_BARS:
            raise RuntimeError(f"the one-month load returned {month.height} rows, expected {MONTH_BARS}")

    ingest_s, pandas_s = statistics.median(ours), statistics.median(pandas)
    validate_s, load_ms = statistics.median(validate), statistics.median(load) * 1000
    return [
        Row(
            "ingest 1 year (CSV → store)",
            "s",
            ingest_s,
            goal="≤ 1.5 s, ≥ 3× pandas",
            passed=ingest_s <= 1.5 and pandas_s / ingest_s >= 3,
            pandas=pandas_s,
            samples_ours=ours,
            samples_pandas=pandas,
        ),
        Row(
            "reference: polars read+write, no checks",
            "s",
            statistics.median(floor),
            goal="lower bound of any checked ingest",
            passed=None,
            pandas=pandas_s,
            samples_ours=floor,
        ),
        Row("ingest peak RSS", "MB", rss["ours"], "≤ 600 MB", rss["ours"] <= 600, pandas=rss["pandas"]),
        Row("validate 1 year", "s", validate_s, "≤ 0.3 s", validate_s <= 0.3, samples_ours=validate),
        Row("load 1 month", "ms", load_ms, "≤ 50 ms", load_ms <= 50, samples_ours=load),
    ]


def report(rows: list[Row]) -> None:
    """Print the table and the misses; write the JSON results."""
    import pandas
    import polars
    import pyarrow
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"tradelab data benchmark: {YEAR_BARS:,} 1-minute bars, medians")
    for name in ("metric", "ours", "pandas", "pandas/ours", "goal", "pass"):
        table.add_column(name, justify="left" if name in ("metric", "goal") else "right")
    for row in rows:
        table.add_row(
            row.metric,
            row.show(row.ours),
            row.show(row.pandas) if row.pandas is not None else "—",
            f"{row.ratio:.2f}×" if row.ratio is not None else "—",
            row.goal,
            "—" if row.passed is None else "[green]pass[/]" if row.passed else "[bold red]FAIL[/]",
        )
    console = Console()
    console.width = max(console.width, 100)  # rich assumes 80 columns when not on a terminal (CI logs)
    console.print(table)
    misses = [row for row in rows if row.passed is False]
    for row in misses:
        ratio = f", {row.ratio:.2f}× pandas" if row.ratio is not None else ""
        console.print(f"[bold red]MISSED[/] {row.metric}: {row.show(row.ours)}{ratio}; goal {row.goal}")
    if not misses:
        console.print("[green]all goals met[/]")

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    results = {
        "rows": YEAR_BARS,
        "repeats": REPEATS,
        "load_repeats": LOAD_REPEATS,
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()},
        "versions": {"polars": polars.__version__, "pandas": pandas.__version__, "pyarrow": pyarrow.__version__},
        "results": [{**asdict(row), "ratio": row.ratio} for row in rows],
    }
    RESULTS.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    console.print(f"results written to {RESULTS}")


def main() -> None:
    """Run the benchmark, or, when called with the child flag, one ingest for the peak-RSS measurement."""
    if len(sys.argv) == 5 and sys.argv[1] == CHILD_FLAG:
        INGESTS[sys.argv[2]](Path(sys.argv[3]), Path(sys.argv[4]))
        print(own_peak_rss_mb())
        return
    report(run())


if __name__ == "__main__":
    main()
