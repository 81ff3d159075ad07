"""Hostile files: binary, oversized, decompression bombs, ragged rows, special paths, DST-ambiguous times.

Each is refused by ``tradelab data ingest`` with one ``error:`` line naming the file (and line when there
is one), exit status 2, only options the command has in its hints, and the store byte-identical.
"""

from __future__ import annotations

import gzip
import os
import random
import re
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from typer.core import TyperGroup
from typer.main import get_command
from typer.testing import CliRunner

from tests.bars import binance_lines, make_bars, write_lines
from tests.conftest import snapshot
from tradelab.cli import app
from tradelab.data.cli import app as data_app
from tradelab.data.errors import DataError
from tradelab.data.ingest import ingest_files
from tradelab.data.ingest.binance import write_binance
from tradelab.data.ingest.sources import SizeLimits
from tradelab.data.store import Store

runner = CliRunner()
HEADER = "timestamp,open,high,low,close,volume"
GOOD = binance_lines(make_bars(6, start="2024-02-01"))
MiB = 1 << 20


@pytest.fixture
def seeded(home: Path, tmp_path: Path) -> Store:
    """The default store (under ``home``) holding a dataset, so 'byte-identical' is a real claim."""
    store = Store()
    ingest_files([write_binance(make_bars(3000, start="2024-01-31"), tmp_path / "seed.csv")], "BTCUSDT", store=store)
    return store


def _ingest_options() -> set[str]:
    group = get_command(data_app)
    assert isinstance(group, TyperGroup)
    return {opt for param in group.commands["ingest"].params for opt in param.opts}


def refused(store: Store, *args: str) -> str:
    """Run ``data ingest ARGS --symbol BTCUSDT``, check it was refused cleanly, and return the error line."""
    before = snapshot(store.root)
    result = runner.invoke(app, ["data", "ingest", *args, "--symbol", "BTCUSDT"])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    hinted = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", lines[0]))
    assert hinted <= _ingest_options(), f"the message names options the command lacks: {lines[0]}"
    assert snapshot(store.root) == before
    return lines[0]


def _bytes_read() -> int:
    """Bytes this process has read through read(2) and friends, sparse zeros included."""
    text = Path("/proc/self/io").read_text()
    return int(re.search(r"^rchar: (\d+)$", text, re.M).group(1))  # type: ignore[union-attr]


