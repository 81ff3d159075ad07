"""The HTML report of a run: self-contained, escaped, every policy and chart, small for long series."""

from __future__ import annotations

import math
import shutil
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from tests.experiments.runs import stored, tiny_config
from tradelab.data.store import Store
from tradelab.experiments.artifacts import RunStorage
from tradelab.experiments.evaluation import BASELINES
from tradelab.experiments.report import BUCKETS, downsample, format_metric, write_report
from tradelab.experiments.runner import run_experiment

VOID = frozenset({"meta", "link", "br", "hr", "img", "input", "area", "base", "col", "embed", "source", "track", "wbr"})


class Checked(HTMLParser):
    """A document parsed with the stdlib parser: its tags, attributes, text, and any unbalanced tag."""

    def __init__(self, document: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: Counter[str] = Counter()
        self.attributes: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.errors: list[str] = []
        self._open: list[str] = []
        self.feed(document)
        self.close()
        self.errors += [f"unclosed <{tag}>" for tag in self._open]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_startendtag(tag, attrs)
        if tag not in VOID:
            self._open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] += 1
        self.attributes.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        expected = self._open.pop() if self._open else None
        if expected != tag:
            self.errors.append(f"</{tag}> closes <{expected}>")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny run's folder, trained once for the module (copy it before changing it)."""
    root = tmp_path_factory.mktemp("report")
    (outcome,) = run_experiment(tiny_config(), root / "runs", store=stored(Store(root / "store")), progress=False)
    return Path(outcome.url)


@pytest.fixture
def run(finished_run: Path, tmp_path: Path) -> RunStorage:
    """A copy of the tiny run's folder for this test."""
    return RunStorage(shutil.copytree(finished_run, tmp_path / "run"))


def render(run: RunStorage) -> tuple[str, Checked]:
    """Write the report; return its text, parsed and checked to be balanced HTML."""
    path = write_report(run)
    assert path == run.path("report.html")
    document = Path(path).read_text(encoding="utf-8")
    parsed = Checked(document)
    assert parsed.errors == []
    return document, parsed


def assert_self_contained(document: str, parsed: Checked) -> None:
    assert "http://" not in document and "https://" not in document
    assert parsed.tags["script"] == 0 and parsed.tags["link"] == 0 and parsed.tags["img"] == 0
    assert not [attrs for _tag, attrs in parsed.attributes if {"src", "href"} & set(attrs)]


def test_the_report_shows_the_run_its_metrics_and_charts(run: RunStorage) -> None:
    document, parsed = render(run)
    results = run.read_json("results.json")
    assert_self_contained(document, parsed)
    assert document.startswith("<!DOCTYPE html>") and parsed.tags["h1"] == 1
    text = " ".join(parsed.text)
    assert "tiny" in text and run.read_json("config.json")["dataset"] in text and "PPO" in text
    for policy in ("agent", *BASELINES):
        assert f"<th>{policy}</th>" in document, policy
    assert '<tr class="agent"><th>agent</th>' in document
    for metrics in results["test"].values():
        assert f">{metrics['total_return'] * 100:,.2f}%<" in document
        assert f">{metrics['max_drawdown'] * 100:,.2f}%<" in document
        assert f">{metrics['sharpe']:,.2f}<" in document
        assert f">{metrics['n_trades']:,}<" in document
    low, high = results["agent_sharpe_ci95"]
    assert f"[{low:,.2f}, {high:,.2f}]" in text
    assert parsed.tags["svg"] == 5  # equity, drawdown, price and trades, validation sharpe and total return
    assert "config.json" in text and parsed.tags["details"] == 1


def test_every_string_from_the_run_is_escaped(run: RunStorage) -> None:
    provenance = run.read_json("config.json")
    evil = "<script>alert('x')</script>"
    provenance["config"] |= {"name": f"run{evil}", "notes": f"notes {evil}", "tags": [evil]}
    provenance["dataset"] = evil
    run.write_json("config.json", provenance)
    document, parsed = render(run)
    assert "<script" not in document.lower() and parsed.tags["script"] == 0
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in document
    assert f"run{evil}" in parsed.text  # the title reads as the name once unescaped


