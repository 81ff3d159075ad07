"""A run's artifacts: the file listing, downloads, and the equity curves and trades of a split as JSON."""

from __future__ import annotations

import mimetypes
from datetime import datetime
from functools import lru_cache
from typing import Annotated, Any, Literal

import numpy as np
import polars as pl
from fastapi import APIRouter, HTTPException, Path, Query, Response, status
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from tradelab.compute.storage import filesystem
from tradelab.experiments.artifacts import RunStorage
from tradelab.server.deps import AdminDep, SessionDep
from tradelab.server.lttb import lttb_indices
from tradelab.server.routes.common import Id
from tradelab.server.routes.runs import get_run, input_runs
from tradelab.server.run_folders import folder_of

router = APIRouter(
    tags=["artifacts"],
    responses={
        404: {"description": "no such run, artifact folder or file"},
        409: {"description": "the run's artifact folder is not inside its run folder under the storage root"},
    },
)

Split = Literal["train", "val", "test"]
#: A file's path inside a run folder as the schema states it: names that do not start with a dot, joined by ``/``
#: (nothing that could leave the folder: no ``..``, no leading ``/``, no drive or URL scheme, no backslash). Stated
#: only: the handler refuses a path leaving the folder with its own 400.
_ARTIFACT_PATH = r"^[^/\\:.\x00][^/\\:\x00]*(?:/[^/\\:.\x00][^/\\:\x00]*)*$"
ArtifactPath = Annotated[str, Path(json_schema_extra={"pattern": _ARTIFACT_PATH})]


class ArtifactPublic(BaseModel):
    """One file of a run folder, by its path inside the folder."""

    name: str
    size: int


class ArtifactsPublic(BaseModel):
    """The files of a run folder."""

    data: list[ArtifactPublic]
    count: int


class EquityPublic(BaseModel):
    """Every policy's equity over one split, downsampled on the agent's curve."""

    split: str
    ts: list[int] = Field(description="bar times, epoch milliseconds (UTC)")
    equity: dict[str, list[float | None]] = Field(description="per policy, the equity at each ``ts``")
    total: int = Field(description="bars before downsampling")


class TradesPublic(BaseModel):
    """The agent's trades over one split."""

    data: list[dict[str, Any]]
    count: int


def run_storage(session: Session, run_id: int) -> RunStorage:
    """The artifact folder of run ``run_id``, read only inside the run folder it lies in (its own, or for an
    evaluation the scored run's), links followed.

    :raises HTTPException: 404 for an unknown run, or one without an artifact folder yet; 409 when the recorded
        folder is outside the run folder under this server's storage root (``TRADELAB_STORAGE_URL``).
    """
    run = get_run(session, run_id)
    if not run.artifact_url:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"run {run_id} has no artifacts yet")
    try:
        within = folder_of(run.artifact_url, [run.id, *input_runs(run.params or {})])
    except ValueError as error:
        raise HTTPException(status.HTTP_409_CONFLICT, f"run {run_id}'s artifacts are not read: {error}") from None
    fs, root = filesystem(run.artifact_url)  # with the lab's S3 settings for s3:// folders
    if not fs.isdir(root):  # checked first: RunStorage would create the folder
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"run {run_id} has no artifacts yet")
    storage = RunStorage(run.artifact_url, within=within)
    if not storage.inside(""):
        raise HTTPException(status.HTTP_409_CONFLICT, f"run {run_id}'s artifact folder links out of {within}")
    return storage


def _safe_name(path: str) -> str:
    """``path`` if it stays inside the run folder.

    :raises HTTPException: 400 for an absolute path or one with ``..``.
    """
    parts = path.replace("\\", "/").split("/")
    if path.startswith(("/", "\\")) or ":" in parts[0] or ".." in parts or not path.strip("/"):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "the path must be relative and stay inside the run folder")
    return "/".join(part for part in parts if part not in ("", "."))


def _parquet(storage: RunStorage, name: str) -> pl.DataFrame:
    if not storage.exists(name):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"the run has no {name}")
    return storage.read_parquet(name)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


@router.get("/runs/{run_id}/artifacts", response_model=ArtifactsPublic)
def list_artifacts(run_id: Id, session: SessionDep, _admin: AdminDep) -> ArtifactsPublic:
    """Every file of the run folder with its size, by path."""
    files = run_storage(session, run_id).files()
    data = [ArtifactPublic(name=name, size=size) for name, size in files.items()]
    return ArtifactsPublic(data=data, count=len(data))


@router.get(
    "/runs/{run_id}/artifacts/{path:path}",
    response_class=Response,
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "the file"},
        400: {"description": "the path leaves the run folder, or is a link leading out of it"},
    },
)
def download_artifact(run_id: Id, path: ArtifactPath, session: SessionDep, _admin: AdminDep) -> Response:
    """One file of the run folder.

    :raises HTTPException: 400 for a path leaving the folder (a link leading out of it included), 404 for a
        missing file.
    """
    name = _safe_name(path)
    storage = run_storage(session, run_id)
    if not storage.inside(name):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"{name} is a link leading out of the run folder")
    if not storage.fs.isfile(storage.path(name)):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"the run has no file {name}")
    media_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return Response(storage.read_bytes(name), media_type=media_type)


@router.get("/runs/{run_id}/equity", response_model=EquityPublic)
def read_equity(
    run_id: Id,
    session: SessionDep,
    _admin: AdminDep,
    split: Split = "test",
    max_points: Annotated[int, Query(ge=3, le=100_000)] = 2_000,
) -> EquityPublic:
    """Every policy's equity over ``split``, on the bars LTTB keeps of the agent's curve."""
    storage = run_storage(session, run_id)
    name = f"equity_{split}.parquet"
    if not storage.exists(name):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"the run has no {name}")
    info = storage.fs.info(storage.path(name))
    version = str(info.get("mtime") or info.get("LastModified") or info.get("ETag") or "")
    size = int(info.get("size") or 0)
    return _downsampled_equity(storage.url, storage.within, name, version, size, split, max_points)


@lru_cache(maxsize=64)
def _downsampled_equity(
    url: str, within: str, name: str, version: str, size: int, split: str, max_points: int
) -> EquityPublic:
    """The LTTB-downsampled curves of one equity file, cached by the file's version and size: a finished run's
    artifacts never change, and a year of minute bars takes ~100 ms to read and downsample."""
    frame = RunStorage(url, within=within).read_parquet(name)
    ts = frame["ts"].dt.epoch("ms").to_numpy()
    policies = [column.removesuffix("_equity") for column in frame.columns if column.endswith("_equity")]
    curves = {name: frame[f"{name}_equity"].to_numpy().astype(np.float64) for name in policies}
    basis = curves.get("agent", next(iter(curves.values()), np.zeros(len(ts))))
    kept = lttb_indices(np.arange(len(ts)), np.nan_to_num(basis), max_points)
    equity = {name: [_jsonable(float(v)) for v in curve[kept]] for name, curve in curves.items()}
    return EquityPublic(split=split, ts=ts[kept].tolist(), equity=equity, total=len(ts))


@router.get("/runs/{run_id}/trades", response_model=TradesPublic)
def read_trades(run_id: Id, session: SessionDep, _admin: AdminDep, split: Split = "test") -> TradesPublic:
    """The agent's trades over ``split``, times as ISO 8601."""
    frame = _parquet(run_storage(session, run_id), f"trades_{split}.parquet")
    data = [{key: _jsonable(value) for key, value in row.items()} for row in frame.iter_rows(named=True)]
    return TradesPublic(data=data, count=len(data))
