"""Throwaway user tools: a plugin distribution (a module and its entry points), manifest folders."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from pydantic import BaseModel

from tradelab.settings import get_settings
from tradelab.tools.base import Bars, Tool
from tradelab.tools.registry import default_registry


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


#: A manifest tool that reads the next bar's return yet keeps the default ``causal = True``.
PEEK = """
import numpy as np
from tradelab.tools.base import Tool

class Peek(Tool):
    def warmup(self, params):
        return 0

    def compute(self, bars, params):
        close = bars["close"]
        return np.append(close[1:] / close[:-1] - 1.0, 0.0)
"""

#: Its honest twin: the return of the bar just closed.
LAST = PEEK.replace("np.append(close[1:] / close[:-1] - 1.0, 0.0)", "np.append(0.0, close[1:] / close[:-1] - 1.0)")


def write_manifest_tool(root: Path, name: str, source: str, version: str = "1.0.0") -> Path:
    """A manifest folder ``root/<name>/`` declaring the tool class ``Peek`` of ``source`` as ``name``."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tool.toml").write_text(
        f'name = "{name}"\nversion = "{version}"\ndescription = "{name}"\nmodule = "tool"\ncallable = "Peek"\n'
    )
    (folder / "tool.py").write_text(source)
    return folder


@contextmanager
def manifest_tools(root: Path, monkeypatch: pytest.MonkeyPatch, sources: dict[str, str]) -> Iterator[None]:
    """Make the default registry (CLI, env, runs) read manifest tools ``name -> source`` from ``root``."""
    for name, source in sources.items():
        write_manifest_tool(root, name, source)
    monkeypatch.setenv("TRADELAB_TOOLS_DIR", str(root))
    get_settings.cache_clear()
    default_registry.cache_clear()
    try:
        yield
    finally:
        default_registry.cache_clear()
        get_settings.cache_clear()


def count_lookahead_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make every look-ahead check append its tool's name to the returned list (then check as usual)."""
    from tradelab.tools import lookahead

    calls: list[str] = []
    check = lookahead.check_tool

    def counting(tool: Tool, params: BaseModel, bars: Bars) -> lookahead.Verdict:
        calls.append(tool.name)
        return check(tool, params, bars)

    monkeypatch.setattr(lookahead, "check_tool", counting)
    return calls
