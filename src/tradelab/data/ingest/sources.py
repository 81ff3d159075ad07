"""Opening raw files: plain, gzip or ZIP, recognised by their bytes, size-capped, never half-read silently."""

from __future__ import annotations

import codecs
import gzip
import hashlib
import os
import stat
import zipfile
import zlib
from dataclasses import dataclass
from functools import cached_property
from io import BytesIO
from pathlib import Path
from typing import IO

import polars as pl
from pydantic import ByteSize

from tradelab.data.errors import DataError

_GZIP_MAGIC = b"\x1f\x8b"
_ZIP_MAGIC = b"PK\x03\x04"
_CHUNK = 16 << 20  # unpack and decode in slices this big: memory stays near the data's own size
#: Default limits of ``tradelab data ingest`` (``--max-file-size``, ``--max-unpacked-size``).
DEFAULT_MAX_FILE_BYTES = 1 << 30
DEFAULT_MAX_UNPACKED_BYTES = 1 << 30
_SPECIAL_FILES = (
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISSOCK, "a socket"),
)


@dataclass(frozen=True)
class SizeLimits:
    """Bytes one ingested file may take on disk, and once gzip or ZIP is unpacked.

    Parsing needs a few times a file's size in memory, so a larger file is refused before it is read
    and an archive as soon as it unpacks past the limit: a sparse file or a decompression bomb gets an
    error line instead of exhausting the machine's memory.
    """

    file_bytes: int = DEFAULT_MAX_FILE_BYTES
    unpacked_bytes: int = DEFAULT_MAX_UNPACKED_BYTES


@dataclass
class SourceBytes:
    """A file's decompressed content and the name of what it holds (a ZIP member's name, or the file
    name without ``.gz``) so its format can be told; ``raw`` is the file as given.
    """

    data: bytes
    name: str
    raw: bytes

    @cached_property
    def sha256(self) -> str:
        """SHA-256 of the file as given (provenance; matches Binance's CHECKSUM files for their ZIPs)."""
        return hashlib.sha256(self.raw).hexdigest()


def read_bytes(path: Path, limits: SizeLimits | None = None) -> SourceBytes:
    """Read ``path`` once and decompress it if it is gzip or a one-file ZIP, within ``limits``.

    :raises DataError: a missing path, a directory or device, a file or an unpacked archive over its
        limit, a truncated or corrupt archive, or a ZIP without exactly one data file.
    """
    limits = limits or SizeLimits()
    raw = _read_regular_file(path, limits.file_bytes)
    try:
        if raw.startswith(_GZIP_MAGIC):
            with gzip.GzipFile(fileobj=BytesIO(raw)) as stream:
                data = _read_capped(stream, limits.unpacked_bytes, path)
            return SourceBytes(data, path.name.removesuffix(".gz"), raw)
        if raw.startswith(_ZIP_MAGIC):
            data, name = _read_zip(raw, path, limits.unpacked_bytes)
            return SourceBytes(data, name, raw)
    except (EOFError, OSError, zlib.error, zipfile.BadZipFile) as exc:
        raise DataError(f"truncated or corrupt archive ({exc})", source=path) from exc
    return SourceBytes(raw, path.name, raw)


def check_text(data: bytes, source: str) -> None:
    """Refuse bytes that are not UTF-8 text (a binary file, NUL padding, another encoding) at their place.

    :raises DataError: naming the line and the byte's position in it.
    """
    nul = data.find(b"\x00")
    bad = nul if data.isascii() else _first_invalid_utf8(data, nul)
    if bad < 0:
        return
    line_start = data.rfind(b"\n", 0, bad) + 1
    raise DataError(
        f"byte 0x{data[bad]:02x} at position {bad - line_start + 1} is not UTF-8 text: "
        "a binary file, or text in another encoding (save it as UTF-8)",
        source=source,
        line=data.count(b"\n", 0, bad) + 1,
    )


