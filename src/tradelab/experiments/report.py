"""A run's self-contained HTML report: what ran, the agent beside the baselines, and its charts.

:func:`write_report` reads a run folder (see :mod:`tradelab.experiments.artifacts`) and writes
``report.html`` beside its artifacts: a header (experiment, seed, dataset, algorithm, selection, commit),
the metrics table of the agent and every baseline, inline SVG charts drawn here (no JavaScript, no
stylesheet or font to fetch: the file opens from disk, offline) and the config.

Charts, all drawn by :func:`line_chart`:

- equity of every policy over the split, normalised to 1.0 at its first bar;
- the agent's drawdown (underwater) curve;
- the price with the agent's fills marked. The run folder holds no prices, so the price line is the
  buy-and-hold equity, which is proportional to the close while it holds the same units (it buys once at
  the highest level, 1.0 by default, and never trades again when that level needs no leverage). The line
  is scaled to price units by the median ratio of the agent's fill prices to it at the fill bars (fills
  happen at the next open with slippage, so markers sit within about a bar's move of the line); without
  trades it is shown normalised to 1.0;
- the validation curves of ``metrics.parquet`` (the selection metric and the total return) when present.

Series longer than the chart's resolution are downsampled to each pixel bucket's min and max
(:func:`downsample`), so a 100k-bar split stays a few hundred kB and no peak or trough is lost.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import polars as pl

from tradelab.experiments.artifacts import RunStorage
from tradelab.experiments.metrics import ANNUALISED, window_caveat

#: File name of the report in the run folder.
REPORT = "report.html"
#: Buckets a series is downsampled to (each keeps its min and max): at most ``2 * BUCKETS + 2`` points.
BUCKETS = 500

WIDTH, HEIGHT = 900, 320
LEFT, RIGHT, TOP, BOTTOM = 72, 16, 40, 30
DAY_MS = 86_400_000
MONTH_MS = 30.44 * DAY_MS
#: Candidate spacings of time ticks: minutes (1 minute … 2 weeks), then calendar months (1 month … 10 years).
_MINUTE_STEPS = (1, 5, 15, 30, 60, 180, 360, 720, 1440, 2880, 10080, 20160)
_MONTH_STEPS = (1, 3, 6, 12, 24, 60, 120)
_COLORS = {
    "agent": "#1f77b4",
    "buy_and_hold": "#ff7f0e",
    "flat": "#7f7f7f",
    "random": "#9467bd",
    "sma_crossover": "#2ca02c",
}
_CYCLE = ("#8c564b", "#e377c2", "#17becf", "#bcbd22", "#d62728")
_PERCENT = frozenset({"total_return", "annual_return", "annual_volatility", "max_drawdown", "win_rate", "exposure"})
_INTEGER = frozenset({"max_drawdown_duration", "n_trades", "bars"})
_MISSING = "—"


@dataclass(frozen=True, slots=True)
class Series:
    """One line of a chart: ``y`` over ascending ``x``; ``fill`` shades the area between it and 0."""

    label: str
    x: np.ndarray
    y: np.ndarray
    color: str
    width: float = 1.5
    fill: bool = False


@dataclass(frozen=True, slots=True)
class Markers:
    """Points of a chart drawn as ``shape``: an ``up`` or ``down`` triangle, or a ``circle``."""

    label: str
    x: np.ndarray
    y: np.ndarray
    color: str
    shape: Literal["up", "down", "circle"]


def write_report(storage: RunStorage, split: str = "test") -> str:
    """Render the run in ``storage`` as ``report.html`` in its folder (written atomically).

    :param storage: a run folder holding at least ``config.json``, ``results.json`` and ``equity_<split>.parquet``.
    :param split: the evaluated split whose curves and trades are charted.
    :return: the report's path in the folder's filesystem.
    :raises FileNotFoundError: when one of the required artifacts is missing.
    """
    storage.write_bytes(REPORT, render_report(storage, split).encode())
    return storage.path(REPORT)


def render_report(storage: RunStorage, split: str = "test") -> str:
    """The report of the run in ``storage`` as an HTML document (see :func:`write_report`)."""
    provenance, results = storage.read_json("config.json"), storage.read_json("results.json")
    config = provenance.get("config", {})
    equity = storage.read_parquet(f"equity_{split}.parquet")
    trades = _optional_parquet(storage, f"trades_{split}.parquet")
    curve = _optional_parquet(storage, "metrics.parquet")
    name = str(config.get("name") or results.get("name") or "run")
    ci = results.get("agent_sharpe_ci95") if split == "test" else None
    sections = [
        _header(name, provenance, results, equity),
        _section("Metrics", _metrics_table(results.get(split, {}), ci)),
        _section(f"Charts ({split})", _charts(equity, trades)),
        _training_section(curve, config.get("evaluation", {}).get("metric", "sharpe"), results),
        _section("Config", _config_block(provenance)),
    ]
    return _document(f"{name} — {split} report", "".join(sections))


def downsample(x: np.ndarray, y: np.ndarray, buckets: int = BUCKETS) -> np.ndarray:
    """Indices of the points to draw: the first, the last, and each x bucket's min and max of ``y``.

    :param x: ascending positions (equal-width buckets split their range).
    :param y: the values, finite.
    :param buckets: number of buckets; a series of at most ``2 * buckets + 2`` points is kept whole.
    :return: ascending indices into ``x`` and ``y``.
    """
    n = len(x)
    if n <= 2 * buckets + 2:
        return np.arange(n)
    span = float(x[-1] - x[0])
    if span > 0:
        bucket = np.clip(((x - x[0]) / span * buckets).astype(np.int64), 0, buckets - 1)
    else:
        bucket = np.arange(n) * buckets // n
    order = np.lexsort((y, bucket))  # by bucket, then by value: each bucket's min first, its max last
    starts = np.flatnonzero(np.diff(bucket[order], prepend=-1))
    ends = np.append(starts[1:], n) - 1
    return np.unique(np.concatenate([[0, n - 1], order[starts], order[ends]]))


def format_metric(key: str, value: Any) -> str:
    """``value`` of metric ``key`` for a table: percentages, integers with separators, else 2 decimals; ∞ for inf."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return _MISSING
    if isinstance(value, int | float) and math.isinf(value):
        return "∞" if value > 0 else "-∞"
    if key in _PERCENT:
        return f"{value * 100:,.2f}%"
    if key in _INTEGER:
        return f"{int(value):,}"
    return f"{value:,.2f}" if isinstance(value, int | float) else str(value)


