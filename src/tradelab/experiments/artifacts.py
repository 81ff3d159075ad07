"""A run's artifact folder, read and written through fsspec so it can live on local disk or in ``s3://``.

One folder per run holds:

- ``config.json``: the resolved config, the dataset's content hash, the git commit, package versions, the seed;
- ``status.json``: ``running``, then ``succeeded``, ``interrupted`` or ``failed`` (with the traceback);
- ``model.zip``: the selected model (best on validation, else the last);
- ``tensorboard/``: SB3's training logs and the validation metrics (``tensorboard --logdir <run folder>``);
- ``checkpoint.zip``, ``best_model.zip``, ``training_state.json``: what ``tradelab run --resume`` goes on from;
- ``metrics.parquet``: the training curve (one row per validation evaluation);
- ``equity_<split>.parquet`` and ``trades_<split>.parquet``: the agent's and the baselines' curves, the agent's trades;
- ``results.json``: every metric of the agent and the baselines;
- ``report.html``: a self-contained report (metrics table, equity, drawdown, trades on price, training curves).

Every file is written whole or not at all: locally through a temporary file renamed into place, on
object stores by their own atomic put. A reader never sees half a ``results.json``.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import polars as pl
from fsspec.implementations.local import LocalFileSystem

from tradelab.atomic import atomic_write
from tradelab.compute.storage import filesystem


class RunStorage:
    """The artifact folder of one run at ``url`` (a local path or any fsspec URL).

    :param url: the folder; created when missing.
    """

    def __init__(self, url: str | os.PathLike[str]) -> None:
        self.url = str(url)
        self.fs, self.root = filesystem(self.url)
        self.fs.makedirs(self.root, exist_ok=True)

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
        """
        return self.fs.cat_file(self.path(name))

    def exists(self, name: str) -> bool:
        """Whether artifact ``name`` exists."""
        return self.fs.exists(self.path(name))

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
