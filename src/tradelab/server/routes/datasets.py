"""``/datasets``: the candle store's dataset versions registered in the control plane, with validation reports,
and their bars for charts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import numpy as np
import polars as pl
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response, status
from pydantic import AfterValidator, BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tradelab.data.errors import DataError
from tradelab.data.schema import TS, check_symbol, timeframe_ms, to_datetime, to_ms
from tradelab.data.store import Store
from tradelab.data.stream.status import StreamStatus, stream_statuses
from tradelab.server.deps import SessionDep, require_admin
from tradelab.server.models import Dataset
from tradelab.server.registry import register_dataset, register_store
from tradelab.server.routes.common import MAX_JSON_INT, ClientDatetime, Id, Text, UtcDatetime
from tradelab.server.streams import NoStreamError, StreamConflictError, start_stream, stop_stream, stream_log

router = APIRouter(prefix="/datasets", tags=["datasets"], dependencies=[Depends(require_admin)])

_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "no such dataset, or not in the store"}}
#: Bounds of a chart's points.
MaxPoints = Annotated[int, Query(ge=10, le=20_000, description="the most points (bars or buckets) answered")]
_OHLCV = ["open", "high", "low", "close", "volume"]


def get_store(request: Request) -> Store:
    """The app's candle store: ``app.state.store`` when set, else the default store under ``$TRADELAB_HOME``."""
    store = getattr(request.app.state, "store", None)
    return store if store is not None else Store()


StoreDep = Annotated[Store, Depends(get_store)]


class DatasetRegister(BaseModel):
    """Which stored dataset to register."""

    symbol: Text = Field(min_length=1, max_length=64)
    timeframe: Text = Field("1m", min_length=1, max_length=16)


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
    offset: Annotated[int, Query(ge=0, le=MAX_JSON_INT)] = 0,
) -> DatasetsPublic:
    """Registered dataset versions by symbol and timeframe, newest version first."""
    count = session.scalar(select(func.count()).select_from(Dataset)) or 0
    rows = session.scalars(
        select(Dataset).order_by(Dataset.symbol, Dataset.timeframe, Dataset.id.desc()).limit(limit).offset(offset)
    ).all()
    return DatasetsPublic(data=[_public(r) for r in rows], count=count)


@router.get("/streams")
def list_streams(store: StoreDep) -> list[StreamStatus]:
    """The live ingestion of every dataset that has one (``tradelab data stream``): its state, last bar and lag,
    and whether it is ``live`` (its process alive and reporting)."""
    return stream_statuses(store)


#: A streamed symbol: a store folder name (letters, digits, ``. _ -``; the pattern is :func:`check_symbol`'s),
#: upper-cased as the exchange spells it.
StreamSymbol = Annotated[
    str,
    Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", description="exchange symbol, e.g. BTCUSDT"),
    AfterValidator(lambda symbol: check_symbol(symbol).upper()),
]
#: The only timeframe streamed (other timeframes derive with ``tradelab data resample``).
StreamTimeframe = Literal["1m"]


class StreamStart(BaseModel):
    """Which stream to start (``tradelab data stream``); the exchange's own endpoints unless URLs are given."""

    exchange: Literal["binance"]
    symbol: StreamSymbol
    timeframe: StreamTimeframe = "1m"
    ws_url: str | None = Field(None, pattern=r"^wss?://[!-~]+$", max_length=2048, description="websocket base")
    rest_url: str | None = Field(
        None, pattern=r"^https?://[!-~]+$", max_length=2048, description="REST base serving /api/v3/klines"
    )
    since: ClientDatetime | None = Field(None, description="backfill from this time when the dataset is empty")


class StreamStarted(BaseModel):
    """A stream process just started: its status, or none when it wrote none within a few seconds (see its log)."""

    pid: int
    log: str = Field(description="the file its output goes to")
    status: StreamStatus | None


@router.post(
    "/streams",
    status_code=status.HTTP_202_ACCEPTED,
    responses={409: {"description": "a live stream into this dataset exists already"}},
)
def start_streaming(body: StreamStart, store: StoreDep) -> StreamStarted:
    """Start streaming into the dataset ``symbol/timeframe`` of the store: a detached ``tradelab data stream``
    process on this host; answers once it wrote its first status (at most ~5 s)."""
    try:
        pid, first = start_stream(
            store, body.exchange, body.symbol, ws_url=body.ws_url, rest_url=body.rest_url, since=body.since
        )
    except StreamConflictError as error:
        raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from None
    return StreamStarted(pid=pid, log=str(stream_log(body.symbol, body.timeframe)), status=first)


@router.delete(
    "/streams/{symbol}/{timeframe}",
    responses={
        404: {"description": "no stream ever ran into this dataset"},
        409: {"description": "the stream is not live, or runs on another host"},
    },
)
def stop_streaming(
    symbol: Annotated[StreamSymbol, Path()],
    timeframe: StreamTimeframe,
    store: StoreDep,
) -> StreamStatus:
    """Stop the live stream into ``symbol/timeframe`` (SIGTERM: it stops cleanly, state ``stopped``); answers once
    its process ended, or with its current status after ~10 s."""
    try:
        return stop_stream(store, symbol, timeframe)
    except NoStreamError as error:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from None
    except StreamConflictError as error:
        raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from None


