"""``/tools``: the registered feature tools, their parameters (JSON Schema) and outputs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, status
from pydantic import BaseModel, Field

from tradelab.server.deps import require_admin
from tradelab.tools.base import Tool
from tradelab.tools.errors import ToolError
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


@router.get("/{name}", responses={404: {"description": "no such tool"}})
def get_tool(name: str) -> ToolPublic:
    """One tool, by name in any case."""
    try:
        return _public(default_registry().get(name))
    except ToolError as error:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from None
