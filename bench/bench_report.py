"""What every benchmark shares: a result row, timing with progress, and the printed/JSON report.

Only the standard library is imported at the top, so benchmark child processes stay lean.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

RESULTS_DIR = Path(__file__).resolve().parent / "results"
DECIMALS = {"s": 3, "ms": 1, "MB": 0, "k/s": 1}
#: Units where more is better (throughput); for the others (time, memory) less is better.
HIGHER_IS_BETTER = {"k/s"}
T = TypeVar("T")


@dataclass
class Row:
    """One line of a report: ours and the peer's figure in ``unit``; ``samples`` in seconds (timings only)."""

    metric: str
    unit: str
    ours: float
    goal: str
    passed: bool | None  # None for reference rows, which have no goal
    peer: float | None = None
    samples_ours: list[float] = field(default_factory=list)
    samples_peer: list[float] = field(default_factory=list)

    def show(self, value: float) -> str:
        """``value`` with the unit, to a useful precision."""
        return f"{value:.{DECIMALS[self.unit]}f} {self.unit}"

    @property
    def ratio(self) -> float | None:
        """How many times better we are than the peer: ours / peer for throughput, peer / ours otherwise."""
        if self.peer is None:
            return None
        return self.ours / self.peer if self.unit in HIGHER_IS_BETTER else self.peer / self.ours


@contextmanager
def progress_steps() -> Iterator[Callable[[str, int], Callable[[], None]]]:
    """Progress bars for the steps of a benchmark: ``step(description, total)`` returns an ``advance``.

    The display is redrawn only when a step advances, so no refresh thread competes with the timings.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, auto_refresh=False) as progress:

        def step(description: str, total: int) -> Callable[[], None]:
            task = progress.add_task(description, total=total)
            progress.refresh()

            def advance() -> None:
                progress.advance(task)
                progress.refresh()

            return advance

        yield step


def timed(
    call: Callable[[], T], repeats: int, advance: Callable[[], None], *, warmup: int = 1
) -> tuple[list[float], T]:
    """Seconds per call of ``call`` (``repeats`` >= 1) after ``warmup`` untimed calls, and its last result."""
    for _ in range(warmup):
        call()
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = call()
        seconds.append(time.perf_counter() - started)
        advance()
    return seconds, result


def report(title: str, peer: str, rows: list[Row], results: Path, extra: dict[str, Any]) -> None:
    """Print the table (ours, the peer, their ratio, the goal) and the misses; write the rows as JSON.

    :param peer: the peer's name for the column headers, e.g. ``pandas``.
    :param extra: more fields for the JSON file (sizes, repeats, library versions).
    """
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for name in ("metric", "ours", peer, "× better", "goal", "pass"):
        table.add_column(name, justify="left" if name in ("metric", "goal") else "right")
    for row in rows:
        table.add_row(
            row.metric,
            row.show(row.ours),
            row.show(row.peer) if row.peer is not None else "—",
            f"{row.ratio:.2f}×" if row.ratio is not None else "—",
            row.goal,
            "—" if row.passed is None else "[green]pass[/]" if row.passed else "[bold red]FAIL[/]",
        )
    console = Console()
    console.width = max(console.width, 110)  # rich assumes 80 columns when not on a terminal (CI logs)
    console.print(table)
    misses = [row for row in rows if row.passed is False]
    for row in misses:
        ratio = f", {row.ratio:.2f}× better than {peer}" if row.ratio is not None else ""
        console.print(f"[bold red]MISSED[/] {row.metric}: {row.show(row.ours)}{ratio}; goal {row.goal}")
    if not misses:
        console.print("[green]all goals met[/]")
    results.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        **extra,
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()},
        "results": [{**asdict(row), "ratio": row.ratio} for row in rows],
    }
    results.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    console.print(f"results written to {results}")
