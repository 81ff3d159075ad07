"""Object storage through fsspec: filesystems configured from settings, and dataset push/pull.

A dataset is mirrored at ``<url>/<SYMBOL>/<TIMEFRAME>/`` in the store's own layout
(``year=YYYY/month=MM/part-<hash>.parquet`` plus ``manifest.json``), with ``hashes.json`` beside the
manifest: ``{"files": {"<relative path>": "<sha256 of the file's bytes>"}}``. The index lets a push skip
unchanged files without downloading them, and a pull verify every file it downloads.

Both directions write the partition files first, the manifest last, and remove the files the new manifest
no longer lists only after it is in place, so a reader never sees a manifest naming missing files. A pull
downloads and verifies into a temporary folder before touching the local store, so a failed pull leaves
it as it was.
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import fsspec
from fsspec.implementations.local import LocalFileSystem
from pydantic import ValidationError
from rich.progress import Progress

from tradelab.atomic import TMP_PREFIX, atomic_write, locked
from tradelab.data.errors import DataError
from tradelab.data.manifest import MANIFEST, Manifest, file_sha256
from tradelab.data.schema import check_symbol
from tradelab.data.store import Store
from tradelab.settings import get_settings

HASHES = "hashes.json"
PROGRESS_MIN_FILES = 4  # a progress bar is shown when at least this many files move
_PARTITION = re.compile(r"year=\d{4}/month=\d{2}/[\w.=-]+\.parquet")


@dataclass(frozen=True, slots=True)
class SyncReport:
    """What a push or pull did.

    :param url: the dataset's remote folder, ``<url>/<SYMBOL>/<TIMEFRAME>``.
    :param transferred: files copied (partitions and the manifest).
    :param skipped: partition files already identical on the destination.
    :param nbytes: bytes copied.
    :param removed: files removed from the destination because the source no longer lists them.
    :param version: the dataset version now on both sides.
    """

    direction: Literal["push", "pull"]
    symbol: str
    timeframe: str
    url: str
    transferred: int
    skipped: int
    nbytes: int
    removed: int
    version: str


def storage_options(url: str) -> dict[str, Any]:
    """fsspec options for ``url``: endpoint, region and keys from settings for ``s3://``; ``{}`` otherwise."""
    if not url.startswith(("s3://", "s3a://")):
        return {}
    settings = get_settings()
    options: dict[str, Any] = {}
    if settings.s3_endpoint_url:
        options["endpoint_url"] = settings.s3_endpoint_url
    if settings.s3_region:
        options["client_kwargs"] = {"region_name": settings.s3_region}
    if settings.s3_access_key_id:
        options["key"] = settings.s3_access_key_id
    if settings.s3_secret_access_key:
        options["secret"] = settings.s3_secret_access_key.get_secret_value()
    return options