def line_chart(
    series: Sequence[Series],
    markers: Sequence[Markers] = (),
    *,
    x_time: bool = True,
    y_percent: bool = False,
    label: str = "",
) -> str:
    """An SVG line chart with grid, tick labels and a legend; long series are downsampled (:func:`downsample`).

    :param series: the lines, drawn in order.
    :param markers: point groups drawn over the lines; points outside the lines' x range are dropped.
    :param x_time: ``x`` is epoch milliseconds (date ticks) rather than a number.
    :param y_percent: label the y ticks as percentages of fractions.
    :param label: the chart's accessible name.
    """
    lines = [_finite(s) for s in series]
    lines = [s for s in lines if len(s.x)]
    if not lines:
        return '<p class="note">No data to chart.</p>'
    x_range = _extent(np.concatenate([s.x for s in lines]), pad=0.0)
    shown = [_within(m, x_range) for m in markers]
    shown = [m for m in shown if len(m.x)]
    y_values = np.concatenate([*(s.y for s in lines), *(m.y for m in shown)])
    y_range = _extent(y_values, pad=0.05)
    parts = [
        _grid(x_range, y_range, x_time=x_time, y_percent=y_percent),
        *(_line(s, x_range, y_range) for s in lines),
        *(_markers(m, x_range, y_range) for m in shown),
        _legend([*lines, *shown]),
    ]
    return (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{html.escape(label)}">'
        f"{''.join(parts)}</svg>"
    )


# --- sections -------------------------------------------------------------------------------------------------


