"""The tool registry: built-ins, the TA-Lib pack, manifest folders and entry-point plugins, found by name.

A manifest tool is a folder ``<tools_dir>/<folder>/`` holding a ``tool.toml``::

    name = "my_tool"
    version = "1.0.0"
    description = "What it computes"
    module = "my_tool"      # my_tool.py beside tool.toml, or a package folder my_tool/
    callable = "MyTool"     # a Tool subclass, a Tool instance, or a zero-argument factory returning a Tool

A plugin package declares tools in the entry-point group ``tradelab.tools``; each entry point loads to a
Tool subclass, a Tool instance, a factory, or an iterable of those.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.metadata
import importlib.util
import logging
import re
import sys
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from types import ModuleType

from tradelab.plugins import describe_entry_point, entry_point_objects
from tradelab.settings import get_settings
from tradelab.tools.base import Tool
from tradelab.tools.builtin import BUILTIN_TOOLS
from tradelab.tools.errors import ToolError
from tradelab.tools.talib_pack import talib_tools

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "tradelab.tools"
MANIFEST = "tool.toml"
_MANIFEST_KEYS = ("name", "version", "description", "module", "callable")
_NON_WORD = re.compile(r"\W")


class Registry:
    """Every tool found, by name (case-insensitive).

    Sources load in priority order: built-ins, the TA-Lib pack, manifest folders (sorted by folder name),
    entry points. A tool whose name is already taken, and a source that fails to load (bad TOML, missing
    module, import error, not a Tool, ...), is skipped with a warning; the rest still loads.

    :param tools_dir: folder of manifest tools (``<folder>/tool.toml``); None, or a folder that does not
        exist, for none. :func:`default_registry` passes the configured one.
    :param talib: include the TA-Lib pack.
    :param entry_points: include the tools of installed plugins (entry-point group ``tradelab.tools``).
    """

    def __init__(self, tools_dir: Path | None = None, *, talib: bool = True, entry_points: bool = True) -> None:
        self._tools: dict[str, Tool] = {}
        #: Why each skipped tool or source was skipped, in loading order (each also logged as a warning).
        self.warnings: list[str] = []
        for tool in BUILTIN_TOOLS:
            self._add(tool)
        if talib:
            for tool in talib_tools():
                self._add(tool)
        if tools_dir is not None and tools_dir.is_dir():
            for folder in sorted(p for p in tools_dir.iterdir() if (p / MANIFEST).is_file()):
                try:
                    tool = _load_manifest(folder)
                except Exception as exc:  # a broken manifest must not take the registry down
                    self._warn(f"manifest tool in {folder} skipped: {_reason(exc)}")
                else:
                    self._add(tool)
        if entry_points:
            for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
                self._load_entry_point(entry_point)

    def get(self, name: str) -> Tool:
        """The tool called ``name``, in any case.

        :raises ToolError: for an unknown name, suggesting the closest names.
        """
        tool = self._tools.get(name.lower())
        if tool is not None:
            return tool
        close = difflib.get_close_matches(name.lower(), self._tools, n=5, cutoff=0.6)
        hint = (
            f"did you mean {', '.join(self._tools[k].name for k in close)}?" if close else "see `tradelab tools list`"
        )
        raise ToolError(f"unknown tool {name!r}; {hint}")

    def names(self) -> list[str]:
        """Names of the tools, in loading order."""
        return [tool.name for tool in self._tools.values()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._tools

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    def _add(self, tool: Tool) -> None:
        if not isinstance(tool.name, str) or not tool.name:
            self._warn(f"tool {type(tool).__name__} from {tool.origin} skipped: it has no name")
            return
        taken = self._tools.get(tool.name.lower())
        if taken is not None:
            self._warn(
                f"tool {tool.name} from {tool.origin} skipped: the name is taken by {taken.name} from {taken.origin}"
            )
            return
        self._tools[tool.name.lower()] = tool

    def _load_entry_point(self, entry_point: importlib.metadata.EntryPoint) -> None:
        origin, where = describe_entry_point(entry_point)
        try:
            targets = entry_point_objects(entry_point)
        except Exception as exc:  # a broken plugin must not take the registry down
            self._warn(f"{where} skipped: {_reason(exc)}")
            return
        for target in targets:
            try:
                tool = _instantiate(target)
            except Exception as exc:
                self._warn(f"{where} skipped: {_reason(exc)}")
                continue
            tool.origin = origin
            self._add(tool)

    def _warn(self, message: str) -> None:
        self.warnings.append(message)
        logger.warning("%s", message)


@cache
def default_registry() -> Registry:
    """The registry of this process (built once): every source, manifests from the configured tools folder."""
    return Registry(get_settings().manifest_tools_dir)


def _load_manifest(folder: Path) -> Tool:
    """The tool a manifest folder declares, with the manifest's name, version and description.

    :raises ToolError: for a manifest that is not valid TOML, lacks a key, names a missing module or
        attribute, or a tool whose own name, version or description contradicts the manifest.
    """
    try:
        manifest = tomllib.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ToolError(f"{MANIFEST} is not valid TOML: {exc}") from exc
    missing = [k for k in _MANIFEST_KEYS if not isinstance(manifest.get(k), str) or not manifest[k]]
    if missing:
        raise ToolError(f"{MANIFEST} lacks the string key(s) {', '.join(missing)}")
    module = _import_from(folder, manifest["module"])
    if not hasattr(module, manifest["callable"]):
        raise ToolError(f"module {manifest['module']} has no attribute {manifest['callable']!r}")
    tool = _instantiate(getattr(module, manifest["callable"]))
    for key in ("name", "version", "description"):
        own = getattr(tool, key)
        if not own:
            setattr(tool, key, manifest[key])
        elif own != manifest[key]:
            raise ToolError(f"the tool's {key} is {own!r} but {MANIFEST} says {manifest[key]!r}")
    tool.origin = f"manifest:{folder.name}"
    tool.source_dir = folder
    return tool


def _import_from(folder: Path, module: str) -> ModuleType:
    """Import ``folder/<module>.py`` or the package ``folder/<module>/`` without touching ``sys.path``.

    The module is registered under a name unique to the folder, so two manifest folders may both
    have a ``tool.py`` and pydantic can resolve the annotations of models defined in it.
    """
    if not module.isidentifier():
        raise ToolError(f"module must be a Python identifier (a file name without .py), got {module!r}")
    package = folder / module / "__init__.py"
    path = package if package.is_file() else folder / f"{module}.py"
    if not path.is_file():
        raise ToolError(f"no module {module}.py or package {module}/ in the folder")
    digest = hashlib.sha1(str(folder.resolve()).encode()).hexdigest()[:10]
    unique = f"tradelab_tool_{_NON_WORD.sub('_', folder.name)}_{digest}_{module}"
    locations = [str(package.parent)] if path == package else None
    spec = importlib.util.spec_from_file_location(unique, path, submodule_search_locations=locations)
    assert spec is not None and spec.loader is not None  # a .py file path always has a spec
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[unique] = loaded
    try:
        spec.loader.exec_module(loaded)
    except BaseException:
        del sys.modules[unique]
        raise
    return loaded


def _instantiate(target: object) -> Tool:
    """A Tool from a Tool subclass (called with no arguments), a Tool instance, or a factory returning one.

    :raises ToolError: when ``target`` is none of those.
    """
    tool = target() if callable(target) and not isinstance(target, Tool) else target
    if not isinstance(tool, Tool):
        raise ToolError(f"{target!r} is not a Tool subclass, a Tool instance, or a factory returning a Tool")
    return tool


def _reason(exc: Exception) -> str:
    """The message of a ToolError, else the exception's type and message."""
    return str(exc) if isinstance(exc, ToolError) else f"{type(exc).__name__}: {exc}"
