"""Installing a throwaway plugin distribution (a module and its entry points) for registry tests."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def installed_plugin(
    folder: Path, monkeypatch: pytest.MonkeyPatch, module: str, source: str, entry_points: str
) -> Iterator[None]:
    """Make ``module`` (with ``source``) and a distribution declaring ``entry_points`` importable from ``folder``.

    The distribution is named after the module with ``_`` as ``-``; it is found by ``importlib.metadata``
    because ``folder`` goes on ``sys.path`` (which also invalidates the import caches).
    """
    (folder / f"{module}.py").write_text(source)
    dist_info = folder / f"{module}-1.0.dist-info"
    dist_info.mkdir()
    name = module.replace("_", "-")
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(entry_points)
    monkeypatch.syspath_prepend(str(folder))
    try:
        yield
    finally:
        sys.modules.pop(module, None)