def _header(name: str, provenance: dict[str, Any], results: dict[str, Any], equity: pl.DataFrame) -> str:
    """Title, tags, notes and what identifies the run."""
    config = provenance.get("config", {})
    algorithm = config.get("algorithm", {})
    fields = {
        "Seed / fold": f"{_text(results.get('seed', provenance.get('seed')))} / {_text(results.get('fold'))}",
        "Dataset": _text(provenance.get("dataset")),
        "Algorithm": " · ".join(str(v) for v in (algorithm.get("name"), algorithm.get("policy")) if v) or _MISSING,
        "Timesteps": _count(results.get("timesteps")),
        "Train time": _duration(results.get("train_seconds")),
        "Stopped by": _text(results.get("stopped_by")),
        "Model selection": _selection(results, config.get("evaluation", {}).get("metric", "sharpe")),
        "Period": _period(equity),
        "Git commit": _text(provenance.get("git_commit")),
        "Created": _text(provenance.get("created")),
    }
    rows = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in fields.items())
    tags = "".join(f'<span class="tag">{html.escape(str(tag))}</span>' for tag in config.get("tags", []))
    notes = f'<p class="notes">{html.escape(str(config["notes"]))}</p>' if config.get("notes") else ""
    return f"<header><h1>{html.escape(name)}</h1>{tags}{notes}<dl>{rows}</dl></header>"


def _metrics_table(metrics: dict[str, dict[str, Any]], ci: Sequence[float] | None) -> str:
    """Rows = policies (the agent first, highlighted), columns = metrics."""
    if not metrics:
        return '<p class="note">No metrics for this split.</p>'
    keys = list(dict.fromkeys(key for row in metrics.values() for key in row))
    caveat = window_caveat(next(iter(metrics.values())))  # every policy plays the same bars
    head = "".join(_header_cell(key, caveat) for key in keys)
    rows = []
    for policy in sorted(metrics, key=lambda p: p != "agent"):
        cells = "".join(f"<td>{html.escape(format_metric(k, metrics[policy].get(k)))}</td>" for k in keys)
        css = ' class="agent"' if policy == "agent" else ""
        rows.append(f"<tr{css}><th>{html.escape(policy)}</th>{cells}</tr>")
    table = f'<div class="scroll"><table><tr><th>policy</th>{head}</tr>{"".join(rows)}</table></div>'
    if caveat:
        table += f'<p class="note caveat">† {html.escape(caveat)}</p>'
    if ci is None or len(ci) != 2:
        return table
    low, high = (format_metric("sharpe", v) for v in ci)
    return f"{table}<p>Agent Sharpe, 95% bootstrap interval: <b>[{html.escape(low)}, {html.escape(high)}]</b></p>"


def _header_cell(key: str, caveat: str | None) -> str:
    """A metric's column header; an annualised one is marked † (with the caveat as its tooltip) on a short window."""
    label = html.escape(key.replace("_", " "))
    if caveat is None or key not in ANNUALISED:
        return f"<th>{label}</th>"
    return f'<th title="{html.escape(caveat)}">{label} †</th>'


def _charts(equity: pl.DataFrame, trades: pl.DataFrame | None) -> str:
    """Equity of every policy, the agent's drawdown, the price with the agent's trades."""
    return "".join(
        [
            _figure("Equity, normalised to 1.0 at the first bar", _equity_chart(equity)),
            _figure("Agent drawdown (underwater)", *_drawdown_chart(equity)),
            _figure("Price and the agent's trades", *_trades_chart(equity, trades)),
        ]
    )


def _equity_chart(equity: pl.DataFrame) -> str:
    """Every policy's equity divided by its first value."""
    x = _epoch_ms(equity["ts"])
    lines = []
    for index, policy in enumerate(_policies(equity)):
        y = equity[f"{policy}_equity"].to_numpy().astype(float)
        if len(y) and y[0] != 0:
            width = 2.2 if policy == "agent" else 1.3
            lines.append(Series(policy, x, y / y[0], _color(policy, index), width))
    return line_chart(lines, label="equity")


def _drawdown_chart(equity: pl.DataFrame) -> tuple[str, str]:
    """The agent's fall from its running peak, as a shaded area below 0%, and its caption."""
    y = equity["agent_equity"].to_numpy().astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        drawdown = y / np.maximum.accumulate(y) - 1 if len(y) else y
    series = Series("agent drawdown", _epoch_ms(equity["ts"]), drawdown, _COLORS["agent"], fill=True)
    deepest = -float(np.nanmin(drawdown)) if np.isfinite(drawdown).any() else None
    caption = f"Max drawdown {format_metric('max_drawdown', deepest)}."
    return line_chart([series], y_percent=True, label="drawdown"), caption