def filesystem(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem of ``url`` (a local path, ``file://``, ``s3://``, ...) and the path within it."""
    fs, path = fsspec.core.url_to_fs(url, **storage_options(url))
    return fs, path.rstrip("/") or path


def push_dataset(
    symbol: str, timeframe: str, url: str, store: Store | None = None, *, progress: bool = False
) -> SyncReport:
    """Copy one dataset from the local store to ``<url>/<SYMBOL>/<TIMEFRAME>``, transferring only changed files.

    :param progress: show a progress bar when several files move.
    :raises DataError: when the dataset is not in the local store, or the remote index is unreadable.
    """
    store = store or Store()
    folder = store.dataset_dir(symbol, timeframe)
    fs, remote = _remote(url, symbol, timeframe)
    if store.manifest(symbol, timeframe) is None:
        raise DataError(f"no dataset {symbol}/{timeframe} in {store.root} to push to {_join(url, symbol, timeframe)}")
    with locked(folder):  # a concurrent local write must not collect files while they upload
        manifest = store.require(symbol, timeframe)
        manifest_bytes = (folder / MANIFEST).read_bytes()
        fs.invalidate_cache(remote)
        present = _listing(fs, remote)
        index = _read_index(fs, remote) if HASHES in present else {}
        live = {p.file: file_sha256(folder / p.file) for p in manifest.partitions}
        todo = [f for f, sha in live.items() if not (index.get(f) == sha and f in present)]
        nbytes = 0
        for name in _progress(todo, f"push {symbol}/{timeframe}", progress):
            nbytes += _upload(fs, folder / name, f"{remote}/{name}")
        stale = sorted(f for f in present if f.startswith("year=") and f not in live)
        # Old entries stay indexed until their files are gone, so a pull of the old manifest still verifies.
        kept = {f: sha for f, sha in index.items() if f in present and f not in live}
        if todo or set(index) != set(live) | set(kept):
            _write_remote(fs, f"{remote}/{HASHES}", _index_bytes({**kept, **live}))
        transferred = len(todo)
        if MANIFEST not in present or fs.cat_file(f"{remote}/{MANIFEST}") != manifest_bytes:
            _write_remote(fs, f"{remote}/{MANIFEST}", manifest_bytes)
            transferred += 1
            nbytes += len(manifest_bytes)
        for name in stale:
            fs.rm_file(f"{remote}/{name}")
        if kept:
            _write_remote(fs, f"{remote}/{HASHES}", _index_bytes(live))
        if isinstance(fs, LocalFileSystem):
            _prune_empty(Path(remote))
    return SyncReport(
        "push",
        symbol,
        timeframe,
        _join(url, symbol, timeframe),
        transferred,
        len(live) - len(todo),
        nbytes,
        len(stale),
        manifest.version,
    )


def pull_dataset(
    symbol: str, timeframe: str, url: str, store: Store | None = None, *, progress: bool = False
) -> SyncReport:
    """Copy one dataset from ``<url>/<SYMBOL>/<TIMEFRAME>`` into the local store, verifying every file's SHA-256.

    Files are downloaded and verified in a temporary folder first; the local dataset changes only once all
    of them are good, and its manifest is replaced last.

    :param progress: show a progress bar when several files move.
    :raises DataError: when the dataset is not at ``url``, or a downloaded file does not match its hash.
    """
    store = store or Store()
    folder = store.dataset_dir(symbol, timeframe)
    fs, remote = _remote(url, symbol, timeframe)
    where = _join(url, symbol, timeframe)
    fs.invalidate_cache(remote)
    try:
        manifest_bytes = fs.cat_file(f"{remote}/{MANIFEST}")
    except FileNotFoundError:
        raise DataError(f"no dataset {symbol}/{timeframe} at {url} (no {where}/{MANIFEST})") from None
    try:
        manifest = Manifest.model_validate_json(manifest_bytes)
    except ValidationError as exc:
        raise DataError(f"not a dataset manifest: {exc}", source=f"{where}/{MANIFEST}") from None
    if (manifest.symbol, manifest.timeframe) != (symbol, timeframe):
        raise DataError(
            f"the manifest is for {manifest.symbol}/{manifest.timeframe}, not {symbol}/{timeframe}",
            source=f"{where}/{MANIFEST}",
        )
    try:
        index = _read_index(fs, remote)
    except FileNotFoundError:
        raise DataError(
            f"no {HASHES} beside the manifest; push the dataset again", source=f"{where}/{HASHES}"
        ) from None
    expected: dict[str, str] = {}
    for p in manifest.partitions:
        if not _PARTITION.fullmatch(p.file):
            raise DataError(
                f"partition path {p.file!r} is not year=YYYY/month=MM/<name>.parquet", source=f"{where}/{MANIFEST}"
            )
        if p.file not in index:
            raise DataError(f"{p.file} is listed by the manifest but not by {HASHES}", source=f"{where}/{HASHES}")
        expected[p.file] = index[p.file]
    todo = [f for f, sha in expected.items() if not ((folder / f).is_file() and file_sha256(folder / f) == sha)]
    store.root.mkdir(parents=True, exist_ok=True)
    staging = store.root / f"{TMP_PREFIX}pull-{uuid.uuid4().hex}"
    try:
        nbytes = 0
        for name in _progress(todo, f"pull {symbol}/{timeframe}", progress):
            target = staging / name
            target.parent.mkdir(parents=True, exist_ok=True)
            fs.get_file(f"{remote}/{name}", str(target))
            if (actual := file_sha256(target)) != expected[name]:
                raise DataError(
                    f"SHA-256 {actual[:16]}… does not match {expected[name][:16]}… in {HASHES}; "
                    "refusing to pull a corrupted or tampered file",
                    source=f"{where}/{name}",
                )
            nbytes += target.stat().st_size
        with locked(folder):
            for name in expected:
                if name not in todo and not (folder / name).is_file():
                    raise DataError(f"the local dataset changed during the pull ({name} is gone); pull again")
            for name in todo:
                (folder / name).parent.mkdir(parents=True, exist_ok=True)
                (staging / name).replace(folder / name)
            transferred = len(todo)
            local_manifest = folder / MANIFEST
            if not local_manifest.is_file() or local_manifest.read_bytes() != manifest_bytes:
                atomic_write(local_manifest, lambda p: p.write_bytes(manifest_bytes), fsync=True)
                transferred += 1
                nbytes += len(manifest_bytes)
            stale = [p for p in folder.glob("year=*/month=*/*") if p.relative_to(folder).as_posix() not in expected]
            for path in stale:
                path.unlink()
            _prune_empty(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return SyncReport(
        "pull", symbol, timeframe, where, transferred, len(expected) - len(todo), nbytes, len(stale), manifest.version
    )


def _join(url: str, symbol: str, timeframe: str) -> str:
    return f"{url.rstrip('/')}/{symbol}/{timeframe}"


def _remote(url: str, symbol: str, timeframe: str) -> tuple[fsspec.AbstractFileSystem, str]:
    fs, base = filesystem(url)
    return fs, f"{base}/{check_symbol(symbol)}/{timeframe}"


def _listing(fs: fsspec.AbstractFileSystem, remote: str) -> set[str]:
    """Paths of the files under ``remote``, relative to it."""
    return {path[len(remote) + 1 :] for path in fs.find(remote)}


def _read_index(fs: fsspec.AbstractFileSystem, remote: str) -> dict[str, str]:
    path = f"{remote}/{HASHES}"
    try:
        files = json.loads(fs.cat_file(path))["files"]
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"unreadable hash index ({exc!r}); push the dataset again", source=path) from None
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        raise DataError("'files' must map relative paths to SHA-256 hex digests", source=path)
    return files


def _index_bytes(files: dict[str, str]) -> bytes:
    return json.dumps({"files": dict(sorted(files.items()))}, indent=2).encode()


def _upload(fs: fsspec.AbstractFileSystem, local: Path, target: str) -> int:
    """Copy one file whole (through a temporary file renamed into place on local disk); its size."""
    if isinstance(fs, LocalFileSystem):
        atomic_write(Path(target), lambda p: shutil.copyfile(local, p))
    else:
        fs.put_file(str(local), target)
    return local.stat().st_size


def _write_remote(fs: fsspec.AbstractFileSystem, target: str, data: bytes) -> None:
    if isinstance(fs, LocalFileSystem):
        atomic_write(Path(target), lambda p: p.write_bytes(data), fsync=True)
    else:
        fs.pipe_file(target, data)


def _progress(names: list[str], label: str, enabled: bool) -> Iterable[str]:
    with Progress(disable=not enabled or len(names) < PROGRESS_MIN_FILES, transient=True) as bar:
        yield from bar.track(names, description=label)


def _prune_empty(folder: Path) -> None:
    """Remove the month and year folders that no longer hold any file."""
    for directory in sorted(folder.glob("year=*/month=*")) + sorted(folder.glob("year=*")):
        if directory.is_dir() and not any(directory.iterdir()):
            directory.rmdir()
