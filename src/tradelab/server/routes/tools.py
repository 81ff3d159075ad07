"""``/tools``: the registered feature tools, their parameters (JSON Schema) and outputs, and previews of them over
a dataset."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError

from tradelab.data.errors import DataError
from tradelab.data.schema import TS, to_ms
from tradelab.server.deps import SessionDep, require_admin
from tradelab.server.routes.common import MAX_ID, ClientDatetime, JsonInt
from tradelab.server.routes.datasets import StoreDep, chart_range, get_dataset_row, load_bars
from tradelab.tools.base import Tool
from tradelab.tools.errors import ToolError
from tradelab.tools.features import FeaturePipeline, FeatureSpec
from tradelab.tools.registry import default_registry

router = APIRouter(prefix="/tools", tags=["tools"], dependencies=[Depends(require_admin)])


class ToolPublic(BaseModel):
    """A tool with its default parameters' outputs and warm-up."""

    name: str
    version: str
    description: str
    group: str
    origin: str = Field(description="builtin, talib, manifest:<folder> or entry-point:<distribution>")
    kind: str = Field(description="the origin without its detail: builtin, talib, manifest or entry-point")
    causal: bool
    inputs: list[str]
    outputs: list[str]
    warmup: int
    params_schema: dict[str, Any]


class ToolsPublic(BaseModel):
    """Tools, in registry order."""

    data: list[ToolPublic]
    count: int


def param_errors(tool: Tool, params: dict[str, Any], loc: tuple[str | int, ...]) -> list[dict[str, Any]]:
    """The 422 errors (FastAPI's shape) of ``params`` against the tool's parameters, located under ``loc``."""
    try:
        tool.Params.model_validate(params)
    except ValidationError as error:
        return [{"type": e["type"], "loc": (*loc, *e["loc"]), "msg": e["msg"]} for e in error.errors()]
    return []


def _public(tool: Tool) -> ToolPublic:
    params = tool.parse_params()
    return ToolPublic(
        name=tool.name,
        version=tool.version,
        description=tool.description,
        group=tool.group,
        origin=tool.origin,
        kind=tool.origin.partition(":")[0],
        causal=tool.causal,
        inputs=list(tool.inputs),
        outputs=tool.outputs(params),
        warmup=tool.warmup(params),
        params_schema=tool.params_schema(),
    )


@router.get("")
def list_tools(
    search: Annotated[str | None, Query(description="only tools whose name, group or description contain it")] = None,
) -> ToolsPublic:
    """Every registered tool: built-ins, the TA-Lib pack, manifest and plugin tools."""
    needle = (search or "").lower()
    data = [_public(t) for t in default_registry() if needle in f"{t.name} {t.group} {t.description}".lower()]
    return ToolsPublic(data=data, count=len(data))


def _get(name: str) -> Tool:
    try:
        return default_registry().get(name)
    except ToolError as error:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from None


@router.get("/{name}", responses={404: {"description": "no such tool"}})
def get_tool(name: str) -> ToolPublic:
    """One tool, by name in any case."""
    return _public(_get(name))


class ToolPreview(BaseModel):
    """A tool to compute over a registered dataset's ``[start, end)`` (its last 2 days by default)."""

    dataset_id: JsonInt = Field(ge=1, le=MAX_ID)
    params: dict[str, Any] = Field(default_factory=dict, description="the tool's parameters; defaults when omitted")
    start: ClientDatetime | None = None
    end: ClientDatetime | None = Field(None, description="exclusive; at or before start, the range is empty")
    max_points: JsonInt = Field(2_000, ge=10, le=20_000, description="the most rows answered")


class ToolPreviewPublic(BaseModel):
    """A tool's outputs over the range, one column per output, every ``k``-th bar when there are too many."""

    tool: str
    columns: list[str]
    time: list[int] = Field(description="bar open times, epoch seconds (UTC)")
    values: dict[str, list[float | None]] = Field(description="column -> its values; null where not defined")
    warmup: int = Field(description="bars the tool needs before its first defined value (read before start)")


@router.post(
    "/{name}/preview",
    responses={404: {"description": "no such tool or dataset, or the dataset is not in the store"}},
)
def preview_tool(name: str, body: ToolPreview, session: SessionDep, store: StoreDep) -> ToolPreviewPublic:
    """Compute a tool as ``tradelab tools compute`` does, over the range and the warm-up bars before it (so the
    first values are defined; tools are causal, so bars after ``end`` change nothing).

    The range's rows are thinned to every ``k``-th one, ``k = ceil(rows / max_points)``: a preview, not a chart
    of every extreme. Nothing is cached (ranges are arbitrary); an invalid parameter is a 422 located at
    ``("body", "params", <name>)``.
    """
    tool = _get(name)
    errors = param_errors(tool, body.params, ("body", "params"))
    if errors:
        raise RequestValidationError(errors)
    params = tool.Params.model_validate(body.params)
    row = get_dataset_row(session, body.dataset_id)
    start, end = chart_range(row, body.start, body.end, timedelta(days=2))
    pipeline = FeaturePipeline([FeatureSpec(tool=tool.name, params=params.model_dump(mode="json"))])
    # The warm-up bars before start: the last ``warmup`` bar times before it (only the time column is read).
    try:
        before = store.query(row.symbol, row.timeframe, lambda bars: bars.select(TS).tail(pipeline.warmup), end=start)
    except DataError as error:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from None
    bars = load_bars(store, row, before[TS][0] if pipeline.warmup and before.height else start, end)
    try:
        features = pipeline.compute(bars)
    except ToolError as error:
        detail = [{"type": "tool_error", "loc": ["body", "params"], "msg": str(error)}]
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail) from None
    kept = np.flatnonzero(features.ts >= to_ms(start))
    kept = kept[:: -(-len(kept) // body.max_points) or 1]
    columns = zip(features.columns, features.values[kept].T.tolist(), strict=True)
    return ToolPreviewPublic(
        tool=tool.name,
        columns=features.columns,
        time=(features.ts[kept] // 1000).tolist(),
        values={c: [None if math.isnan(v) else v for v in column] for c, column in columns},
        warmup=pipeline.warmup,
    )
