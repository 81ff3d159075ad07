"""Every kind of bad input gets a message naming file, line/row and column, and leaves the store byte-identical."""

from __future__ import annotations

import gzip
import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.bars import binance_lines, make_bars, write_lines
from tests.conftest import snapshot
from tradelab.data.errors import DataError
from tradelab.data.ingest import GenericOptions, ingest_files
from tradelab.data.ingest.binance import write_binance
from tradelab.data.store import Store

HEADER = "timestamp,open,high,low,close,volume"
GOOD = binance_lines(make_bars(6, start="2024-02-01"))


def _replace_field(line: str, index: int, value: str) -> str:
    fields = line.split(",")
    fields[index] = value
    return ",".join(fields)


def _with(line_no: int, index: int, value: str) -> list[str]:
    """The good Binance lines with field ``index`` of 1-based line ``line_no`` replaced by ``value``."""
    lines = list(GOOD)
    lines[line_no - 1] = _replace_field(lines[line_no - 1], index, value)
    return lines


def _text(lines: list[str]) -> Callable[[Path], Path]:
    return lambda d: write_lines(d / "bad.csv", lines)


def _raw(data: bytes, name: str = "bad.csv") -> Callable[[Path], Path]:
    def make(d: Path) -> Path:
        (d / name).write_bytes(data)
        return d / name

    return make


