"""A run's artifact folder, read and written through fsspec so it can live on local disk or in ``s3://``.

One folder per run holds:

- ``config.json``: the resolved config, the dataset's content hash, the git commit, package versions, the seed;
- ``status.json``: ``running``, then ``succeeded``, ``interrupted`` or ``failed`` (with the traceback);
- ``model.zip``: the selected model (best on validation, else the last);
- ``tensorboard/``: SB3's training logs and the validation metrics (``tensorboard --logdir <run folder>``);
- ``checkpoint.zip``, ``best_model.zip``, ``training_state.json``: what ``tradelab run --resume`` goes on from;
- ``metrics.parquet``: the training curve (one row per validation evaluation);
- ``equity_<split>.parquet`` and ``trades_<split>.parquet``: the agent's and the baselines' curves, the agent's trades;
- ``results.json``: every metric of the agent and the baselines, and the SHA-256 of ``model.zip``;
- ``report.html``: a self-contained report (metrics table, equity, drawdown, trades on price, training curves).

Every file is written whole or not at all: locally through a temporary file renamed into place, on
object stores by their own atomic put. A reader never sees half a ``results.json``.

Reads never leave the folder: on local disk, a file or folder that is a link leading out of it is neither read
nor listed, so a run cannot plant ``leak.txt -> /etc/passwd`` for the API to serve.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

import polars as pl
from fsspec.implementations.local import LocalFileSystem

from tradelab.atomic import atomic_write
from tradelab.compute.storage import filesystem
from tradelab.data.errors import DataError


class RunStorage:
    """The artifact folder of one run at ``url`` (a local path or any fsspec URL).

    :param url: the folder; created when missing.
    :param within: the folder that reads must stay inside once links are followed (the run's own folder when
        ``url`` is a subfolder of it); ``url`` itself when None.
    """

    def __init__(self, url: str | os.PathLike[str], *, within: str | None = None) -> None:
        self.url = str(url)
        self.fs, self.root = filesystem(self.url)
        self.fs.makedirs(self.root, exist_ok=True)
        self.within = within or self.url
        local = isinstance(self.fs, LocalFileSystem)
        self._boundary = Path(filesystem(self.within)[1]).resolve() if local else None

    def inside(self, name: str) -> bool:
        """Whether artifact ``name`` stays inside :attr:`within` once links are followed (object stores have none)."""
        if self._boundary is None:
            return True
        try:
            return Path(self.path(name)).resolve().is_relative_to(self._boundary)
        except (OSError, RuntimeError):  # a link loop
            return False

    def files(self) -> dict[str, int]:
        """Every file of the folder by its path inside it, with its size; on local disk none reached through a
        link leading out of :attr:`within` (linked folders are not entered)."""
        if self._boundary is None:
            prefix = self.root.rstrip("/") + "/"
            found = self.fs.find(self.root, detail=True)
            return {path.removeprefix(prefix): int(info.get("size") or 0) for path, info in sorted(found.items())}
        root = Path(self.root)
        walked = sorted(Path(folder, name) for folder, _folders, files in os.walk(root) for name in files)
        inside = [path for path in walked if self.inside(path.relative_to(root).as_posix()) and path.is_file()]
        return {path.relative_to(root).as_posix(): path.stat().st_size for path in inside}  # no dangling link

    def path(self, name: str) -> str:
        """The full path of artifact ``name`` in the folder's filesystem."""
        return f"{self.root.rstrip('/')}/{name}"

    def write_bytes(self, name: str, data: bytes) -> None:
        """Write artifact ``name`` whole (a temporary file renamed into place on local disk)."""
        target = self.path(name)
        if isinstance(self.fs, LocalFileSystem):
            atomic_write(Path(target), lambda temporary: temporary.write_bytes(data), fsync=True)
        else:
            self.fs.pipe_file(target, data)

    def put_folder(self, local: str | os.PathLike[str], name: str) -> None:
        """Copy the local folder ``local`` (e.g. TensorBoard logs) into the run folder as ``name``, merging."""
        files = [path for path in Path(local).rglob("*") if path.is_file()]
        for path in files:
            self.fs.makedirs(self.path(f"{name}/{path.parent.relative_to(local)}"), exist_ok=True)
            self.fs.put_file(str(path), self.path(f"{name}/{path.relative_to(local)}"))

    def read_bytes(self, name: str) -> bytes:
        """The content of artifact ``name``.

        :raises FileNotFoundError: when it does not exist.
        :raises DataError: when it is a link leading out of :attr:`within`.
        """
        if not self.inside(name):
            raise DataError(f"a link leading out of the run folder {self.within}: not read", source=self.path(name))
        return self.fs.cat_file(self.path(name))

    def read_verified(self, name: str, sha256: str | None) -> bytes:
        """The content of artifact ``name``, once it matches the SHA-256 recorded when it was written: for files
        whose loading runs code (a model is unpickled), so that a swapped or corrupted one is never loaded.

        :raises DataError: when no hash was recorded or the content does not match it.
        """
        if not sha256:
            raise DataError(
                "no SHA-256 of it was recorded when the run wrote it (a run from before hashes were recorded: "
                "train it again); refusing to load a file that cannot be checked",
                source=self.path(name),
            )
        data = self.read_bytes(name)
        if (actual := hashlib.sha256(data).hexdigest()) != sha256:
            raise DataError(
                f"SHA-256 {actual[:16]}… does not match {sha256[:16]}…, recorded when the run wrote it; "
                "refusing to load a changed file",
                source=self.path(name),
            )
        return data

    def exists(self, name: str) -> bool:
        """Whether artifact ``name`` exists inside the folder (a link leading out of it does not count)."""
        return self.inside(name) and self.fs.exists(self.path(name))

    def write_json(self, name: str, value: Any) -> None:
        """Write ``value`` as indented JSON (non-finite floats as ``Infinity``/``NaN``, as Python writes them)."""
        self.write_bytes(name, json.dumps(value, indent=2, default=str).encode())

    def read_json(self, name: str) -> Any:
        """Artifact ``name`` parsed as JSON."""
        return json.loads(self.read_bytes(name))

    def write_parquet(self, name: str, frame: pl.DataFrame) -> None:
        """Write ``frame`` as a zstd-compressed Parquet file."""
        buffer = io.BytesIO()
        frame.write_parquet(buffer, compression="zstd")
        self.write_bytes(name, buffer.getvalue())

    def read_parquet(self, name: str) -> pl.DataFrame:
        """Artifact ``name`` read as a Parquet frame."""
        return pl.read_parquet(io.BytesIO(self.read_bytes(name)))