def check_parquet_size(data: bytes, source: str, limit: int) -> None:
    """Refuse a Parquet file whose rows unpack to more than ``limit`` bytes, from its footer alone.

    Parquet compresses and run-length encodes its pages, so a small file can hold billions of rows; its
    footer says how many. 8 bytes a value is a lower bound (strings take more). A footer that cannot be
    read is left to the reader, whose error names the problem.
    """
    try:
        table = pl.scan_parquet(BytesIO(data))
        rows, columns = table.select(pl.len()).collect().item(), len(table.collect_schema())
    except pl.exceptions.PolarsError:
        return
    if rows * columns * 8 > limit:
        raise DataError(
            f"holds {rows:,} rows × {columns} columns, at least {ByteSize(rows * columns * 8).human_readable()} "
            f"unpacked, over the {ByteSize(limit).human_readable()} limit; pass --max-unpacked-size to allow more",
            source=source,
        )


def _first_invalid_utf8(data: bytes, end: int) -> int:
    """Offset of the first byte that is not valid UTF-8 before ``end`` (all of ``data`` when negative), or ``end``."""
    stop = len(data) if end < 0 else end
    view, position = memoryview(data), 0
    while position < stop:
        chunk = view[position : min(position + _CHUNK, stop)]
        try:
            _, used = codecs.utf_8_decode(chunk, "strict", position + len(chunk) >= stop)
        except UnicodeDecodeError as exc:
            return position + exc.start
        position += used
    return end


def _read_regular_file(path: Path, limit: int) -> bytes:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise DataError("no such file", source=path) from None
    except OSError as exc:
        raise DataError(f"cannot read the file ({exc.strerror})", source=path) from None
    if stat.S_ISDIR(mode):
        raise DataError("is a directory, not a file; pass the files in it (e.g. DIR/*.csv)", source=path)
    kind = next((name for test, name in _SPECIAL_FILES if test(mode)), None)
    if kind:  # checked before opening: opening a named pipe would wait for a writer
        raise DataError(f"is {kind}, not a regular file", source=path)
    try:
        with path.open("rb") as file:
            size = os.fstat(file.fileno()).st_size
            if size > limit:  # refused before reading: a sparse file costs nothing to make, and a lot to read
                raise _too_big(path, size, limit)
            raw = file.read(size)
            if file.read(1):
                raise DataError("the file grew while it was read; ingest it once it is complete", source=path)
    except OSError as exc:
        raise DataError(f"cannot read the file ({exc.strerror})", source=path) from None
    return raw


def _too_big(path: Path, size: int, limit: int) -> DataError:
    return DataError(
        f"the file is {ByteSize(size).human_readable()}, over the {ByteSize(limit).human_readable()} limit; "
        "pass --max-file-size to allow more",
        source=path,
    )


def _read_capped(stream: IO[bytes], limit: int, path: Path) -> bytes:
    """Unpack at most ``limit`` bytes, a slice at a time, so that a bomb is stopped at the limit."""
    chunks: list[bytes] = []
    total = 0
    while total <= limit and (chunk := stream.read(min(_CHUNK, limit + 1 - total))):
        chunks.append(chunk)
        total += len(chunk)
    if total > limit:
        raise DataError(
            f"unpacks to more than {ByteSize(limit).human_readable()}; pass --max-unpacked-size to allow more",
            source=path,
        )
    return b"".join(chunks)


def _read_zip(raw: bytes, path: Path, limit: int) -> tuple[bytes, str]:
    with zipfile.ZipFile(BytesIO(raw)) as archive:
        members = [m for m in archive.infolist() if not m.is_dir() and not m.filename.startswith("__MACOSX")]
        if len(members) != 1:
            names = ", ".join(m.filename for m in members) or "nothing"
            raise DataError(f"expected one data file in the ZIP, found {names}", source=path)
        member = members[0]
        if member.flag_bits & 0x1:
            raise DataError(f"{member.filename} is encrypted in the ZIP: unzip it with its password", source=path)
        try:
            stream = archive.open(member)
        except NotImplementedError:
            raise DataError(
                f"{member.filename} is compressed with a method Python cannot unpack "
                f"(ZIP method {member.compress_type}): unzip it with another tool",
                source=path,
            ) from None
        with stream:
            return _read_capped(stream, limit, path), member.filename
