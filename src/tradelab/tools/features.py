"""The feature pipeline: a list of tool specs -> one aligned float32 matrix, cached on disk.

Each :class:`FeatureSpec` names a tool, its parameters, a column alias and an optional normalisation.
:class:`FeaturePipeline` computes them over one series of bars into a C-contiguous float32 matrix of
shape ``(bars, columns)`` whose first ``warmup`` rows are NaN and whose other rows are all finite
(tools are checked by :meth:`Tool.run`, ``ratio_close`` refuses a zero close).

Normalisations are causal like the tools themselves (the value at bar ``t`` uses bars ``<= t`` only):

- ``zscore``: ``(x - mean) / std`` over the last ``norm_window`` bars (sample std, ``ddof=1``; 0 where
  the window is flat); adds ``norm_window - 1`` bars of warm-up;
- ``ratio_close``: ``x / close - 1`` at the same bar, for price-level outputs (moving averages, bands);
- ``log``: ``sign(x) * log1p(|x|)``, for heavy-tailed outputs (volume, OBV).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from tradelab.data.schema import TS, TimeLike, to_ms
from tradelab.data.store import Store
from tradelab.tools.base import Bars, Tool
from tradelab.tools.cache import FeatureCache, cache_key
from tradelab.tools.errors import ToolError
from tradelab.tools.lookahead import LookaheadGuard
from tradelab.tools.numeric import rolling_zscore
from tradelab.tools.registry import Registry, default_registry

Norm = Literal["zscore", "ratio_close", "log"]


class FeatureSpec(BaseModel):
    """One feature: a tool, its parameters, the column alias and an optional causal normalisation.

    Written as ``{"tool": "RSI", "params": {"timeperiod": 14}, "as": "rsi14", "norm": "zscore"}``.
    """

    # "as" is a Python keyword: the field is ``as_``, read and written as "as" (by name too, from code).
    model_config = ConfigDict(extra="forbid", frozen=True, validate_by_name=True, serialize_by_alias=True)

    tool: str = Field(description="registered tool name (case-insensitive)")
    params: dict[str, Any] = Field(default_factory=dict, description="the tool's parameters; defaults when omitted")
    as_: str | None = Field(
        None,
        alias="as",
        min_length=1,
        description="column name (single output) or prefix (multi-output: <as>_<output>); the tool name lower-cased "
        "when omitted",
    )
    norm: Norm | None = Field(None, description="causal normalisation applied to every output of the tool")
    norm_window: int = Field(500, ge=2, description="bars of the rolling window of norm='zscore'")


@dataclass(frozen=True)
class FeatureMatrix:
    """Features of one series of bars.

    :param values: read-only float32 C-contiguous array of shape ``(bars, len(columns))``; rows before
        ``warmup`` are NaN, every other value is finite.
    :param columns: column names, in the order of the specs (a multi-output tool's outputs in its order).
    :param warmup: leading rows that are not defined for every column.
    :param ts: int64 array of shape ``(bars,)``: bar open times in epoch milliseconds (UTC).

    .. note::
        On a cache hit, ``values`` is a memory map of the cache file (pages load on first touch).
        The cache only ever replaces files (rename), which leaves existing maps intact; truncating a cache
        file in place would make reading ``values`` crash the process (SIGBUS). Copy it to keep it apart.
    """

    values: np.ndarray
    columns: list[str]
    warmup: int
    ts: np.ndarray


@dataclass(frozen=True)
class _Bound:
    """A spec resolved against the registry: its tool, validated parameters, columns and warm-ups."""

    spec: FeatureSpec
    tool: Tool
    params: BaseModel
    columns: list[str]
    #: The tool's own warm-up: the first bar the normalisation sees.
    tool_warmup: int
    #: The tool's plus the normalisation's warm-up.
    warmup: int

    def key(self, dataset: str) -> str:
        """Cache key of this spec's columns over ``dataset`` (the alias only names columns, so it is left out)."""
        return cache_key(
            {
                "dataset": dataset,
                "tool": self.tool.name,
                "version": self.tool.version,
                "params": self.params.model_dump(mode="json"),
                "norm": self.spec.norm,
                "norm_window": self.spec.norm_window if self.spec.norm == "zscore" else None,
            }
        )


class FeaturePipeline:
    """Compute a list of feature specs into one :class:`FeatureMatrix`, cached on disk.

    :param specs: feature specs, or mappings validated as :class:`FeatureSpec`.
    :param registry: where tool names are looked up; :func:`default_registry` when omitted.
    :param cache_dir: cache folder; ``$TRADELAB_HOME/cache/features`` when omitted.
    :param guard: the look-ahead guard every tool passes before it is computed; one keeping its verdicts in
        ``cache_dir`` when omitted.
    :raises ToolError: for an unknown tool, invalid parameters (naming the field), or two specs that
        produce the same column name.

    .. note::
        The cache is keyed by the dataset version passed to :meth:`compute` (or taken from the store's
        manifest by :meth:`compute_dataset`), the tool's name, version and validated parameters, and
        the normalisation. Without a dataset version nothing is cached: bars of unknown provenance
        could change under the same name. Look-ahead verdicts are cached by tool and parameters alone.
    """

    def __init__(
        self,
        specs: Sequence[FeatureSpec | Mapping[str, Any]],
        registry: Registry | None = None,
        cache_dir: Path | None = None,
        guard: LookaheadGuard | None = None,
    ) -> None:
        registry = registry if registry is not None else default_registry()
        self._bound = [_bind(FeatureSpec.model_validate(s), registry) for s in specs]
        self.columns = [c for b in self._bound for c in b.columns]
        repeated = sorted({c for c in self.columns if self.columns.count(c) > 1})
        if repeated:
            raise ToolError(
                f"feature columns {', '.join(repeated)} appear more than once: give the specs distinct 'as'"
            )
        #: Rows not defined for every column: the largest tool warm-up plus normalisation warm-up.
        self.warmup = max((b.warmup for b in self._bound), default=0)
        self._bounds = np.cumsum([0, *(len(b.columns) for b in self._bound)])  # each spec's column range
        self.cache = FeatureCache(cache_dir)
        self.guard = guard if guard is not None else LookaheadGuard(cache_dir)

    def compute(self, bars: Bars | pl.DataFrame, dataset_hash: str | None = None) -> FeatureMatrix:
        """Features of ``bars``, read from the cache when ``dataset_hash`` names a version computed before.

        :param bars: canonical bars (a polars frame or :class:`Bars`) with ``ts`` and every input the tools read.
        :param dataset_hash: version of the bars (e.g. a manifest's content hash plus the range); None
            disables the cache.
        :return: the feature matrix, one row per bar.
        :raises ToolError: when a tool fails, breaks its contract or looks ahead (checked on these bars the first
            time the tool is used with its parameters), or the bars lack ``ts``.
        """
        if isinstance(bars, pl.DataFrame):
            bars = Bars.from_frame(bars)
        if TS not in bars:
            raise ToolError("bars need a 'ts' column (epoch milliseconds) to compute features")
        for bound in self._bound:
            self.guard.require_causal(bound.tool, bound.params, bars)
        shape = (bars.n, len(self.columns))
        keys = [b.key(dataset_hash) for b in self._bound] if dataset_hash is not None else None
        matrix_key = cache_key({"columns": keys}) if keys is not None else None
        values = self.cache.load("matrix", matrix_key, shape) if matrix_key is not None else None
        if values is None:
            by_column, computed = self._by_column(bars, keys)
            values = np.empty(shape, dtype=np.float32)
            self._lay_out(by_column, values)
            values.flags.writeable = False
            if keys is not None and matrix_key is not None:
                # Written once everything is computed, so a failing tool leaves no partial entry set.
                for i in computed:
                    self.cache.save("columns", keys[i], by_column[self._bounds[i] : self._bounds[i + 1]])
                self.cache.save("matrix", matrix_key, values)
        return FeatureMatrix(values=values, columns=list(self.columns), warmup=self.warmup, ts=bars[TS])

    def compute_dataset(
        self,
        store: Store,
        symbol: str,
        timeframe: str = "1m",
        start: TimeLike | None = None,
        end: TimeLike | None = None,
    ) -> FeatureMatrix:
        """Features of a stored dataset over ``[start, end)``, cached under its version and the range.

        :param store: the candle store.
        :param symbol: dataset symbol.
        :param timeframe: dataset bar length.
        :param start: first bar (UTC, inclusive); the dataset's first when omitted.
        :param end: end (UTC, exclusive); past the dataset's last bar when omitted.
        :return: the feature matrix of the loaded bars.
        :raises DataError: when the dataset does not exist.
        """
        version = store.require(symbol, timeframe).content_hash
        bars = store.load(symbol, timeframe, start, end)
        # A write between reading the manifest and the bars would file these bars under the old version.
        same = store.require(symbol, timeframe).content_hash == version
        bounds = [to_ms(t) if t is not None else None for t in (start, end)]
        return self.compute(bars, f"{version}[{bounds[0]},{bounds[1]})" if same else None)

    def _by_column(self, bars: Bars, keys: list[str] | None) -> tuple[np.ndarray, list[int]]:
        """Every spec's columns, computed or read from the cache, as a float32 ``(columns, bars)`` array,
        and the indices of the specs that were computed (not read from the cache).

        Column-major, so each output is written (and cached) contiguously; :meth:`_lay_out` then makes the
        row-major matrix in one transposing copy (far cheaper than a strided pass over it per column).
        """
        by_column = np.empty((len(self.columns), bars.n), dtype=np.float32)
        jobs = [
            (bound, keys[i] if keys is not None else None, by_column[self._bounds[i] : self._bounds[i + 1]])
            for i, bound in enumerate(self._bound)
        ]
        # TA-Lib and numpy release the GIL, so specs computed on threads overlap.
        with ThreadPoolExecutor(max_workers=max(1, min(len(jobs), os.cpu_count() or 1))) as pool:
            computed = list(pool.map(lambda job: self._fill(bars, *job), jobs))  # re-raises a spec's error
        return by_column, [i for i, done in enumerate(computed) if done]

    def _lay_out(self, by_column: np.ndarray, out: np.ndarray) -> None:
        """Write ``by_column`` transposed into ``out`` (float32, ``(bars, columns)``), NaN during the warm-up."""
        out[...] = by_column.T
        out[: self.warmup] = np.nan

    def _fill(self, bars: Bars, bound: _Bound, key: str | None, out: np.ndarray) -> bool:
        """Write one spec's columns into ``out`` (float32, ``(outputs, bars)``), NaN during the spec's warm-up.

        :return: True when computed, False when read from the cache.
        """
        cached = self.cache.load("columns", key, out.shape) if key is not None else None
        if cached is not None:
            out[...] = cached
            return False
        outputs = bound.tool.run(bars, bound.params)
        for row, output in zip(out, outputs.values(), strict=True):
            row[...] = _normalise(output, bound.spec, bound.tool_warmup, bars)
        out[:, : bound.warmup] = np.nan
        return True


def _bind(spec: FeatureSpec, registry: Registry) -> _Bound:
    """Resolve ``spec``'s tool and parameters; its column names and warm-up."""
    tool = registry.get(spec.tool)
    params = tool.parse_params(spec.params)
    prefix = spec.as_ or tool.name.lower()
    outputs = tool.outputs(params)
    columns = [prefix] if len(outputs) == 1 else [f"{prefix}_{o}" for o in outputs]
    tool_warmup = tool.warmup(params)
    norm_warmup = spec.norm_window - 1 if spec.norm == "zscore" else 0
    return _Bound(spec, tool, params, columns, tool_warmup, tool_warmup + norm_warmup)


def _normalise(values: np.ndarray, spec: FeatureSpec, start: int, bars: Bars) -> np.ndarray:
    """Apply ``spec.norm`` to one float64 output whose values from bar ``start`` on are finite.

    :return: float64 array of the same shape; NaN where the normalisation is not defined yet.
    """
    if spec.norm == "zscore":
        out = np.full_like(values, np.nan)
        out[start:] = rolling_zscore(values[start:], spec.norm_window)
        return out
    if spec.norm == "ratio_close":
        if "close" not in bars:
            raise ToolError(f"norm 'ratio_close' of tool {spec.tool} needs a 'close' column")
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = values / bars["close"] - 1.0
        bad = np.flatnonzero(~np.isfinite(ratio[start:]))
        if bad.size:
            bar = int(bad[0]) + start
            raise ToolError(
                f"norm 'ratio_close' of tool {spec.tool} is not finite at bar {bar} (close {bars['close'][bar]})"
            )
        return ratio
    if spec.norm == "log":
        return np.sign(values) * np.log1p(np.abs(values))
    return values
