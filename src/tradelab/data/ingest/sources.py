"""Opening raw files: plain, gzip or ZIP, recognised by their bytes, never half-read silently."""

from __future__ import annotations

import gzip
import hashlib
import zipfile
import zlib
from dataclasses import dataclass
from functools import cached_property
from io import BytesIO
from pathlib import Path

from tradelab.data.errors import DataError

_GZIP_MAGIC = b"\x1f\x8b"
_ZIP_MAGIC = b"PK\x03\x04"


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


def read_bytes(path: Path) -> SourceBytes:
    """Read ``path`` once and decompress it if it is gzip or a one-file ZIP.

    :raises DataError: a missing, truncated or corrupt file, or a ZIP without exactly one data file.
    """
    if not path.is_file():
        raise DataError("no such file", source=path)
    raw = path.read_bytes()
    try:
        if raw.startswith(_GZIP_MAGIC):
            return SourceBytes(gzip.decompress(raw), path.name.removesuffix(".gz"), raw)
        if raw.startswith(_ZIP_MAGIC):
            data, name = _read_zip(raw, path)
            return SourceBytes(data, name, raw)
    except (EOFError, OSError, zlib.error, zipfile.BadZipFile) as exc:
        raise DataError(f"truncated or corrupt archive ({exc})", source=path) from exc
    return SourceBytes(raw, path.name, raw)


def _read_zip(raw: bytes, path: Path) -> tuple[bytes, str]:
    with zipfile.ZipFile(BytesIO(raw)) as archive:
        members = [m for m in archive.infolist() if not m.is_dir() and not m.filename.startswith("__MACOSX")]
        if len(members) != 1:
            names = ", ".join(m.filename for m in members) or "nothing"
            raise DataError(f"expected one data file in the ZIP, found {names}", source=path)
        return archive.read(members[0]), members[0].filename