def _trades_chart(equity: pl.DataFrame, trades: pl.DataFrame | None) -> tuple[str, str]:
    """The price proxy (see the module doc) with the agent's entries and exits, and its caption."""
    x, proxy = _price_proxy(equity)
    trades = trades if trades is not None else pl.DataFrame()
    markers = _fills(trades)
    times = np.concatenate([np.empty(0), *(m.x for m in markers)])
    prices = np.concatenate([np.empty(0), *(m.y for m in markers)])
    if len(times) and len(x):
        rows = np.clip(np.searchsorted(x, times, side="right") - 1, 0, len(x) - 1)
        scale, unit = float(np.median(prices / proxy[rows])), "in price units (scaled to the agent's fill prices)"
    else:
        scale, unit = (1 / proxy[0] if len(proxy) and proxy[0] else 1.0), "normalised to 1.0 (no fills to scale by)"
    line = Series("price (buy-and-hold proxy)", x, proxy * scale, "#555555", 1.2)
    caption = f"Price proxy: buy-and-hold equity {unit}. {_trade_summary(trades)}"
    return line_chart([line], markers, label="price and trades"), caption


def _price_proxy(equity: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Times and buy-and-hold equity from the first bar it holds a position (before it, equity is cash)."""
    x, proxy = _epoch_ms(equity["ts"]), equity["buy_and_hold_equity"].to_numpy().astype(float)
    held = np.flatnonzero(equity["buy_and_hold_position"].to_numpy() != 0)
    first = int(held[0]) if len(held) else 0
    return x[first:], proxy[first:]


def _training_section(curve: pl.DataFrame | None, metric: str, results: dict[str, Any]) -> str:
    """Validation curves vs timesteps (the selection metric and the total return), with the selected model."""
    if curve is None or curve.is_empty() or "timesteps" not in curve.columns:
        return _section("Training", '<p class="note">No validation curve (no metrics.parquet).</p>')
    x = curve["timesteps"].to_numpy().astype(float)
    figures = []
    for key in (k for k in dict.fromkeys((metric, "total_return")) if k in curve.columns):
        y = curve[key].to_numpy().astype(float)
        markers = []
        if key == metric and results.get("selected") == "best_validation":
            best = int(np.nanargmax(y))
            markers.append(Markers("selected model", x[best : best + 1], y[best : best + 1], "#d62728", "circle"))
        line = Series(f"validation {key}", x, y, _COLORS["agent"])
        chart = line_chart([line], markers, x_time=False, y_percent=key in _PERCENT, label=f"validation {key}")
        figures.append(_figure(f"Validation {key.replace('_', ' ')} vs timesteps", chart))
    return _section("Training", "".join(figures))


def _config_block(provenance: dict[str, Any]) -> str:
    """``config.json`` as indented JSON, collapsed."""
    text = json.dumps(provenance, indent=2, default=str)
    return f"<details><summary>config.json</summary><pre>{html.escape(text)}</pre></details>"


# --- chart parts ---------------------------------------------------------------------------------------------


def _grid(x_range: tuple[float, float], y_range: tuple[float, float], *, x_time: bool, y_percent: bool) -> str:
    """Plot frame, horizontal grid lines with y labels, x ticks with labels (dates for time axes)."""
    parts = [f'<rect class="frame" x="{LEFT}" y="{TOP}" width="{_plot_width()}" height="{_plot_height()}"/>']
    y_step, y_ticks = _nice_ticks(*y_range)
    for value in y_ticks:
        py = _y_px(value, y_range)
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{py:.1f}" y2="{py:.1f}"/>')
        label = _tick_label(value, y_step, percent=y_percent)
        parts.append(f'<text x="{LEFT - 6}" y="{py + 4:.1f}" text-anchor="end">{label}</text>')
    x_step, x_ticks = _time_ticks(*x_range) if x_time else _nice_ticks(*x_range)
    for value in x_ticks:
        px = _x_px(value, x_range)
        label = _date_label(value, x_step) if x_time else _tick_label(value, x_step, percent=False)
        if px + 3.3 * len(label) > WIDTH:
            continue  # the label would overflow the right edge
        parts.append(
            f'<line class="tick" x1="{px:.1f}" x2="{px:.1f}" y1="{HEIGHT - BOTTOM}" y2="{HEIGHT - BOTTOM + 4}"/>'
        )
        parts.append(f'<text x="{px:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">{label}</text>')
    return "".join(parts)


def _line(series: Series, x_range: tuple[float, float], y_range: tuple[float, float]) -> str:
    """A downsampled polyline, over a shaded area down to 0 for a filled series."""
    keep = downsample(series.x, series.y)
    px, py = _x_px(series.x[keep], x_range), _y_px(series.y[keep], y_range)
    points = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(px, py, strict=True))
    color = html.escape(series.color)
    area = ""
    if series.fill:
        base = float(np.clip(_y_px(0.0, y_range), TOP, HEIGHT - BOTTOM))
        area = (
            f'<polygon points="{points} {px[-1]:.1f},{base:.1f} {px[0]:.1f},{base:.1f}" fill="{color}" opacity=".2"/>'
        )
    line = f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="{series.width}"/>'
    return area + line


def _markers(markers: Markers, x_range: tuple[float, float], y_range: tuple[float, float]) -> str:
    """One path of all the group's shapes, at most one per 2-pixel cell."""
    px, py = _x_px(markers.x, x_range), _y_px(markers.y, y_range)
    cells = np.unique(np.column_stack([np.round(px / 2), np.round(py / 2)]), axis=0) * 2
    shapes = "".join(_shape(markers.shape, a, b) for a, b in cells)
    return f'<path d="{shapes}" fill="{html.escape(markers.color)}" opacity=".85"/>'


def _shape(shape: str, x: float, y: float) -> str:
    """SVG path commands of one marker centred on ``(x, y)``."""
    if shape == "up":
        return f"M{x:.0f} {y - 4.5:.1f}l4 7h-8z"
    if shape == "down":
        return f"M{x:.0f} {y + 4.5:.1f}l4 -7h-8z"
    return f"M{x - 3:.0f} {y:.0f}a3 3 0 1 0 6 0a3 3 0 1 0 -6 0"


def _legend(items: Sequence[Series | Markers]) -> str:
    """Swatches and labels in a row above the plot (wrapping to a second row)."""
    parts, x, y = [], float(LEFT), 14.0
    for item in items:
        width = 30 + 6.5 * len(item.label)
        if x + width > WIDTH - RIGHT and x > LEFT:
            x, y = float(LEFT), y + 14
        color = html.escape(item.color)
        if isinstance(item, Markers):
            parts.append(f'<path d="{_shape(item.shape, x + 9, y - 4)}" fill="{color}"/>')
        else:
            parts.append(
                f'<line x1="{x:.0f}" x2="{x + 18:.0f}" y1="{y - 4}" y2="{y - 4}" stroke="{color}" stroke-width="3"/>'
            )
        parts.append(f'<text x="{x + 24:.0f}" y="{y}">{html.escape(item.label)}</text>')
        x += width
    return "".join(parts)


# --- scales and ticks ----------------------------------------------------------------------------------------


def _plot_width() -> int:
    return WIDTH - LEFT - RIGHT


def _plot_height() -> int:
    return HEIGHT - TOP - BOTTOM


def _x_px(value: Any, x_range: tuple[float, float]) -> Any:
    """Horizontal pixel of ``value`` (a number or an array)."""
    return LEFT + (value - x_range[0]) / (x_range[1] - x_range[0]) * _plot_width()


def _y_px(value: Any, y_range: tuple[float, float]) -> Any:
    """Vertical pixel of ``value`` (a number or an array); larger values are higher."""
    return HEIGHT - BOTTOM - (value - y_range[0]) / (y_range[1] - y_range[0]) * _plot_height()


def _extent(values: np.ndarray, pad: float) -> tuple[float, float]:
    """The range of ``values`` widened by ``pad`` of its span on each side (never empty)."""
    low, high = float(values.min()), float(values.max())
    if high == low:
        margin = abs(low) * 0.01 or 1.0
        return low - margin, high + margin
    margin = (high - low) * pad
    return low - margin, high + margin


def _nice_ticks(low: float, high: float, count: int = 5) -> tuple[float, np.ndarray]:
    """A 1, 2, 2.5 or 5 × 10ⁿ step giving about ``count`` ticks in ``[low, high]``, and the ticks."""
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return step, np.arange(math.ceil(low / step) * step, high + step * 1e-9, step)


def _time_ticks(low: float, high: float, count: int = 6) -> tuple[float, np.ndarray]:
    """A step of whole minutes, or of calendar months from a month start, giving at most ``count`` ticks (ms)."""
    span = high - low
    for minutes in _MINUTE_STEPS:
        step = minutes * 60_000
        if span / step <= count:
            return step, np.arange(math.ceil(low / step) * step, high + 1, step)
    months = next((m for m in _MONTH_STEPS if span / (m * MONTH_MS) <= count), _MONTH_STEPS[-1])
    first, last = (np.datetime64(int(v), "ms").astype("datetime64[M]").astype(np.int64) for v in (low, high))
    index = np.arange(first, last + 1)
    starts = index[index % months == 0].astype("datetime64[M]").astype("datetime64[ms]").astype(np.int64)
    return months * MONTH_MS, starts[(starts >= low) & (starts <= high)].astype(float)


def _tick_label(value: float, step: float, *, percent: bool) -> str:
    """``value`` with as many decimals as ``step`` needs (as a percentage when ``percent``)."""
    scale, suffix = (100, "%") if percent else (1, "")
    value, step = value * scale, step * scale
    decimals = max(0, -math.floor(math.log10(step)))
    if abs(round(step, decimals) - step) > step * 1e-6:
        decimals += 1
    return f"{0.0 if abs(value) < step * 1e-6 else value:,.{decimals}f}{suffix}"


def _date_label(ms: float, step: float) -> str:
    """A UTC date as precise as ticks ``step`` ms apart need: a year, a month, a day, or a time of day."""
    formats = ((12 * MONTH_MS, "%Y"), (MONTH_MS, "%Y-%m"), (DAY_MS, "%Y-%m-%d"), (0, "%m-%d %H:%M"))
    return datetime.fromtimestamp(ms / 1000, UTC).strftime(next(f for least, f in formats if step >= least))


# --- data helpers --------------------------------------------------------------------------------------------


def _finite(series: Series) -> Series:
    """``series`` without its non-finite points."""
    x, y = np.asarray(series.x, float), np.asarray(series.y, float)
    keep = np.isfinite(x) & np.isfinite(y)
    return Series(series.label, x[keep], y[keep], series.color, series.width, series.fill)


def _within(markers: Markers, x_range: tuple[float, float]) -> Markers:
    """``markers`` without the finite points outside ``x_range``."""
    x, y = np.asarray(markers.x, float), np.asarray(markers.y, float)
    keep = np.isfinite(x) & np.isfinite(y) & (x >= x_range[0]) & (x <= x_range[1])
    return Markers(markers.label, x[keep], y[keep], markers.color, markers.shape)


def _fills(trades: pl.DataFrame) -> list[Markers]:
    """The agent's entries (by side) and exits (by outcome) at their fill times (epoch ms) and prices."""
    if trades.is_empty() or not {"side", "entry_time", "entry_price"} <= set(trades.columns):
        return []
    closed = trades.filter(pl.col("exit_time").is_not_null()) if "exit_time" in trades.columns else trades.clear()
    wins = pl.col("net_pnl") > 0 if "net_pnl" in trades.columns else pl.lit(value=False)
    groups: list[tuple[str, pl.DataFrame, str, str, Literal["up", "down", "circle"]]] = [
        ("long entry", trades.filter(pl.col("side") == "long"), "entry", "#2ca02c", "up"),
        ("short entry", trades.filter(pl.col("side") == "short"), "entry", "#d62728", "down"),
        ("exit, profit", closed.filter(wins), "exit", "#17becf", "circle"),
        ("exit, loss", closed.filter(~wins), "exit", "#000000", "circle"),
    ]
    return [
        Markers(
            label,
            rows[f"{at}_time"].to_numpy().astype(float),
            rows[f"{at}_price"].to_numpy().astype(float),
            color,
            shape,
        )
        for label, rows, at, color, shape in groups
        if rows.height
    ]


def _trade_summary(trades: pl.DataFrame) -> str:
    """How many trades the agent made, by exit reason."""
    if trades.is_empty() or "reason" not in trades.columns:
        return "The agent made no trades."
    reasons = trades["reason"].value_counts(sort=True)
    counts = ", ".join(f"{reason} {count:,}" for reason, count in reasons.iter_rows())
    return f"{trades.height:,} trades (by reason: {counts})."


def _policies(equity: pl.DataFrame) -> list[str]:
    """Policy names of the equity columns, the agent first."""
    names = [column.removesuffix("_equity") for column in equity.columns if column.endswith("_equity")]
    return sorted(names, key=lambda name: name != "agent")


def _color(policy: str, index: int) -> str:
    """A policy's colour: fixed for the agent and the known baselines."""
    return _COLORS.get(policy, _CYCLE[index % len(_CYCLE)])


def _epoch_ms(ts: pl.Series) -> np.ndarray:
    """Timestamps (datetimes or epoch ms) as float epoch milliseconds."""
    ms = ts.dt.epoch("ms") if isinstance(ts.dtype, pl.Datetime) else ts.cast(pl.Int64)
    return ms.to_numpy().astype(float)


def _optional_parquet(storage: RunStorage, name: str) -> pl.DataFrame | None:
    """Artifact ``name``, or None when the run has none."""
    return storage.read_parquet(name) if storage.exists(name) else None


# --- text ----------------------------------------------------------------------------------------------------


def _text(value: Any) -> str:
    return _MISSING if value is None else str(value)


def _count(value: Any) -> str:
    return _MISSING if value is None else f"{int(value):,}"


def _duration(seconds: Any) -> str:
    """Seconds as ``12.3 s`` or ``1h 02m 03s``."""
    if seconds is None:
        return _MISSING
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


def _selection(results: dict[str, Any], metric: str) -> str:
    """Which model was tested, with its validation score."""
    if results.get("selected") != "best_validation":
        return _text(results.get("selected"))
    return f"best on validation ({metric} {format_metric(metric, results.get('best_validation'))})"


def _period(equity: pl.DataFrame) -> str:
    """First and last bar of the split, and how many rows."""
    if equity.is_empty():
        return _MISSING
    first, last = (f"{datetime.fromtimestamp(v / 1000, UTC):%Y-%m-%d %H:%M}" for v in _epoch_ms(equity["ts"])[[0, -1]])
    return f"{first} → {last} UTC ({equity.height:,} bars)"


def _section(title: str, body: str) -> str:
    return f"<section><h2>{html.escape(title)}</h2>{body}</section>"


def _figure(title: str, chart: str, caption: str = "") -> str:
    note = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return f"<figure><h3>{html.escape(title)}</h3>{chart}{note}</figure>"


_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;color:#222;margin:0 auto;max-width:1100px;padding:16px 24px}
h1{margin:0 0 6px}h2{border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:28px}h3{font-size:15px;margin:0 0 4px}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px}dt{color:#666}dd{margin:0;font-family:monospace}
.tag{display:inline-block;background:#eef;border-radius:8px;padding:0 8px;margin-right:4px;font-size:12px}
.notes{white-space:pre-wrap}.note,figcaption{color:#666;font-size:13px}.scroll{overflow-x:auto}
table{border-collapse:collapse;font-size:13px}th,td{padding:3px 8px;border-bottom:1px solid #eee;text-align:right}
tr>th:first-child{text-align:left}tr.agent{background:#e8f1fb;font-weight:600}
figure{margin:16px 0}.chart{width:100%;height:auto;max-width:900px}.chart text{font:11px sans-serif;fill:#444}
.frame{fill:none;stroke:#bbb}.grid{stroke:#eee}.tick{stroke:#999}pre{background:#f7f7f7;padding:8px;overflow:auto}
"""


def _document(title: str, body: str) -> str:
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_STYLE}</style></head>'
        f"<body>{body}</body></html>\n"
    )
