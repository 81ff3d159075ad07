"""The look-ahead guard: a tool's value at bar ``t`` must not move when the bars after ``t`` change.

``causal = True`` is only the tool's own claim. :func:`check_tool` tests it: it computes the tool on a sample
of real bars, then on copies whose bars after a cut ``t`` are perturbed (prices, volumes and the other
columns scaled up, then down, booleans flipped, timestamps shifted), and requires every output up to ``t``
to stay bit-identical. The cuts are spread over the bars where the outputs are defined, not over the
warm-up, whose NaNs would compare equal whatever the tool reads; scaling the future both up and down moves
any function of the next bar (even its sign), so a tool that reads the next bar fails at every cut.

:class:`LookaheadGuard` runs the check where tools are used (the feature pipeline, hence envs,
``tradelab tools compute`` and ``tradelab run``) the first time a tool's code is used with given parameters,
and keeps the verdict on disk beside the feature cache. ``tradelab tools check`` runs it on demand.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, ValidationError

from tradelab.atomic import atomic_write
from tradelab.data.schema import COLUMNS, TS
from tradelab.tools.base import Bars, Tool
from tradelab.tools.cache import FeatureCache, cache_key
from tradelab.tools.errors import ToolError

#: Most bars a check computes over (more when the tool's warm-up needs them): bounds its cost on long data.
SAMPLE_BARS = 20_000
#: Cut points per check, spread from the first defined output to the second-to-last bar.
CUTS = 8
#: Bumped whenever the check changes, so verdicts of the old check are not trusted.
CHECK_FORMAT = 1
#: Per-bar factors of the two perturbations: every later value moves up, then down.
SCALES = ((1.05, 1.25), (0.8, 0.95))
_BOOLEAN = {name for name, dtype in COLUMNS.items() if dtype == pl.Boolean()}

logger = logging.getLogger(__name__)


class Leak(BaseModel):
    """Where a tool's past moved with its future: output ``column`` at ``bar`` changed with only bars after ``cut``."""

    model_config = ConfigDict(frozen=True)

    column: str
    bar: int
    #: Open time of ``bar`` (epoch milliseconds), None when the bars had no ``ts``.
    ts: int | None
    cut: int

    def where(self) -> str:
        """``<column> at bar <bar> (<time> UTC)``."""
        when = f" ({np.datetime64(self.ts, 'ms')} UTC)" if self.ts is not None else ""
        return f"{self.column} at bar {self.bar}{when}"


class Verdict(BaseModel):
    """The outcome of one check of a tool with given parameters.

    :param bars: size of the sample checked.
    :param cuts: the cut points tried; empty when no output was defined on the sample (nothing to check).
    :param leak: the earliest bar whose value moved with later bars, None when none did.
    """

    model_config = ConfigDict(frozen=True)

    tool: str
    params: dict[str, Any]
    bars: int
    cuts: list[int]
    leak: Leak | None

    @property
    def checked(self) -> bool:
        """Whether any cut was tried (a sample shorter than the warm-up leaves nothing to compare)."""
        return bool(self.cuts)

    def error(self) -> ToolError:
        """The refusal of a leaking tool, naming the tool, the output and the first bar whose past changed."""
        assert self.leak is not None, "only a leaking verdict is refused"
        return ToolError(
            f"tool {self.tool} looks ahead: its output {self.leak.where()} changed when only the "
            f"bars after bar {self.leak.cut} were perturbed (checked on {self.bars:,} bars with params {self.params}). "
            "It claims causal = True; make its value at a bar depend only on bars up to it, or set causal = False "
            "(envs refuse such tools)"
        )


