"""Where a run's artifacts may live: its own folder under the storage root, ``<root>/runs/run-<id>``.

The worker hands each run that folder (``TRADELAB_RUN_URL``); the API accepts an ``artifact_url`` only inside
it and reads artifacts only from there. A run's token therefore cannot point the lab at ``/etc``, at another
run's files, or at a model someone else wrote (loading a model unpickles it: that would run their code).

Locations are compared as a filesystem and path segments, not as strings: ``file:///a`` and ``/a`` are the
same place, and anything that could name another place once decoded or normalised (``..``, ``%``, a backslash,
a host in a ``file://`` URL, a query, fsspec's ``::`` chaining) is refused rather than interpreted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy.orm import Session

from tradelab.server.models import Run
from tradelab.settings import get_settings

_LOCAL = ("", "file", "local")
#: Characters that mean something else to a URL parser, fsspec or the OS than to a plain path.
_AMBIGUOUS = re.compile(r"[%?#\\\x00-\x1f\x7f]")
#: ``scheme://netloc/path`` with no other colon (fsspec reads ``file:/etc`` as ``/etc``, ``a::b`` as a chain).
_URL = re.compile(r"([a-z][a-z0-9+.-]*)://([^/:]*)([^:]*)")


def storage_root(configured: str | None = None) -> str:
    """The root of the runs' artifact folders: ``configured``, else the ``storage_url`` setting
    (``TRADELAB_STORAGE_URL``), else ``file://<home>/artifacts``."""
    settings = get_settings()
    return configured or settings.storage_url or (settings.home / "artifacts").as_uri()


def run_folder(run_id: int, root: str | None = None) -> str:
    """Run ``run_id``'s own artifact folder under the storage root (see :func:`storage_root`)."""
    return f"{storage_root(root).rstrip('/')}/runs/run-{run_id}"


def folder_of(url: str, run_ids: Iterable[int], root: str | None = None) -> str:
    """The folder of the run among ``run_ids`` that ``url`` names or lies inside.

    :raises ValueError: saying why ``url`` is in none of them (another filesystem or host, a relative path,
        ``..``, characters that could name another place).
    """
    where = _location(url)
    folders = [run_folder(run_id, root) for run_id in run_ids]
    for folder in folders:
        scheme, segments = _location(folder)
        if where[0] == scheme and where[1][: len(segments)] == segments:
            return folder
    raise ValueError(f"{_shown(url)} is not inside {' or '.join(folders)}")


def check_artifact_url(session: Session, run_id: int, reads: Iterable[int], url: str, root: str | None = None) -> str:
    """``url`` when the lab may record it as run ``run_id``'s artifact folder: inside the run's own folder, or the
    recorded folder of one of the runs it ``reads`` (an evaluation files its results in the scored run's folder).

    :raises ValueError: saying why ``url`` is neither.
    """
    recorded = (session.get(Run, other) for other in reads)
    if url in {other.artifact_url for other in recorded if other is not None}:
        return url
    folder_of(url, [run_id], root)
    return url


def _location(url: str) -> tuple[str, tuple[str, ...]]:
    """``url``'s filesystem and normalised path segments (a local path made absolute).

    :raises ValueError: for what could name another place than it seems to.
    """
    if _AMBIGUOUS.search(url):
        raise ValueError(f"{_shown(url)!r} holds '%', '?', '#', '\\' or a control character")
    parsed = _URL.fullmatch(url)
    if parsed is None and ":" in url:
        raise ValueError(f"{_shown(url)} is neither a path nor a scheme://host/path URL")
    scheme, netloc, path = parsed.groups() if parsed else ("", "", url)
    scheme = "file" if scheme in _LOCAL else scheme
    segments = path.split("/")
    if ".." in segments:
        raise ValueError(f"{_shown(url)} holds '..'")
    if scheme == "file":
        if netloc:
            raise ValueError(f"{_shown(url)} names the host {_shown(netloc)!r}")
        return scheme, Path.cwd().joinpath(path).parts[1:]  # pure: no link is followed
    return scheme, (netloc, *(part for part in segments if part not in ("", ".")))


def _shown(text: str, limit: int = 200) -> str:
    """``text`` as an error message quotes it: its first ``limit`` characters (a message never echoes a large input)."""
    return text if len(text) <= limit else f"{text[:limit]}…"