def test_a_run_without_training_curve_or_trades_still_renders(run: RunStorage) -> None:
    Path(run.path("metrics.parquet")).unlink()
    run.write_parquet("trades_test.parquet", pl.DataFrame())
    document, parsed = render(run)
    assert_self_contained(document, parsed)
    assert parsed.tags["svg"] == 3 and "no trades" in document and "No validation curve" in document


def test_infinite_metrics_show_as_infinity(run: RunStorage) -> None:
    results = run.read_json("results.json")
    results["test"]["agent"] |= {"profit_factor": math.inf, "sortino": -math.inf}
    run.write_json("results.json", results)
    document, _parsed = render(run)
    assert ">∞<" in document and ">-∞<" in document


@pytest.mark.parametrize(
    ("key", "value", "shown"),
    [
        ("total_return", 0.123456, "12.35%"),
        ("max_drawdown", 0.5, "50.00%"),
        ("sharpe", 1234.567, "1,234.57"),
        ("profit_factor", math.inf, "∞"),
        ("n_trades", 12345, "12,345"),
        ("calmar", float("nan"), "—"),
    ],
)
def test_metrics_are_formatted_by_kind(key: str, value: float, shown: str) -> None:
    assert format_metric(key, value) == shown


def test_downsampling_keeps_the_extremes_and_the_ends() -> None:
    rng = np.random.default_rng(0)
    x = np.arange(200_000, dtype=float)
    y = np.cumsum(rng.normal(size=x.size))
    keep = downsample(x, y)
    assert len(keep) <= 2 * BUCKETS + 2 and np.all(np.diff(keep) > 0)
    assert {0, x.size - 1, int(y.argmin()), int(y.argmax())} <= set(keep.tolist())
    assert y[keep].min() == y.min() and y[keep].max() == y.max()
    np.testing.assert_array_equal(downsample(x[:100], y[:100]), np.arange(100))  # short series stay whole


def test_a_long_split_gives_a_small_report(run: RunStorage) -> None:
    rows, rng = 200_000, np.random.default_rng(1)
    epoch = 1_704_067_200_000 + 60_000 * np.arange(rows)  # 1-minute bars from 2024-01-01 UTC
    ts = pl.from_epoch(pl.Series("ts", epoch), time_unit="ms").dt.replace_time_zone("UTC")
    columns: dict[str, object] = {"ts": ts}
    for policy in ("agent", *BASELINES):
        columns[f"{policy}_equity"] = 10_000 * np.exp(np.cumsum(rng.normal(0, 1e-3, rows)))
        columns[f"{policy}_position"] = np.ones(rows)
    run.write_parquet("equity_test.parquet", pl.DataFrame(columns))
    entries = np.arange(0, rows - 5, 10)  # 20,000 trades
    price = columns["buy_and_hold_equity"] * 3  # type: ignore[operator]
    trades = pl.DataFrame(
        {
            "side": ["long", "short"] * (len(entries) // 2),
            "entry_time": epoch[entries],
            "entry_price": price[entries],
            "exit_time": epoch[entries + 5],
            "exit_price": price[entries + 5],
            "net_pnl": rng.normal(size=len(entries)),
            "reason": "signal",
        }
    )
    run.write_parquet("trades_test.parquet", trades)
    document, parsed = render(run)
    assert len(document.encode()) < 1_500_000
    assert parsed.tags["svg"] == 5 and "20,000 trades" in document
    lines = [attrs["points"] or "" for tag, attrs in parsed.attributes if tag == "polyline"]
    assert lines and max(len(points.split()) for points in lines) <= 2 * BUCKETS + 2
    assert ">2024-02<" in document and ">2024-05<" in document  # month ticks on the time axes


@pytest.mark.parametrize(("days", "marked"), [(7.0, True), (45.0, False)])
def test_annualised_metrics_of_a_short_window_carry_a_caveat(run: RunStorage, days: float, marked: bool) -> None:
    results = run.read_json("results.json")
    for metrics in results["test"].values():
        metrics["window_days"] = days
    run.write_json("results.json", results)
    document, parsed = render(run)
    titled = [attrs["title"] for tag, attrs in parsed.attributes if tag == "th" and attrs.get("title")]
    assert ("calmar †" in document and "annual return †" in document) is marked
    assert ("† annualised from 7.0 traded days (under 30)" in document) is marked
    assert len(titled) == (6 if marked else 0)  # annual return, volatility, Sharpe, Sortino, Calmar, turnover
    assert "total return †" not in document and "max drawdown †" not in document
