"""Market data of an env: prices, features, ATR and volatility as contiguous arrays, built once.

:class:`MarketData` is everything :mod:`tradelab.env.core` reads while stepping, so ``step()`` only
indexes arrays: no polars, no pandas. It is built from a stored dataset (:meth:`MarketData.from_store`)
or from a polars frame of canonical bars (:meth:`MarketData.from_frame`, for tests and notebooks),
and refuses bars that fail hard validation and tools that are not causal.

Gaps. The bars are cut into *stretches* at every gap longer than the config's ``gaps.max_fill_bars``
(:func:`tradelab.data.gaps.stretches`; ``gaps.on_gap="refuse"`` refuses such data instead). Features and
the ATR are computed per stretch (:meth:`MarketData.by_stretch`), so no rolling value mixes bars from
both sides of a hole: warm-up restarts after each gap, with NaN again. Episodes stay inside one stretch
(:mod:`tradelab.env.core`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl
import talib

from tradelab.data.gaps import GapError, check_gaps
from tradelab.data.schema import TS, timeframe_ms, to_ms
from tradelab.data.splits import chronological_split
from tradelab.data.store import Store
from tradelab.data.validate import validate_bars
from tradelab.env.config import EnvConfig
from tradelab.tools.base import Bars
from tradelab.tools.features import FeatureMatrix, FeaturePipeline
from tradelab.tools.registry import Registry, default_registry

logger = logging.getLogger(__name__)


class EnvDataError(ValueError):
    """The env cannot run on this data: it fails validation, has a refused gap, a tool is not causal, or too few
    bars are left."""


@dataclass(frozen=True, slots=True)
class MarketData:
    """One series of bars prepared for stepping; every array has one entry per bar.

    :param open: bar opens, float64, quote currency.
    :param high: bar highs, float64.
    :param low: bar lows, float64.
    :param close: bar closes, float64.
    :param ts: bar open times, int64 epoch milliseconds (UTC).
    :param features: the feature matrix (float32, ``(bars, F)``, NaN during the warm-up of each stretch).
    :param atr_fraction: ATR / close, float64 (NaN during each stretch's ATR warm-up); scales stops in ATR units.
    :param vol: ``(high - low) / close``, float64; the decision bar's value drives volatility slippage.
    :param warmup: leading bars of each stretch where a feature or the ATR is undefined.
    :param first_row: first bar episodes may use (the split segment's first bar, else 0).
    :param last_row: last bar episodes may use (inclusive).
    :param dataset: description of the data, with its version when known (for logs and summaries).
    :param matrix: float64 ``(bars, 7)``: open, high, low, close, vol, atr_fraction and ts (exact as a
        float below 2**53), the rows the compiled step reads (columns ``M_*`` of :mod:`tradelab.env.kernel`).
    :param stretches: int64 ``(k, 2)``: first and last row (inclusive) of each stretch of bars without a gap
        longer than the policy's ``max_fill_bars``, oldest first; one row when the bars have no such gap.
    """

    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    ts: np.ndarray
    features: FeatureMatrix
    atr_fraction: np.ndarray
    vol: np.ndarray
    warmup: int
    first_row: int
    last_row: int
    dataset: str
    matrix: np.ndarray
    stretches: np.ndarray

    @property
    def n_bars(self) -> int:
        """Number of bars."""
        return len(self.close)

    def by_stretch(self, compute: Callable[[slice], np.ndarray]) -> np.ndarray:
        """A rolling computation that never reads across a gap: ``compute`` of each stretch's rows, concatenated.

        :param compute: rows (a slice) -> one value (or row) per bar of that slice, e.g.
            ``lambda rows: talib.SMA(market.close[rows], 60)``.
        """
        return _by_stretch(self.stretches, compute)

    @classmethod
    def from_store(cls, config: EnvConfig, store: Store | None = None, registry: Registry | None = None) -> MarketData:
        """Load ``config.dataset`` from the store, check it and compute its features (cached by dataset version).

        :param config: the env config.
        :param store: the candle store; the default one when omitted.
        :param registry: where feature tools are looked up; :func:`default_registry` when omitted.
        :return: the market data.
        :raises DataError: when the dataset does not exist.
        :raises EnvDataError: for a version mismatch, bars failing hard validation, a non-causal tool, or too
            few bars.
        """
        ds = config.dataset
        store = store if store is not None else Store()
        version = store.require(ds.symbol, ds.timeframe).content_hash
        if ds.version is not None and not version.startswith(ds.version):
            raise EnvDataError(
                f"dataset {ds.symbol}/{ds.timeframe} is version {version}, the config asks for {ds.version}: "
                "re-ingest that version or update dataset.version"
            )
        frame = store.load(ds.symbol, ds.timeframe, ds.start, ds.end)
        bounds = [to_ms(t) if t is not None else None for t in (ds.start, ds.end)]
        span = f" [{ds.start or 'first bar'}, {ds.end or 'last bar'})" if ds.start or ds.end else ""
        name = f"{ds.symbol}/{ds.timeframe}@{version[:12]}{span}"
        return cls._build(frame, config, registry, name, dataset_hash=f"{version}[{bounds[0]},{bounds[1]})")

    @classmethod
    def from_frame(
        cls, frame: pl.DataFrame, config: EnvConfig, registry: Registry | None = None, name: str = "frame"
    ) -> MarketData:
        """Check and prepare a frame of canonical bars, restricted to ``config.dataset``'s start and end.

        Features are not cached: a frame has no version.

        :param frame: canonical bars (``ts`` as datetime[ms, UTC], ``open high low close volume``), sorted.
        :param config: the env config (its dataset symbol and version are not checked against the frame).
        :param registry: where feature tools are looked up; :func:`default_registry` when omitted.
        :param name: what logs and summaries call the data.
        :return: the market data.
        :raises EnvDataError: for bars failing hard validation, a non-causal tool, or too few bars.
        """
        ds = config.dataset
        if ds.start is not None:
            frame = frame.filter(pl.col(TS).dt.epoch("ms") >= to_ms(ds.start))
        if ds.end is not None:
            frame = frame.filter(pl.col(TS).dt.epoch("ms") < to_ms(ds.end))
        return cls._build(frame, config, registry, name, dataset_hash=None)

    @classmethod
    def _build(
        cls, frame: pl.DataFrame, config: EnvConfig, registry: Registry | None, name: str, dataset_hash: str | None
    ) -> MarketData:
        registry = registry if registry is not None else default_registry()
        _refuse_non_causal(config, registry)
        if frame.height < 2:
            raise EnvDataError(f"{name} has {frame.height} bar(s) in the configured range; the env needs more")
        report = validate_bars(frame, config.dataset.timeframe, symbol=config.dataset.symbol)
        if not report.ok:
            problems = "; ".join(
                f"{f.check} ({f.count}: {f.message}{', e.g. ' + ', '.join(f.examples[:2]) if f.examples else ''})"
                for f in report.errors
            )
            raise EnvDataError(f"{name} fails hard validation, the env refuses it: {problems}")
        bars = Bars.from_frame(frame)
        try:
            spans = check_gaps(bars[TS], timeframe_ms(config.dataset.timeframe), config.gaps, name)
        except GapError as exc:
            raise EnvDataError(str(exc)) from exc
        features = _features(FeaturePipeline(config.features, registry=registry), bars, spans, dataset_hash)
        high, low, close = bars["high"], bars["low"], bars["close"]
        atr = _by_stretch(spans, lambda rows: talib.ATR(high[rows], low[rows], close[rows], config.atr_period))
        atr_fraction = atr / close
        vol = (high - low) / close
        first_row, last_row = _segment(frame, config)
        logger.info(
            "market data %s: %d bars in %d stretch(es), %d feature columns, warm-up %d, episodes in rows %d..%d",
            name,
            bars.n,
            len(spans),
            len(features.columns),
            features.warmup,
            first_row,
            last_row,
        )
        return cls(
            open=bars["open"],
            high=high,
            low=low,
            close=close,
            ts=bars[TS],
            features=features,
            atr_fraction=atr_fraction,
            vol=vol,
            warmup=max(features.warmup, config.atr_period),
            first_row=first_row,
            last_row=last_row,
            dataset=name,
            matrix=np.column_stack([bars["open"], high, low, close, vol, atr_fraction, bars[TS]]),
            stretches=spans,
        )


def _by_stretch(spans: np.ndarray, compute: Callable[[slice], np.ndarray]) -> np.ndarray:
    """See :meth:`MarketData.by_stretch`; one stretch computes over every row at once (no copy)."""
    if len(spans) == 1:
        return compute(slice(None))
    return np.concatenate([compute(slice(first, last + 1)) for first, last in spans.tolist()])


def _features(pipeline: FeaturePipeline, bars: Bars, spans: np.ndarray, dataset_hash: str | None) -> FeatureMatrix:
    """The features of ``bars``, computed per stretch so warm-up restarts after every gap.

    Each stretch is cached apart (its rows appended to ``dataset_hash``); one stretch is the whole series,
    cached as before. A stretch no longer than the warm-up is all NaN and not computed (a tool may not
    handle so few bars, and no observation could use it).
    """
    if len(spans) == 1:
        return pipeline.compute(bars, dataset_hash)

    def compute(rows: slice) -> np.ndarray:
        n = rows.stop - rows.start
        if n <= pipeline.warmup:
            return np.full((n, len(pipeline.columns)), np.nan, dtype=np.float32)
        part = Bars({column: values[rows] for column, values in bars.items()})
        key = None if dataset_hash is None else f"{dataset_hash} rows {rows.start}..{rows.stop - 1}"
        return pipeline.compute(part, key).values

    values = _by_stretch(spans, compute)
    values.flags.writeable = False
    return FeatureMatrix(values=values, columns=list(pipeline.columns), warmup=pipeline.warmup, ts=bars[TS])


def _refuse_non_causal(config: EnvConfig, registry: Registry) -> None:
    """Raise :class:`EnvDataError` naming every configured tool that is not causal."""
    tools = [registry.get(spec.tool) for spec in config.features]
    non_causal = sorted({tool.name for tool in tools if not tool.causal})
    if non_causal:
        raise EnvDataError(
            f"tool(s) {', '.join(non_causal)} are not causal (a value at bar t may use later bars): "
            "the env refuses them, as they would leak the future into observations"
        )


def _segment(frame: pl.DataFrame, config: EnvConfig) -> tuple[int, int]:
    """First and last row (inclusive) episodes may use: the configured split's segment, or every row."""
    split = config.dataset.split
    if split is None:
        return 0, frame.height - 1
    plan = chronological_split(
        frame[TS], train=split.train, val=split.val, test=split.test, embargo_bars=split.embargo_bars
    )
    segment = next((s for s in plan.segments if s.name == split.name), None)
    if segment is None:
        raise EnvDataError(f"the split has no {split.name} segment (its fraction is 0)")
    return segment.first_row, segment.last_row
