"""Crash-safe file writes: write a temporary sibling, then rename it over the target."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path

TMP_PREFIX = ".tmp-"


def atomic_write(target: Path, write: Callable[[Path], None], *, fsync: bool = False) -> Path:
    """Call ``write(tmp)`` on a temporary path beside ``target``, then atomically rename it to ``target``.

    A reader sees either the old file or the complete new one, never a partial file. If ``write``
    fails, the temporary file is removed and ``target`` is untouched.

    :param fsync: flush the file to disk before the rename (for small, precious files such as manifests).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{TMP_PREFIX}{uuid.uuid4().hex}-{target.name}")
    try:
        write(tmp)
        if fsync:
            with tmp.open("rb") as fh:
                os.fsync(fh.fileno())
        tmp.replace(target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def atomic_write_text(target: Path, text: str) -> Path:
    """Atomically replace ``target`` with ``text`` (UTF-8), flushed to disk."""
    return atomic_write(target, lambda p: p.write_text(text, encoding="utf-8"), fsync=True)