def get_dataset_row(session: Session, dataset_id: int) -> Dataset:
    """The registered dataset ``dataset_id``.

    :raises HTTPException: 404 when there is none.
    """
    row = session.get(Dataset, dataset_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no dataset {dataset_id}")
    return row


@router.get("/{dataset_id:int}", responses=_NOT_FOUND)
def get_dataset(dataset_id: Id, session: SessionDep) -> DatasetDetail:
    """One registered dataset version with its validation report."""
    return _public(get_dataset_row(session, dataset_id), DatasetDetail)


class BarsGap(BaseModel):
    """A run of missing bars in the range: open times of the first and the last missing bar."""

    start: datetime
    end: datetime
    missing: int = Field(description="how many bars are missing")


class BarsPublic(BaseModel):
    """Bars of ``[start, end)`` as columns (what chart libraries take), aggregated into equal time buckets when the
    range holds more than ``max_points`` bars."""

    symbol: str
    timeframe: str
    start: datetime
    end: datetime = Field(description="exclusive")
    bucket_seconds: int = Field(description="the length of a point: the timeframe's, or the buckets' when aggregated")
    time: list[int] = Field(description="open times of the bars or buckets, epoch seconds (UTC)")
    open: list[float]
    high: list[float]
    low: list[float]
    close: list[float]
    volume: list[float]
    gaps: list[BarsGap] = Field(description="missing bars in the range (within the dataset's span)")


def chart_range(
    row: Dataset, start: datetime | None, end: datetime | None, default: timedelta
) -> tuple[datetime, datetime]:
    """``[start, end)`` in UTC: by default the dataset's last ``default`` of time, or ``default`` from one bound.

    An ``end`` at or before ``start`` is an empty range (no schema can state an order between two parameters).
    """
    after_last = to_datetime(row.end) + timedelta(milliseconds=timeframe_ms(row.timeframe))
    end = to_datetime(end) if end is not None else after_last if start is None else _shift(to_datetime(start), default)
    start = to_datetime(start) if start is not None else _shift(end, -default)
    return start, max(start, end)


def _shift(moment: datetime, delta: timedelta) -> datetime:
    """``moment + delta``, clamped to the representable datetimes."""
    try:
        return moment + delta
    except OverflowError:
        return datetime.max.replace(tzinfo=UTC) if delta > timedelta(0) else datetime.min.replace(tzinfo=UTC)


def load_bars(store: Store, row: Dataset, start: datetime, end: datetime) -> pl.DataFrame:
    """The dataset's bars in ``[start, end)``, read from the store.

    :raises HTTPException: 404 when the store no longer has the dataset.
    """
    try:
        return store.load(row.symbol, row.timeframe, start, end)
    except DataError as error:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from None


def _gaps(ms: np.ndarray, row: Dataset, start: datetime, end: datetime) -> list[BarsGap]:
    """The missing bars of the grid in ``[start, end)`` clipped to the dataset's span, around the bars ``ms``."""
    step = timeframe_ms(row.timeframe)
    first = max(to_ms(start), to_ms(row.start))
    last = min(to_ms(end) - 1, to_ms(row.end))
    if first > last:
        return []
    first, last = -(-first // step) * step, last // step * step  # onto the grid
    # The grid bar before the first and after the last one as sentinels: a gap at either edge counts too.
    points = np.concatenate([[first - step], ms, [last + step]])
    missing = np.diff(points) // step - 1
    at = np.flatnonzero(missing > 0)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return [
        BarsGap(
            start=epoch + timedelta(milliseconds=int(points[i]) + step),
            end=epoch + timedelta(milliseconds=int(points[i + 1]) - step),
            missing=int(missing[i]),
        )
        for i in at
    ]


@router.get("/{dataset_id:int}/bars", responses=_NOT_FOUND)
def read_bars(
    dataset_id: Id,
    session: SessionDep,
    store: StoreDep,
    start: Annotated[ClientDatetime | None, Query(description="first bar; 7 days before end by default")] = None,
    end: Annotated[ClientDatetime | None, Query(description="end (exclusive); the dataset's end by default")] = None,
    max_points: MaxPoints = 2_000,
) -> BarsPublic:
    """Bars for a chart: the range's bars, or equal time buckets of them (first open, highest high, lowest low,
    last close, summed volume) when there are more than ``max_points``; and the gaps of the range."""
    row = get_dataset_row(session, dataset_id)
    start, end = chart_range(row, start, end, timedelta(days=7))
    bars = load_bars(store, row, start, end).select(TS, *_OHLCV)
    step = timeframe_ms(row.timeframe)
    ms = bars[TS].dt.epoch("ms").to_numpy()
    gaps = _gaps(ms, row, start, end)
    bucket = step
    if bars.height > max_points:
        # Buckets aligned on the epoch, whole bars long: at least (last - first) / (max_points - 1) long, the bars
        # from first to last fall in at most max_points of them.
        bucket = -(-int(ms[-1] - ms[0]) // ((max_points - 1) * step)) * step
        bars = bars.group_by_dynamic(TS, every=f"{bucket}ms").agg(
            pl.col("open").first(),
            pl.col("high").max(),
            pl.col("low").min(),
            pl.col("close").last(),
            pl.col("volume").sum(),
        )
    columns = {c: bars[c].cast(pl.Float64).to_list() for c in _OHLCV}
    return BarsPublic(
        symbol=row.symbol,
        timeframe=row.timeframe,
        start=start,
        end=end,
        bucket_seconds=bucket // 1000,
        time=(bars[TS].dt.epoch("ms") // 1000).to_list(),
        gaps=gaps,
        **columns,
    )


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
