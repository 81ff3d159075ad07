"""Opening raw files: plain, gzip or ZIP, recognised by their bytes, never half-read silently."""

from __future__ import annotations

import gzip
import zipfile
import zlib
from pathlib import Path

from tradelab.data.errors import DataError

_GZIP_MAGIC = b"\x1f\x8b"
_ZIP_MAGIC = b"PK\x03\x04"


def read_bytes(path: Path) -> tuple[bytes, str]:
    """The decompressed bytes of ``path`` and the name of what they hold (the ZIP member's name, or the
    file name without ``.gz``), so the format can be told from it.

    :raises DataError: a missing, truncated or corrupt file, or a ZIP without exactly one data file.
    """
    if not path.is_file():
        raise DataError("no such file", source=path)
    with path.open("rb") as fh:
        head = fh.read(4)
    try:
        if head.startswith(_GZIP_MAGIC):
            return gzip.decompress(path.read_bytes()), path.name.removesuffix(".gz")
        if head.startswith(_ZIP_MAGIC):
            return _read_zip(path)
    except (EOFError, OSError, zlib.error, zipfile.BadZipFile) as exc:
        raise DataError(f"truncated or corrupt archive ({exc})", source=path) from exc
    return path.read_bytes(), path.name


def _read_zip(path: Path) -> tuple[bytes, str]:
    with zipfile.ZipFile(path) as archive:
        members = [m for m in archive.infolist() if not m.is_dir() and not m.filename.startswith("__MACOSX")]
        if len(members) != 1:
            names = ", ".join(m.filename for m in members) or "nothing"
            raise DataError(f"expected one data file in the ZIP, found {names}", source=path)
        return archive.read(members[0]), members[0].filename
