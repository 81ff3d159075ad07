"""``/env-configs``: named env configs as immutable versions (1, 2, …); a change is a new version, never an edit."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from tradelab.env.config import EnvConfig
from tradelab.server.deps import SessionDep, require_admin
from tradelab.server.models import EnvConfigVersion
from tradelab.server.routes.common import MAX_JSON_INT, Id, UtcDatetime
from tradelab.server.routes.tools import param_errors
from tradelab.tools.registry import default_registry

router = APIRouter(prefix="/env-configs", tags=["env-configs"], dependencies=[Depends(require_admin)])

_NAME: dict[str, Any] = {"min_length": 1, "max_length": 200, "pattern": r"^[A-Za-z0-9_.-]+$"}
#: An env config's name, in a body and in a path.
Name = Annotated[str, Field(**_NAME)]
PathName = Annotated[str, Path(**_NAME)]


class EnvConfigCreate(BaseModel):
    """A new version of the env config ``name`` (its first when the name is new)."""

    name: Name
    config: dict[str, Any] = Field(description="an EnvConfig (see GET /schemas/env)")


class EnvConfigPublic(BaseModel):
    """One version of a named env config, as validated (defaults filled in)."""

    id: int
    name: str
    version: int
    config: dict[str, Any]
    created_at: UtcDatetime


class EnvConfigsPublic(BaseModel):
    """A page of env config versions, and how many there are in all."""

    data: list[EnvConfigPublic]
    count: int


def _public(row: EnvConfigVersion) -> EnvConfigPublic:
    return EnvConfigPublic.model_validate(row, from_attributes=True)


def _feature_errors(config: EnvConfig) -> list[dict[str, Any]]:
    """What the JSON Schema cannot check: each feature's tool is registered and its params fit the tool."""
    registry = default_registry()
    errors: list[dict[str, Any]] = []
    for index, feature in enumerate(config.features):
        loc = ("body", "config", "features", index)
        if feature.tool not in registry:
            errors.append({"type": "value_error", "loc": (*loc, "tool"), "msg": f"no tool named {feature.tool!r}"})
        else:
            errors += param_errors(registry.get(feature.tool), feature.params, (*loc, "params"))
    return errors


@router.post("", status_code=status.HTTP_201_CREATED, responses={409: {"description": "a concurrent new version"}})
def create_version(body: EnvConfigCreate, session: SessionDep) -> EnvConfigPublic:
    """Validate the config against ``EnvConfig`` (422 lists every problem) and store it as the name's next version."""
    try:
        config = EnvConfig.model_validate(body.config)
    except ValidationError as error:
        raise RequestValidationError(
            [{"type": e["type"], "loc": ("body", "config", *e["loc"]), "msg": e["msg"]} for e in error.errors()]
        ) from None
    errors = _feature_errors(config)
    if errors:
        raise RequestValidationError(errors)
    latest = session.scalar(select(func.max(EnvConfigVersion.version)).where(EnvConfigVersion.name == body.name))
    row = EnvConfigVersion(
        name=body.name, version=(latest or 0) + 1, config=config.model_dump(mode="json", by_alias=True)
    )
    session.add(row)
    try:
        session.flush()
    except IntegrityError:
        raise HTTPException(status.HTTP_409_CONFLICT, f"{body.name} got a new version meanwhile; retry") from None
    return _public(row)


@router.get("")
def list_latest(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_JSON_INT)] = 0,
) -> EnvConfigsPublic:
    """The latest version of each named env config, by name; ``count`` is the number of names."""
    latest = (
        select(EnvConfigVersion.name, func.max(EnvConfigVersion.version).label("version"))
        .group_by(EnvConfigVersion.name)
        .subquery()
    )
    count = session.scalar(select(func.count()).select_from(latest)) or 0
    rows = session.scalars(
        select(EnvConfigVersion)
        .join(latest, (EnvConfigVersion.name == latest.c.name) & (EnvConfigVersion.version == latest.c.version))
        .order_by(EnvConfigVersion.name)
        .limit(limit)
        .offset(offset)
    ).all()
    return EnvConfigsPublic(data=[_public(r) for r in rows], count=count)


@router.get("/{name}/versions", responses={404: {"description": "no env config of that name"}})
def list_versions(name: PathName, session: SessionDep) -> EnvConfigsPublic:
    """Every version of the env config ``name``, oldest first."""
    rows = session.scalars(
        select(EnvConfigVersion).where(EnvConfigVersion.name == name).order_by(EnvConfigVersion.version)
    ).all()
    if not rows:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no env config named {name!r}")
    return EnvConfigsPublic(data=[_public(r) for r in rows], count=len(rows))


@router.get("/{name}/versions/{version}", responses={404: {"description": "no such version"}})
def get_version(name: PathName, version: Id, session: SessionDep) -> EnvConfigPublic:
    """Version ``version`` of the env config ``name``."""
    row = session.scalar(
        select(EnvConfigVersion).where(EnvConfigVersion.name == name, EnvConfigVersion.version == version)
    )
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no version {version} of env config {name!r}")
    return _public(row)
