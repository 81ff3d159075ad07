"""``/schemas``: the JSON Schemas of the env and experiment configs, for the UI's forms."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from tradelab.env.config import EnvConfig
from tradelab.experiments.config import config_schema
from tradelab.server.deps import require_admin

router = APIRouter(prefix="/schemas", tags=["schemas"], dependencies=[Depends(require_admin)])


@router.get("/env")
def env_schema() -> dict[str, Any]:
    """The JSON Schema of ``EnvConfig`` (what ``POST /env-configs`` validates against)."""
    return EnvConfig.model_json_schema()


@router.get("/experiment")
def experiment_schema() -> dict[str, Any]:
    """The JSON Schema of ``ExperimentConfig`` (what ``POST /experiments`` validates against)."""
    return config_schema()
