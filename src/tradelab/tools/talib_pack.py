"""The TA-Lib pack: every TA-Lib function whose inputs are bar columns, as a :class:`Tool`.

Everything comes from TA-Lib's own metadata (``talib.abstract.Function(name).info`` and the optional
input descriptions): inputs, parameters with their defaults and help text, output names, and the
warm-up, which is TA-Lib's lookback for the parameters. Nothing here re-implements an indicator.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Self

import numpy as np
import talib
from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator
from talib import abstract

from tradelab.tools.base import Bars, Tool
from tradelab.tools.errors import ToolError

#: Columns a TA-Lib input may map to; a function reading anything else (MAVP's ``periods``) is skipped.
BAR_COLUMNS = ("open", "high", "low", "close", "volume")

#: TA-Lib functions left out of the pack, with the reason.
SKIPPED: dict[str, str] = {
    "MAVP": "its 'periods' input is a per-bar series of periods, not a bar column",
    "ACOS": "arc cosine is undefined (NaN) outside [-1, 1], and prices lie outside it",
    "ASIN": "arc sine is undefined (NaN) outside [-1, 1], and prices lie outside it",
    "COSH": "hyperbolic cosine overflows to inf for inputs above ~710",
    "SINH": "hyperbolic sine overflows to inf for inputs above ~710",
    "EXP": "the exponential overflows to inf for inputs above ~709",
}

# TA-Lib's integer kinds of optional input (``TA_OptInput_IntegerRange``, ``TA_OptInput_IntegerList``);
# the others are reals.
_INTEGER_RANGE, _INTEGER_LIST = 2, 3
# TA-Lib's own table of moving-average types (it has no public accessor).
_MA_TYPES: dict[int, str] = dict(talib.MA_Type._lookup)
_MA_HELP = ", ".join(f"{code} = {name}" for code, name in sorted(_MA_TYPES.items()))


def lookback(function: str, params: Mapping[str, Any]) -> int:
    """TA-Lib's lookback of ``function``: bars consumed before its first output.

    :param function: TA-Lib function name, e.g. ``"RSI"``.
    :param params: values of its optional inputs (missing ones keep TA-Lib's defaults).
    :return: the lookback, or -1 when TA-Lib rejects the parameters (out of its ranges).
    """
    handle = abstract.Function(function)
    handle.parameters = dict(params)
    return handle.lookback


class TalibParams(BaseModel):
    """Base of the generated parameter models: frozen, no unknown fields, and accepted by TA-Lib.

    TA-Lib does not expose its parameter ranges to Python, so the fields carry only the obvious bounds;
    TA-Lib's own range check (a lookback of -1) catches the rest at validation time.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    #: The TA-Lib function these parameters belong to.
    function: ClassVar[str] = ""

    @model_validator(mode="after")
    def _accepted_by_talib(self) -> Self:
        values = self.model_dump()
        if lookback(self.function, values) < 0:
            # Name the fields TA-Lib rejects on their own; else it is the combination.
            rejected = ", ".join(f"{k}={v}" for k, v in values.items() if lookback(self.function, {k: v}) < 0)
            raise ValueError(f"TA-Lib's {self.function} rejects {rejected or values}: outside its range")
        return self


def _params_model(function: str, defaults: Mapping[str, int | float]) -> type[TalibParams]:
    """A pydantic model of ``function``'s optional inputs: TA-Lib's defaults, types, titles and help."""
    fields: dict[str, Any] = {}
    for index, (name, default) in enumerate(defaults.items()):
        info = talib._ta_lib._ta_getOptInputParameterInfo(function.encode(), index)
        described: dict[str, Any] = {"title": info["display_name"], "description": info["help"]}
        if info["type"] == _INTEGER_LIST:  # TA-Lib's only integer lists are moving-average types
            described["description"] = f"{info['help']}: {_MA_HELP}"
            field = Field(default, ge=min(_MA_TYPES), le=max(_MA_TYPES), **described)
        elif info["type"] == _INTEGER_RANGE:
            field = Field(default, ge=1, **described)
        else:
            field = Field(default, allow_inf_nan=False, **described)
        fields[name] = (type(default), field)
    model = create_model(
        f"{function}Params", __base__=TalibParams, __doc__=f"Parameters of TA-Lib's {function}.", **fields
    )
    model.function = function
    return model


class TalibTool(Tool):
    """One TA-Lib function as a tool (see :func:`talib_tools` for the whole pack).

    :param function: TA-Lib function name, e.g. ``"RSI"``; its inputs must be bar columns.
    :raises ToolError: for a function TA-Lib lacks or one that reads a series that is not a bar column.
    """

    def __init__(self, function: str) -> None:
        try:
            info = abstract.Function(function).info
        except Exception as exc:  # TA-Lib raises a bare Exception for an unknown name
            raise ToolError(f"TA-Lib has no function {function!r}") from exc
        columns = []
        for series in info["input_names"].values():
            columns.extend([series] if isinstance(series, str) else series)
        foreign = [c for c in columns if c not in BAR_COLUMNS]
        if foreign:
            raise ToolError(f"TA-Lib's {function} reads {', '.join(foreign)}, which are not bar columns")
        self.name = info["name"]
        self.version = f"talib-{talib.__version__}"
        self.description = info["display_name"]
        self.group = info["group"]
        self.origin = "talib"
        # In the positional order of TA-Lib's function API.
        self.inputs = tuple(columns)
        self.Params = _params_model(self.name, info["parameters"])
        self._outputs = list(info["output_names"])
        self._function = getattr(talib, self.name)

    def outputs(self, params: Any) -> list[str]:
        """TA-Lib's output names (``real``, ``integer``, ``macd``, ...), whatever the parameters."""
        return list(self._outputs)

    def warmup(self, params: Any) -> int:
        """TA-Lib's lookback for ``params``."""
        return lookback(self.name, params.model_dump())

    def compute(self, bars: Bars, params: Any) -> dict[str, np.ndarray]:
        """Call TA-Lib's function API on the input columns.

        :return: output name -> float64 array (pattern functions' integer codes are cast).
        :raises ToolError: when TA-Lib fails, naming the tool and the parameters.
        """
        arrays = [np.ascontiguousarray(bars[c], dtype=np.float64) for c in self.inputs]
        try:
            result = self._function(*arrays, **params.model_dump())
        except Exception as exc:  # TA-Lib raises a bare Exception carrying its error code
            raise ToolError(f"tool {self.name} failed with parameters {params.model_dump()}: {exc}") from exc
        values = result if isinstance(result, tuple) else (result,)
        return {name: np.asarray(v, dtype=np.float64) for name, v in zip(self._outputs, values, strict=True)}


def talib_tools() -> list[TalibTool]:
    """One :class:`TalibTool` per TA-Lib function, in TA-Lib's order, less those in :data:`SKIPPED`."""
    return [TalibTool(name) for name in talib.get_functions() if name not in SKIPPED]