def perturb_after(bars: Bars, t: int, seed: int, scale: tuple[float, float]) -> Bars:
    """A copy of ``bars`` whose every bar after ``t`` (``< bars.n - 1``) differs; bars up to ``t`` are untouched.

    Numeric columns are multiplied by per-bar factors drawn from ``scale`` (high and low are then the
    extremes of the perturbed prices, so bars stay consistent and positive), boolean columns are flipped,
    and timestamps move half a bar later (still increasing).
    """
    rng = np.random.default_rng(seed)
    columns = {name: values.copy() for name, values in bars.items()}
    later = slice(t + 1, None)
    for name, values in columns.items():
        if name == TS:
            values[later] += max(1, int(values[t + 1] - values[t]) // 2)
        elif name in _BOOLEAN:
            values[later] = 1.0 - values[later]
        else:
            values[later] *= rng.uniform(*scale, bars.n - t - 1)
    prices = [columns[c][later] for c in ("open", "high", "low", "close") if c in columns]
    if "high" in columns and "low" in columns:
        columns["high"][later] = np.max(prices, axis=0)
        columns["low"][later] = np.min(prices, axis=0)
    return Bars(columns)


def check_tool(tool: Tool, params: BaseModel, bars: Bars) -> Verdict:
    """Perturb the bars after several cuts and find the earliest output that moved (see the module docstring).

    :param params: the tool's validated parameters.
    :param bars: real bars the tool will be used on; the first :data:`SAMPLE_BARS` (plus the warm-up) are used.
    :raises ToolError: when the tool fails on the bars or on a perturbed copy.
    """
    size = min(bars.n, max(SAMPLE_BARS, tool.warmup(params) + SAMPLE_BARS // 10))
    sample = bars.head(size)
    base = tool.run(sample, params)
    first = min((int(np.argmax(np.isfinite(v))) for v in base.values() if np.isfinite(v).any()), default=size)
    cuts = sorted({int(c) for c in np.linspace(first, size - 2, CUTS)}) if first <= size - 2 else []
    leak = None
    for cut in cuts:
        for i, scale in enumerate(SCALES):
            try:
                moved = tool.run(perturb_after(sample, cut, seed=2 * cut + i, scale=scale), params)
            except ToolError as exc:
                raise ToolError(f"look-ahead check of tool {tool.name}, bars after bar {cut} perturbed: {exc}") from exc
            found = _first_change(base, moved, cut, sample)
            if found is not None and (leak is None or found.bar < leak.bar):
                leak = found
    return Verdict(tool=tool.name, params=params.model_dump(mode="json"), bars=size, cuts=cuts, leak=leak)


def _first_change(base: dict[str, np.ndarray], moved: dict[str, np.ndarray], cut: int, bars: Bars) -> Leak | None:
    """The earliest bar ``<= cut`` where an output of ``moved`` differs from ``base`` (NaN equals NaN)."""
    found = None
    for column, values in base.items():
        before, after = values[: cut + 1], moved[column][: cut + 1]
        changed = np.flatnonzero((before != after) & ~(np.isnan(before) & np.isnan(after)))
        if changed.size and (found is None or changed[0] < found.bar):
            bar = int(changed[0])
            found = Leak(column=column, bar=bar, ts=int(bars[TS][bar]) if TS in bars else None, cut=cut)
    return found


def fingerprint(tool: Tool) -> str:
    """What identifies a tool's code: its name, version, origin and source bytes (a digest).

    The source is every file of a manifest tool's folder, else the file defining its class, so an edited
    tool is re-checked even when its version was not bumped.
    """
    if tool.source_dir is not None:
        root = tool.source_dir
        files = sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    else:
        source = _class_file(type(tool))
        files = [Path(source)] if source is not None else []
        root = files[0].parent if files else Path()
    sources = {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
    identity = {"tool": tool.name, "version": tool.version, "origin": tool.origin, "class": type(tool).__qualname__}
    return cache_key({**identity, "sources": sources})


def _class_file(cls: type) -> str | None:
    """The source file defining ``cls``, None for a class without one (built in C, made at run time)."""
    try:
        return inspect.getsourcefile(cls)
    except TypeError:
        return None


class LookaheadGuard:
    """Checks each tool's code with given parameters once, and keeps the verdicts as JSON files.

    :param cache_dir: the feature cache folder (see :class:`FeatureCache`); verdicts go in its
        ``lookahead/`` sub-folder.
    :param check: the check to run on a first use (:func:`check_tool`); tests inject one that counts calls.
    """

    def __init__(
        self, cache_dir: Path | None = None, check: Callable[[Tool, BaseModel, Bars], Verdict] | None = None
    ) -> None:
        self.root = FeatureCache(cache_dir).root / "lookahead"
        self._check = check if check is not None else check_tool
        # (tool, params) found causal by this guard: a pipeline computing stretch after stretch asks again, and
        # the key hashes the tool's source files, so the answer is kept rather than re-read.
        self._causal: set[tuple[int, str]] = set()

    def key(self, tool: Tool, params: BaseModel) -> str:
        """The verdict's key: check format, the tool's :func:`fingerprint` and its validated parameters."""
        return cache_key(
            {"lookahead": CHECK_FORMAT, "tool": fingerprint(tool), "params": params.model_dump(mode="json")}
        )

    def verdict(self, tool: Tool, params: BaseModel, bars: Bars, *, fresh: bool = False) -> Verdict:
        """The cached verdict of ``tool`` with ``params``, or a new check on ``bars`` (kept when conclusive).

        :param fresh: check again even when a verdict is cached.
        """
        path = self.root / f"{self.key(tool, params)}.json"
        if not fresh:
            try:
                return Verdict.model_validate_json(path.read_bytes())
            except (OSError, ValidationError):  # absent or unreadable: check again
                pass
        verdict = self._check(tool, params, bars)
        if verdict.checked:
            try:
                atomic_write(path, lambda tmp: tmp.write_text(verdict.model_dump_json(), encoding="utf-8"))
            except OSError as exc:
                logger.warning("look-ahead verdict %s not written (%s); the tool will be checked again", path, exc)
        return verdict

    def require_causal(self, tool: Tool, params: BaseModel, bars: Bars) -> None:
        """Refuse a tool that claims ``causal = True`` but whose past moves with its future.

        Tools that declare ``causal = False`` are not checked: they are honest, and envs refuse them.

        :raises ToolError: naming the tool, the output and the first bar whose past changed.
        """
        seen = (id(tool), params.model_dump_json())
        if not tool.causal or seen in self._causal:
            return
        verdict = self.verdict(tool, params, bars)
        if verdict.leak is not None:
            raise verdict.error()
        if verdict.checked:  # an inconclusive check (too few bars) is tried again on the next bars
            self._causal.add(seen)