def _truncated_gzip(d: Path) -> Path:
    packed = gzip.compress("\n".join(GOOD).encode())
    return _raw(packed[: len(packed) // 2], "bad.csv.gz")(d)


def _truncated_zip(d: Path) -> Path:
    full = write_binance(make_bars(500, start="2024-02-01"), d / "full.zip")
    data = full.read_bytes()
    full.unlink()
    return _raw(data[: len(data) // 2], "BTCUSDT-1m-2024-02.zip")(d)


def _five_minute_bars(d: Path) -> Path:
    return write_binance(make_bars(50, start="2024-02-01", step_ms=300_000), d / "5m.csv", timeframe_ms=300_000)


def _json(rows: object) -> Callable[[Path], Path]:
    return _raw(json.dumps(rows).encode(), "bad.json")


_T0 = 1_706_745_600_000  # 2024-02-01 00:00 UTC in ms
# (case id, file maker, fragments that the message must contain)
CASES = [
    ("empty file", _raw(b""), ["bad.csv", "empty"]),
    ("header only", _text([HEADER]), ["bad.csv", "header but no rows"]),
    ("missing column", _text(["timestamp,open,high,low,volume", "1706745600000,1,1,1,1"]), ["missing column 'close'"]),
    ("non-numeric value", _text(_with(3, 2, "12x.5")), ["bad.csv", "line 3", "column 'high'", "'12x.5'"]),
    ("NaN", _text(_with(2, 4, "nan")), ["line 2", "column 'close'", "not finite"]),
    ("inf", _text(_with(4, 5, "inf")), ["line 4", "column 'volume'", "not finite"]),
    ("empty cell", _text(_with(5, 3, "")), ["line 5", "column 'low'", "missing value"]),
    ("zero price", _text(_with(2, 1, "0")), ["line 2", "column 'open'", "not positive"]),
    ("negative price", _text(_with(6, 3, "-5")), ["line 6", "column 'low'", "not positive"]),
    ("negative volume", _text(_with(3, 5, "-1")), ["line 3", "column 'volume'", "negative"]),
    ("high below low", _text(_with(4, 2, "1")), ["line 4", "column 'high'", "below"]),
    ("low above body", _text(_with(4, 3, GOOD[3].split(",")[2])), ["line 4", "column 'low'", "above"]),
    ("unsorted timestamps", _text([GOOD[0], GOOD[2], GOOD[1], *GOOD[3:]]), ["line 3", "column 'ts'", "not sorted"]),
    (
        "conflicting duplicate",
        _text([*GOOD[:3], _replace_field(GOOD[2], 5, "999"), *GOOD[3:]]),
        ["conflicting duplicate timestamp", "line 3", "line 4", "volume"],
    ),
    (
        "unknown timestamp unit",
        _text([_replace_field(g, 0, str(i)) for i, g in enumerate(GOOD)]),
        ["unknown timestamp unit"],
    ),
    ("misaligned timestamp", _text(_with(2, 0, str(_T0 + 90_000))), ["line 2", "not aligned to the 1m grid"]),
    (
        "naive timestamps without --tz",
        _text([HEADER, "2024-02-01 00:00:00,1,2,0.5,1.5,3"]),
        ["column 'timestamp'", "no timezone", "--tz UTC"],
    ),
    ("unparseable timestamp", _text([HEADER, "yesterday,1,2,0.5,1.5,3"]), ["line 2", "cannot parse timestamp"]),
    ("truncated gzip", _truncated_gzip, ["bad.csv.gz", "truncated or corrupt"]),
    ("truncated zip", _truncated_zip, ["BTCUSDT-1m-2024-02.zip", "truncated or corrupt"]),
    ("5-minute bars as 1m", _five_minute_bars, ["5m.csv", "not 1m bars", "--timeframe 5m"]),
    ("ragged freqtrade row", _json([[_T0, 1, 2, 0.5, 1.5, 3], [_T0 + 60_000, 1, 2]]), ["bad.json", "row 2"]),
    (
        "null in freqtrade row",
        _json([[_T0, 1, 2, 0.5, 1.5, 3], [_T0 + 60_000, 1, None, 0.5, 1, 1]]),
        ["row 2", "column 'high'"],
    ),
    ("invalid JSON", _raw(b"[[1, 2,", "bad.json"), ["bad.json", "invalid JSON"]),
    ("zip with two files", None, ["expected one data file"]),
]


def _two_member_zip(d: Path) -> Path:
    with zipfile.ZipFile(d / "two.zip", "w") as archive:
        archive.writestr("a.csv", "\n".join(GOOD))
        archive.writestr("b.csv", "\n".join(GOOD))
    return d / "two.zip"


@pytest.fixture
def seeded(store: Store, tmp_path: Path) -> Store:
    """A store that already holds a dataset, so 'nothing changed' is a real claim."""
    ingest_files([write_binance(make_bars(3000, start="2024-01-31"), tmp_path / "seed.csv")], "BTCUSDT", store=store)
    return store


@pytest.mark.parametrize("case, make, fragments", CASES, ids=[c[0] for c in CASES])
def test_bad_file_is_refused_with_location_and_store_untouched(
    seeded: Store, tmp_path: Path, case: str, make: Callable[[Path], Path] | None, fragments: list[str]
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    path = make(folder) if make else _two_member_zip(folder)
    before = snapshot(seeded.root)
    with pytest.raises(DataError) as caught:
        ingest_files([path], "BTCUSDT", store=seeded)
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, f"{case}: {fragment!r} not in {message!r}"
    assert snapshot(seeded.root) == before


def test_one_bad_file_among_good_ones_writes_nothing(seeded: Store, tmp_path: Path) -> None:
    good = write_binance(make_bars(100, start="2024-03-01"), tmp_path / "good.csv")
    bad = write_lines(tmp_path / "bad.csv", _with(2, 4, "abc"))
    before = snapshot(seeded.root)
    with pytest.raises(DataError, match=r"bad\.csv, line 2, column 'close'"):
        ingest_files([good, bad], "BTCUSDT", store=seeded)
    assert snapshot(seeded.root) == before


def test_conflict_with_stored_data_is_refused(seeded: Store, tmp_path: Path) -> None:
    stored = seeded.load("BTCUSDT")[:10]
    lines = [_replace_field(line, 5, "12345") for line in binance_lines(stored)]
    before = snapshot(seeded.root)
    with pytest.raises(DataError, match=r"10 bar\(s\) conflict with the stored BTCUSDT data.*--on-conflict"):
        ingest_files([write_lines(tmp_path / "c.csv", lines)], "BTCUSDT", store=seeded)
    assert snapshot(seeded.root) == before


def test_wrong_explicit_mapping_names_the_column(seeded: Store, tmp_path: Path) -> None:
    path = write_lines(tmp_path / "m.csv", [HEADER, "1706745600000,1,2,0.5,1.5,3"])
    with pytest.raises(DataError, match="column 'Vol' \\(mapped to volume\\) is not in the file"):
        ingest_files([path], "BTCUSDT", options=GenericOptions(columns={"volume": "Vol"}), store=seeded)


def test_missing_file(seeded: Store, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.csv: no such file"):
        ingest_files([tmp_path / "nope.csv"], "BTCUSDT", store=seeded)
