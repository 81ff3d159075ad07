"""On-disk cache of feature arrays: one ``.npy`` file per key, written atomically, read memory-mapped.

Keys are SHA-256 digests of what determines the values (see :func:`cache_key`): the dataset version,
the tool's name, version and validated parameters, and the normalisation. A changed tool version or
dataset gives another key, so stale entries are never read; they are only left behind.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
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

logger = logging.getLogger(__name__)


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
        """Write ``array`` (float32, 2-D) atomically; a write that fails is logged and leaves the cache as it was."""
        path = self.path(kind, key)

        def write(tmp: Path) -> None:
            with tmp.open("wb") as handle:
                np.save(handle, np.ascontiguousarray(array, dtype=np.float32))

        try:
            atomic_write(path, write)
        except OSError as exc:
            logger.warning("feature cache entry %s not written (%s); it will be recomputed", path, exc)
