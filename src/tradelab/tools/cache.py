"""On-disk cache of feature arrays: one ``.npy`` file per key, written atomically, read memory-mapped.

Keys are SHA-256 digests of what determines the values (see :func:`cache_key`): the dataset version,
the tool's name, version and validated parameters, and the normalisation. A changed tool version or
dataset gives another key, so stale entries are never read; they are only left behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np

from tradelab.atomic import atomic_write
from tradelab.settings import get_settings

#: Bumped whenever the layout or meaning of cached arrays changes, so old entries are ignored.
CACHE_FORMAT = 1

#: ``columns``: one feature spec's outputs, shape ``(outputs, bars)`` (each output contiguous);
#: ``matrix``: a whole spec list's assembled matrix, shape ``(bars, columns)``.
Kind = Literal["columns", "matrix"]


def cache_key(parts: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of ``parts`` (sorted keys, no whitespace) and :data:`CACHE_FORMAT`.

    :param parts: JSON-serialisable values that determine the cached array.
    """
    text = json.dumps({"format": CACHE_FORMAT, **parts}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


class FeatureCache:
    """Float32 C-ordered 2-D arrays under ``<root>/<kind>/<key>.npy`` (see :data:`Kind`).

    :param root: cache folder; ``$TRADELAB_HOME/cache/features`` when omitted.

    .. note::
        A file that cannot be read back as the expected array (truncated, garbled header, wrong shape or
        dtype) is a miss, and the next write of the key replaces it. Flipped bits inside the data are not
        detected: checksumming would cost more than the cache saves.
    """

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else get_settings().cache_dir / "features"

    def path(self, kind: Kind, key: str) -> Path:
        """File of one entry (it may not exist)."""
        return self.root / kind / f"{key}.npy"

    def load(self, kind: Kind, key: str, shape: tuple[int, int]) -> np.ndarray | None:
        """The entry as a read-only memory map, or None when it is absent or not a float32 C-ordered ``shape`` array.

        :param shape: the expected 2-D shape.
        :return: float32 array of shape ``shape`` backed by the file (pages are read on first touch).
        """
        try:
            array = np.load(self.path(kind, key), mmap_mode="r")
        except (OSError, ValueError, EOFError):  # absent, truncated or garbled
            return None
        if array.dtype != np.float32 or array.shape != shape or not array.flags.c_contiguous:
            return None
        # A plain ndarray view (the memmap subclass leaks into every result computed from it).
        return np.asarray(array)

    def save(self, kind: Kind, key: str, array: np.ndarray) -> None:
        """Write ``array`` (float32, 2-D) atomically; a write that fails warns and leaves the cache as it was."""

        def write(tmp: Path) -> None:
            with tmp.open("wb") as handle:
                np.save(handle, np.ascontiguousarray(array, dtype=np.float32))

        try:
            atomic_write(self.path(kind, key), write)
        except OSError as exc:
            _not_written(exc)

    def create(self, kind: Kind, key: str, shape: tuple[int, int], fill: Callable[[np.ndarray], None]) -> np.ndarray:
        """Write a new entry by filling a memory map of its file: the values are written once, never copied.

        :param shape: the entry's 2-D shape.
        :param fill: sets every value of the float32 C-ordered ``shape`` array it is given.
        :return: the filled array, read-only and backed by the entry's file; when the file cannot be
            written, backed by memory instead (with a warning), so the caller gets its values either way.
        """
        filled: list[np.ndarray] = []

        def write(tmp: Path) -> None:
            array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=shape)
            if hasattr(os, "posix_fallocate"):  # Linux: a full disk fails here, not as a SIGBUS while filling
                with tmp.open("r+b") as handle:
                    os.posix_fallocate(handle.fileno(), 0, tmp.stat().st_size)
            fill(array)
            filled.append(np.asarray(array))

        try:
            atomic_write(self.path(kind, key), write)
        except OSError as exc:
            _not_written(exc)
            if not filled:
                filled.append(np.empty(shape, dtype=np.float32))
                fill(filled[0])
        filled[0].flags.writeable = False
        return filled[0]


def _not_written(exc: OSError) -> None:
    warnings.warn(f"feature cache entry not written ({exc}); it will be recomputed", stacklevel=3)
