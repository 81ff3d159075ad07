"""Crash-safe file writes (a temporary sibling renamed over the target) and folder locks."""

from __future__ import annotations

import fcntl
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


@contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (through ``folder/.lock``), so two processes take turns."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