def _zeros_gzip(path: Path, size: int) -> Path:
    with gzip.open(path, "wb") as out:
        for _ in range(size // MiB):
            out.write(bytes(MiB))
    return path


def _zeros_zip(path: Path, size: int) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive, archive.open("a.csv", "w") as out:
        for _ in range(size // MiB):
            out.write(bytes(MiB))
    return path


@pytest.mark.parametrize("name", ["noise.json", "noise.bin", "noise.csv"])
def test_random_bytes_are_refused_as_not_text(seeded: Store, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"\xff" + random.Random(16).randbytes(64 * 1024))
    line = refused(seeded, str(path))
    assert f"{name}, line 1" in line and "is not UTF-8 text" in line, line


def test_an_undecodable_byte_is_located_by_line_and_position(seeded: Store, tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(("\n".join(GOOD[:2]) + "\n").encode() + b"17067\xe9" + GOOD[2][5:].encode() + b"\n")
    line = refused(seeded, str(path))
    assert "latin1.csv, line 3: byte 0xe9 at position 6 is not UTF-8 text" in line, line


def test_nul_padding_is_refused_as_not_text(seeded: Store, tmp_path: Path) -> None:
    path = tmp_path / "padded.csv"
    path.write_bytes(("\n".join(GOOD) + "\n").encode() + bytes(4096))
    line = refused(seeded, str(path))
    assert f"padded.csv, line {len(GOOD) + 1}: byte 0x00 at position 1 is not UTF-8 text" in line, line


def test_json_nested_too_deeply_is_an_error_line(seeded: Store, tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    line = refused(seeded, str(path))
    assert "deep.json: JSON nested too deeply" in line, line


def test_brackets_in_a_message_are_printed_as_they_are(seeded: Store, tmp_path: Path) -> None:
    path = tmp_path / "seven.json"
    path.write_text("[[1706745600000, 1, 2, 0.5, 1.5, 3, 5]]")
    line = refused(seeded, str(path))
    assert "seven.json, row 1: expected 6 fields [time, open, high, low, close, volume], got [1706745600000," in line


def test_a_sparse_2_gb_file_is_refused_by_size_before_it_is_read(seeded: Store, tmp_path: Path) -> None:
    path = tmp_path / "huge.csv"
    with path.open("wb") as sparse:  # takes no disk: a hole of zeros
        sparse.truncate(2 << 30)
    read_before = _bytes_read()
    line = refused(seeded, str(path))
    assert _bytes_read() - read_before < 16 * MiB
    assert "huge.csv: the file is 2.0GiB, over the 1.0GiB limit; pass --max-file-size" in line, line


def test_the_file_size_limit_is_an_option(seeded: Store, tmp_path: Path) -> None:
    path = write_lines(tmp_path / "small.csv", GOOD)
    line = refused(seeded, str(path), "--max-file-size", "100B")
    assert f"small.csv: the file is {path.stat().st_size}B, over the 100B limit" in line, line


@pytest.mark.parametrize("make, name", [(_zeros_gzip, "bomb.csv.gz"), (_zeros_zip, "bomb.zip")])
def test_a_decompression_bomb_is_refused_without_inflating_it(
    seeded: Store, tmp_path: Path, make: Callable[[Path, int], Path], name: str
) -> None:
    path = make(tmp_path / name, 64 * MiB)
    tracemalloc.start()
    try:
        line = refused(seeded, str(path), "--max-unpacked-size", "1MiB")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert f"{name}: unpacks to more than 1.0MiB; pass --max-unpacked-size" in line, line
    assert peak < 16 * MiB


def test_a_parquet_bomb_is_refused_from_its_footer(seeded: Store, tmp_path: Path) -> None:
    rows = 2_000_000  # constant columns: run-length encoded into a few kB
    path = tmp_path / "bomb.parquet"
    constant = {"ts": pl.repeat(1_706_745_600_000, rows, eager=True), "open": pl.repeat(1.0, rows, eager=True)}
    pl.DataFrame(constant).write_parquet(path)
    data = bytearray(path.read_bytes())
    data[8 : len(data) // 2] = b"\xff" * (len(data) // 2 - 8)  # pages unreadable, footer intact: no page is read
    path.write_bytes(bytes(data))
    line = refused(seeded, str(path), "--max-unpacked-size", "1MiB")
    assert "bomb.parquet: holds 2,000,000 rows × 2 columns, at least 30.5MiB unpacked, over the 1.0MiB limit" in line


def test_the_unpacked_limit_is_inclusive(store: Store, tmp_path: Path) -> None:
    text = ("\n".join(GOOD) + "\n").encode()
    path = tmp_path / "k.csv.gz"
    path.write_bytes(gzip.compress(text))
    with pytest.raises(DataError, match="unpacks to more than"):
        ingest_files([path], "BTCUSDT", limits=SizeLimits(unpacked_bytes=len(text) - 1), store=store)
    assert ingest_files([path], "BTCUSDT", limits=SizeLimits(unpacked_bytes=len(text)), store=store).added_rows == 6


def _zip_with(path: Path, *, flag: int = 0, method: int = zipfile.ZIP_STORED) -> Path:
    """A one-member ZIP with its general-purpose flags or compression method overwritten in both headers."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("a.csv", "\n".join(GOOD))
    data = bytearray(path.read_bytes())
    central = data.find(b"PK\x01\x02")
    for flags, method_at in ((6, 8), (central + 8, central + 10)):
        data[flags] |= flag
        data[method_at] = method
    path.write_bytes(bytes(data))
    return path


def test_an_encrypted_zip_is_an_error_line(seeded: Store, tmp_path: Path) -> None:
    line = refused(seeded, str(_zip_with(tmp_path / "locked.zip", flag=0x1)))
    assert "locked.zip: a.csv is encrypted in the ZIP" in line, line


def test_a_zip_method_python_lacks_is_an_error_line(seeded: Store, tmp_path: Path) -> None:
    line = refused(seeded, str(_zip_with(tmp_path / "aes.zip", method=99)))
    assert "aes.zip: a.csv is compressed with a method Python cannot unpack (ZIP method 99)" in line, line


def test_extra_fields_in_a_generic_csv_name_the_line(seeded: Store, tmp_path: Path) -> None:
    rows = [HEADER, "1706745600000,1,2,0.5,1.5,3", "1706745660000,1,2,0.5,1.5,3,7", "1706745720000,1,2,0.5,1.5,3"]
    line = refused(seeded, str(write_lines(tmp_path / "extra.csv", rows)))
    assert "extra.csv, line 3: 7 fields where the header has 6" in line, line


def test_an_unclosed_quote_names_the_line_where_it_opens(seeded: Store, tmp_path: Path) -> None:
    rows = [HEADER, "1706745600000,1,2,0.5,1.5,3", '"1706745660000,1,2,0.5,1.5,3', *GOOD[2:5]]
    line = refused(seeded, str(write_lines(tmp_path / "quote.csv", rows)))
    assert "quote.csv, line 3: 1 fields where the header has 6" in line, line
    assert "a quoted field runs from here to line 6" in line, line


def test_a_header_of_many_columns_is_listed_briefly(seeded: Store, tmp_path: Path) -> None:
    names = [f"c{i}" for i in range(100_000)]
    line = refused(seeded, str(write_lines(tmp_path / "wide.csv", [",".join(names), ",".join("1" * len(names))])))
    assert "wide.csv, column 'ts': missing column 'ts' (columns: c0, c1," in line, line
    assert "c19, ... (100,000 in all)" in line and len(line) < 500, line


def test_extra_fields_in_a_binance_file_name_the_line(seeded: Store, tmp_path: Path) -> None:
    rows = [*GOOD[:3], GOOD[3] + ",0", *GOOD[4:]]
    line = refused(seeded, str(write_lines(tmp_path / "klines.csv", rows)), "--format", "binance")
    assert "klines.csv, line 4: 13 fields where the first line has 12: a stray or missing ','?" in line, line


def test_a_conflict_with_stored_bars_names_the_file_and_line(seeded: Store, tmp_path: Path) -> None:
    stored = binance_lines(seeded.load("BTCUSDT")[10:20])
    changed = [*stored[:4], ",".join([*stored[4].split(",")[:5], "12345", *stored[4].split(",")[6:]]), *stored[5:]]
    line = refused(seeded, str(write_lines(tmp_path / "c.csv", changed)))
    assert "c.csv, line 5, column 'ts': 1 bar(s) conflict with the stored BTCUSDT data" in line, line


def test_a_directory_is_not_a_missing_file(seeded: Store, tmp_path: Path) -> None:
    line = refused(seeded, str(tmp_path))
    assert f"{tmp_path}: is a directory, not a file" in line, line


def test_dev_null_is_not_a_missing_file(seeded: Store) -> None:
    line = refused(seeded, "/dev/null")
    assert "/dev/null: is a character device, not a regular file" in line, line


def test_a_named_pipe_is_refused_without_waiting_for_a_writer(seeded: Store, tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.csv")
    line = refused(seeded, str(tmp_path / "pipe.csv"))
    assert "pipe.csv: is a named pipe, not a regular file" in line, line


def test_a_delimiter_polars_cannot_use_is_an_error_line(seeded: Store, tmp_path: Path) -> None:
    path = write_lines(tmp_path / "semi.csv", [HEADER.replace(",", ";"), "1706745600000;1;2;0.5;1.5;3"])
    line = refused(seeded, str(path), "--delimiter", ";;")
    assert "column 'delimiter': --delimiter ';;' is not one single-byte character" in line, line


def test_a_missing_file_is_still_no_such_file(seeded: Store, tmp_path: Path) -> None:
    assert f"{tmp_path / 'nope.csv'}: no such file" in refused(seeded, str(tmp_path / "nope.csv"))


@pytest.mark.parametrize(
    "local, line_no, what",
    [
        ("2023-11-05 01:30:00", 3, "occurs twice (clocks go back)"),
        ("2024-03-10 02:30:00", 3, "does not exist (clocks go forward)"),
    ],
)
def test_a_dst_gap_or_repeat_under_tz_is_located_with_a_hint_the_cli_accepts(
    seeded: Store, tmp_path: Path, local: str, line_no: int, what: str
) -> None:
    rows = [HEADER, "2023-06-01 00:00:00,1,2,0.5,1.5,3", f"{local},1,2,0.5,1.5,3"]
    line = refused(seeded, str(write_lines(tmp_path / "ny.csv", rows)), "--tz", "America/New_York")
    assert f"ny.csv, line {line_no}, column 'timestamp': local time '{local}' {what} in America/New_York" in line
    assert "`ambiguous`" not in line and "--ts-format" in line


def test_timestamps_with_an_offset_ingest_as_the_dst_hint_says(seeded: Store, tmp_path: Path) -> None:
    rows = [HEADER, "2023-11-05 01:00:00-0400,1,2,0.5,1.5,3", "2023-11-05 01:00:00-0500,1,2,0.5,1.5,3"]
    path = write_lines(tmp_path / "ny.csv", rows)
    result = runner.invoke(
        app, ["data", "ingest", str(path), "--symbol", "NY", "--timeframe", "1h", "--ts-format", "%Y-%m-%d %H:%M:%S%z"]
    )
    assert result.exit_code == 0, result.output
    assert Store().load("NY", "1h")["ts"].dt.hour().to_list() == [5, 6]
