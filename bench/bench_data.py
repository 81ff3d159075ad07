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

import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench_report import RESULTS_DIR, Row, progress_steps, report, timed

RESULTS = RESULTS_DIR / "bench_data.json"
SYMBOL, TIMEFRAME = "BENCH", "1m"
YEAR_START, MONTH = "2023-01-01", ("2023-06-01", "2023-07-01")
YEAR_BARS, MONTH_BARS = 525_600, 30 * 1440
REPEATS, LOAD_REPEATS = 5, 20
CHILD_FLAG = "--peak-rss-child"


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
    """Seconds per run of ``ingest``, each into a fresh temporary folder, after one untimed warm-up run.

    :raises RuntimeError: when a run does not store the whole year (the timing would be meaningless).
    """
    seconds = []
    for run in range(repeats + 1):  # the first run warms caches up and is not timed
        with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
            started = time.perf_counter()
            rows = ingest(csv, Path(tmp))
            elapsed = time.perf_counter() - started
        if rows != YEAR_BARS:
            raise RuntimeError(f"{ingest.__name__} stored {rows} rows, expected {YEAR_BARS}")
        if run:
            seconds.append(elapsed)
            advance()
    return seconds


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
    from tradelab.data.ingest.binance import write_binance
    from tradelab.data.ingest.synth import generate_bars
    from tradelab.data.store import Store
    from tradelab.data.validate import validate_dataset

    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp, progress_steps() as step:
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
            peer=pandas_s,
            samples_ours=ours,
            samples_peer=pandas,
        ),
        Row(
            "reference: polars read+write, no checks",
            "s",
            statistics.median(floor),
            goal="lower bound of any checked ingest",
            passed=None,
            peer=pandas_s,
            samples_ours=floor,
        ),
        Row("ingest peak RSS", "MB", rss["ours"], "≤ 600 MB", rss["ours"] <= 600, peer=rss["pandas"]),
        Row("validate 1 year", "s", validate_s, "≤ 0.3 s", validate_s <= 0.3, samples_ours=validate),
        Row("load 1 month", "ms", load_ms, "≤ 50 ms", load_ms <= 50, samples_ours=load),
    ]


def report_rows(rows: list[Row]) -> None:
    """Print and save the data benchmark's report."""
    import pandas
    import polars
    import pyarrow

    title = f"tradelab data benchmark: {YEAR_BARS:,} 1-minute bars, medians"
    versions = {"polars": polars.__version__, "pandas": pandas.__version__, "pyarrow": pyarrow.__version__}
    extra = {"rows": YEAR_BARS, "repeats": REPEATS, "load_repeats": LOAD_REPEATS, "versions": versions}
    report(title, "pandas", rows, RESULTS, extra)


def main() -> None:
    """Run the benchmark, or, when called with the child flag, one ingest for the peak-RSS measurement."""
    if len(sys.argv) == 5 and sys.argv[1] == CHILD_FLAG:
        INGESTS[sys.argv[2]](Path(sys.argv[3]), Path(sys.argv[4]))
        print(own_peak_rss_mb())
        return
    report_rows(run())


if __name__ == "__main__":
    main()
