"""``/datasets``: the candle store's dataset versions registered in the control plane, with validation reports."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from tradelab.data.errors import DataError
from tradelab.data.store import Store
from tradelab.server.deps import SessionDep, require_admin
from tradelab.server.models import Dataset
from tradelab.server.registry import register_dataset, register_store
from tradelab.server.routes.common import MAX_BIGINT, Id, UtcDatetime

router = APIRouter(prefix="/datasets", tags=["datasets"], dependencies=[Depends(require_admin)])

#: A database time as UTC (SQLite returns them naive).


def get_store(request: Request) -> Store:
    """The app's candle store: ``app.state.store`` when set, else the default store under ``$TRADELAB_HOME``."""
    store = getattr(request.app.state, "store", None)
    return store if store is not None else Store()


StoreDep = Annotated[Store, Depends(get_store)]


class DatasetRegister(BaseModel):
    """Which stored dataset to register."""

    symbol: str = Field(min_length=1, max_length=64)
    timeframe: str = Field("1m", min_length=1, max_length=16)


class DatasetPublic(BaseModel):
    """A registered dataset version."""

    id: int
    symbol: str
    timeframe: str
    version: str = Field(description="the content hash of the stored data")
    rows: int
    start: UtcDatetime
    end: UtcDatetime
    ok: bool = Field(description="whether validation found no error")
    registered_at: UtcDatetime


class DatasetDetail(DatasetPublic):
    """A registered dataset version with its validation report."""

    report: dict[str, Any]


class DatasetsPublic(BaseModel):
    """A page of registered dataset versions, and how many there are in all."""

    data: list[DatasetPublic]
    count: int


def _public(row: Dataset, model: type[DatasetPublic] = DatasetPublic) -> Any:
    fields = {name: getattr(row, name) for name in model.model_fields if name != "ok"}
    return model(**fields, ok=bool(row.report.get("ok", False)))


@router.get("")
def list_datasets(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_BIGINT)] = 0,
) -> DatasetsPublic:
    """Registered dataset versions by symbol and timeframe, newest version first."""
    count = session.scalar(select(func.count()).select_from(Dataset)) or 0
    rows = session.scalars(
        select(Dataset).order_by(Dataset.symbol, Dataset.timeframe, Dataset.id.desc()).limit(limit).offset(offset)
    ).all()
    return DatasetsPublic(data=[_public(r) for r in rows], count=count)


@router.get("/{dataset_id}", responses={404: {"description": "no such dataset"}})
def get_dataset(dataset_id: Id, session: SessionDep) -> DatasetDetail:
    """One registered dataset version with its validation report."""
    row = session.get(Dataset, dataset_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no dataset {dataset_id}")
    return _public(row, DatasetDetail)


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    responses={200: {"description": "this version was registered already"}, 404: {"description": "not in the store"}},
)
def register(body: DatasetRegister, session: SessionDep, store: StoreDep, response: Response) -> DatasetDetail:
    """Register the stored dataset's current version (201), or return its row when registered already (200)."""
    try:
        manifest = store.require(body.symbol, body.timeframe)
    except DataError as error:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from None
    known = session.scalar(
        select(Dataset.id).where(
            Dataset.symbol == body.symbol, Dataset.timeframe == body.timeframe, Dataset.version == manifest.content_hash
        )
    )
    if known is not None:
        response.status_code = status.HTTP_200_OK
    return _public(register_dataset(session, store, body.symbol, body.timeframe), DatasetDetail)


@router.post("/sync")
def sync(session: SessionDep, store: StoreDep) -> DatasetsPublic:
    """Register the current version of every stored dataset; returns those rows."""
    rows = register_store(session, store)
    return DatasetsPublic(data=[_public(r) for r in rows], count=len(rows))
