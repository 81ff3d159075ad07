"""The Tool interface: an indicator as name, version, parameters, inputs, outputs, warm-up and compute.

A tool computes over the whole series at once (vectorized) and is causal by contract: its value at
bar ``t`` depends only on bars ``<= t``. The look-ahead guard (:mod:`tradelab.tools.lookahead`) checks
that claim where a tool is first used (future bars are perturbed and the past must not move); a tool
that cannot promise it sets ``causal = False`` and the environment refuses it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict

from tradelab.data.schema import TS
from tradelab.plugins import parse_params
from tradelab.tools.errors import ToolError


class NoParams(BaseModel):
    """Parameters of a tool that takes none."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Bars(Mapping[str, np.ndarray]):
    """Columns of a bar frame as contiguous arrays: ``ts`` as int64 epoch milliseconds, the rest float64.

    Built once per series and shared by every tool, so no tool touches polars or pandas.

    :param columns: column name -> 1-D array, all of the same length.
    """

    def __init__(self, columns: Mapping[str, np.ndarray]) -> None:
        lengths = {len(a) for a in columns.values()}
        if len(lengths) > 1:
            raise ToolError(f"bar columns differ in length: {sorted(lengths)}")
        self._columns = dict(columns)
        self.n = lengths.pop() if lengths else 0

    @classmethod
    def from_frame(cls, frame: pl.DataFrame) -> Bars:
        """Arrays of a canonical bar frame (see :mod:`tradelab.data.schema`)."""
        columns = {}
        for name in frame.columns:
            series = frame[name]
            if name == TS:
                columns[name] = np.ascontiguousarray(series.dt.epoch("ms").to_numpy(), dtype=np.int64)
            elif series.dtype.is_numeric() or series.dtype == pl.Boolean:
                columns[name] = np.ascontiguousarray(series.cast(pl.Float64).to_numpy(), dtype=np.float64)
        return cls(columns)

    def __getitem__(self, name: str) -> np.ndarray:
        return self._columns[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._columns)

    def __len__(self) -> int:
        return len(self._columns)

    def head(self, n: int) -> Bars:
        """The first ``n`` bars (views, no copy)."""
        return Bars({k: v[:n] for k, v in self._columns.items()})


class Tool(ABC):
    """Base class of every indicator tool.

    Subclasses set the class attributes and implement :meth:`warmup` and :meth:`compute`;
    :meth:`outputs` defaults to one column named after the tool.

    .. note::
        Call tools through :meth:`run`, which validates parameters and checks the output contract
        (length, no NaN or inf after the declared warm-up); :meth:`compute` is the raw function.
    """

    name: ClassVar[str] = ""
    version: ClassVar[str] = ""
    description: ClassVar[str] = ""
    #: A pydantic model; its JSON Schema is what the UI and the API show.
    Params: ClassVar[type[BaseModel]] = NoParams
    #: Canonical columns the tool reads (``ts``, ``open``, ``high``, ``low``, ``close``, ``volume``, ...).
    inputs: ClassVar[tuple[str, ...]] = ("close",)
    #: False for a tool whose value at bar t may depend on later bars; the env refuses such tools.
    causal: ClassVar[bool] = True
    #: Where the tool came from: ``builtin``, ``talib``, ``manifest:<folder>``, ``entry-point:<dist>``.
    origin: str = "builtin"
    #: A manifest tool's folder (set by the registry): its files identify the tool's code for the look-ahead guard.
    source_dir: Path | None = None
    group: ClassVar[str] = ""

    def outputs(self, params: Any) -> list[str]:
        """Names of the output columns for ``params`` (one per array :meth:`compute` returns)."""
        return [self.name.lower()]

    @abstractmethod
    def warmup(self, params: Any) -> int:
        """Bars at the start of a series whose output is not yet defined (NaN or meaningless)."""

    @abstractmethod
    def compute(self, bars: Bars, params: Any) -> np.ndarray | Mapping[str, np.ndarray]:
        """Vectorized computation over the whole series.

        :param bars: the input columns (at least :attr:`inputs`), all of length ``bars.n``.
        :param params: an instance of :attr:`Params`.
        :return: one array of length ``bars.n`` for a single output, or output name -> array.
        """

    def parse_params(self, params: BaseModel | Mapping[str, Any] | None = None) -> BaseModel:
        """Validate ``params`` (a mapping, a :attr:`Params` instance, or None for the defaults).

        :raises ToolError: naming the tool and the invalid field.
        """
        return parse_params(self.Params, params, ToolError, f"tool {self.name}")

    def params_schema(self) -> dict[str, Any]:
        """JSON Schema of the parameters."""
        return self.Params.model_json_schema()

    def run(self, bars: Bars, params: BaseModel | Mapping[str, Any] | None = None) -> dict[str, np.ndarray]:
        """Compute and check the contract: every output has one finite float64 value per bar after the warm-up.

        :return: output name -> float64 array of length ``bars.n`` (NaN during the warm-up).
        :raises ToolError: unknown inputs, a failing computation, a wrong length, or NaN/inf after the
            warm-up, naming the tool, the output and the bar.
        """
        parsed = self.parse_params(params)
        missing = [c for c in self.inputs if c not in bars]
        if missing:
            raise ToolError(f"tool {self.name} needs column(s) {', '.join(missing)}, which the bars lack")
        names = self.outputs(parsed)
        try:
            result = self.compute(bars, parsed)
        except ToolError:
            raise
        except Exception as exc:
            raise ToolError(f"tool {self.name} failed: {type(exc).__name__}: {exc}") from exc
        arrays = dict(result) if isinstance(result, Mapping) else {names[0]: result}
        if list(arrays) != names:
            raise ToolError(f"tool {self.name} returned outputs {list(arrays)}, declared {names}")
        warmup = self.warmup(parsed)
        checked = {}
        for name, values in arrays.items():
            values = np.asarray(values, dtype=np.float64)
            if values.shape != (bars.n,):
                raise ToolError(f"tool {self.name} output {name} has shape {values.shape}, expected ({bars.n},)")
            finite = np.isfinite(values[warmup:])
            if not finite.all():
                bar = int(np.argmin(finite)) + warmup
                when = _when(bars, bar)
                raise ToolError(
                    f"tool {self.name} output {name} is {values[bar]} at bar {bar}{when}, after its warm-up of "
                    f"{warmup} bars"
                )
            checked[name] = values
        return checked


def _when(bars: Bars, bar: int) -> str:
    if TS not in bars:
        return ""
    return f" ({np.datetime64(int(bars[TS][bar]), 'ms')} UTC)"
