"""The registry and the TA-Lib pack: discovery, conflicts, parameters, and every way a source can be broken."""

from __future__ import annotations

import logging
import math
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import talib
from pydantic import ValidationError

from tests.plugins import installed_plugin
from tradelab.data.ingest.synth import generate_bars
from tradelab.settings import get_settings
from tradelab.tools.base import Bars
from tradelab.tools.errors import ToolError
from tradelab.tools.registry import MANIFEST, Registry, default_registry
from tradelab.tools.talib_pack import SKIPPED, TalibTool

SPREAD = '''"""A user's tool: the bar's high-low range."""
from tradelab.tools.base import Tool


class Spread(Tool):
    inputs = ("high", "low")

    def warmup(self, params):
        return 0

    def compute(self, bars, params):
        return bars["high"] - bars["low"]
'''


def manifest(name: str = "spread", module: str = "spread", callable_: str = "Spread") -> str:
    return (
        f'name = "{name}"\nversion = "1.0.0"\ndescription = "High minus low"\n'
        f'module = "{module}"\ncallable = "{callable_}"\n'
    )


def write_folder(root: Path, folder: str, toml: str, files: dict[str, str]) -> None:
    (root / folder).mkdir()
    (root / folder / MANIFEST).write_text(toml)
    for relative, text in files.items():
        (root / folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / folder / relative).write_text(text)


@pytest.fixture(scope="module")
def bars() -> Bars:
    return Bars.from_frame(generate_bars(1, seed=5, gaps=False))


@pytest.fixture(scope="module")
def registry() -> Registry:
    return default_registry()


def test_default_registry_loads_every_source_cleanly(registry: Registry) -> None:
    assert len(registry) > 100
    assert registry.warnings == []
    origins = {tool.origin for tool in registry}
    assert {"builtin", "talib"} <= origins
    shipped = sorted(p.name for p in get_settings().manifest_tools_dir.iterdir() if (p / MANIFEST).is_file())
    assert shipped, "the repository ships manifest tools"
    assert {f"manifest:{folder}" for folder in shipped} <= origins
    assert len(registry.names()) == len({name.lower() for name in registry.names()}) == len(registry)


def test_talib_pack_covers_talib_less_the_skipped(registry: Registry) -> None:
    talib_names = {tool.name for tool in registry if tool.origin == "talib"}
    assert talib_names == set(talib.get_functions()) - set(SKIPPED)
    assert set(SKIPPED) <= set(talib.get_functions())


@pytest.mark.parametrize("name", sorted(set(SKIPPED) - {"MAVP"}))
def test_skipped_math_transforms_are_undefined_on_prices(name: str, bars: Bars) -> None:
    assert not np.isfinite(getattr(talib, name)(bars["close"])).all()


def test_a_function_reading_a_non_bar_series_cannot_be_a_tool() -> None:
    with pytest.raises(ToolError, match="MAVP reads periods"):
        TalibTool("MAVP")


def _close(b: Bars) -> tuple[np.ndarray, ...]:
    return (b["close"],)


def _hlc(b: Bars) -> tuple[np.ndarray, ...]:
    return b["high"], b["low"], b["close"]


@pytest.mark.parametrize(
    ("name", "params", "arrays"),
    [
        ("RSI", {"timeperiod": 9}, _close),
        ("MACD", {}, _close),
        ("BBANDS", {"timeperiod": 10, "nbdevdn": 1.5, "matype": 1}, _close),
        ("ATR", {}, _hlc),
        ("STOCH", {"fastk_period": 7, "slowd_matype": 2}, _hlc),
        ("OBV", {}, lambda b: (b["close"], b["volume"])),
        ("CDLENGULFING", {}, lambda b: (b["open"], b["high"], b["low"], b["close"])),
    ],
)
def test_talib_pack_matches_talib_bit_for_bit(
    name: str, params: dict, arrays: Callable[[Bars], tuple[np.ndarray, ...]], registry: Registry, bars: Bars
) -> None:
    direct = getattr(talib, name)(*arrays(bars), **params)
    direct = direct if isinstance(direct, tuple) else (direct,)
    outputs = registry.get(name).run(bars, params)
    assert list(outputs) == talib.abstract.Function(name).info["output_names"]
    for ours, theirs in zip(outputs.values(), direct, strict=True):
        assert ours.dtype == np.float64
        np.testing.assert_array_equal(ours, theirs.astype(np.float64))
    # Not a comparison of two all-zero arrays: every output (CDLENGULFING's signals too) moves on this sample.
    assert all(np.any(np.nan_to_num(values) != 0) for values in outputs.values())


def test_talib_tool_metadata(registry: Registry) -> None:
    rsi = registry.get("RSI")
    assert (rsi.origin, rsi.group, rsi.description) == ("talib", "Momentum Indicators", "Relative Strength Index")
    assert rsi.version == f"talib-{talib.__version__}"
    assert rsi.inputs == ("close",)
    assert rsi.warmup(rsi.parse_params()) == 14
    assert rsi.warmup(rsi.parse_params({"timeperiod": 30})) == 30
    assert registry.get("OBV").inputs == ("close", "volume")
    assert registry.get("BETA").inputs == ("high", "low")
    macd = registry.get("MACD")
    assert macd.outputs(macd.parse_params()) == ["macd", "macdsignal", "macdhist"]
    assert macd.warmup(macd.parse_params({"fastperiod": 5, "slowperiod": 10, "signalperiod": 3})) == 9 + 2


def test_params_schema_has_talib_defaults_and_bounds(registry: Registry) -> None:
    schema = registry.get("BBANDS").params_schema()
    fields = schema["properties"]
    assert schema["additionalProperties"] is False
    assert fields["timeperiod"] == fields["timeperiod"] | {"type": "integer", "default": 20, "minimum": 1}
    assert fields["nbdevup"]["type"] == "number" and fields["nbdevup"]["default"] == 2.0
    assert fields["matype"]["minimum"] == 0 and fields["matype"]["maximum"] >= 8
    assert "1 = Exponential Moving Average" in fields["matype"]["description"]
    assert fields["timeperiod"]["title"] == "Time Period"
    assert registry.get("CDLDOJI").params_schema()["properties"] == {}


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("RSI", {"timeperiod": 0}, r"RSI: timeperiod: Input should be greater than or equal to 1"),
        ("RSI", {"timeperiod": 2.5}, r"RSI: timeperiod: .*fractional part"),
        ("RSI", {"period": 14}, r"RSI: period: Extra inputs are not permitted"),
        ("BBANDS", {"nbdevup": math.nan}, r"BBANDS: nbdevup: .*finite"),
        ("BBANDS", {"matype": 99}, r"BBANDS: matype: Input should be less than or equal to"),
        # In range for the model, out of TA-Lib's own range (RSI needs at least 2 bars).
        ("RSI", {"timeperiod": 1}, r"RSI: .*TA-Lib's RSI rejects timeperiod=1"),
        ("T3", {"timeperiod": 5, "vfactor": 1.5}, r"T3: .*rejects vfactor=1.5"),
    ],
)
def test_invalid_params_name_the_tool_and_field(name: str, params: dict, message: str, registry: Registry) -> None:
    with pytest.raises(ToolError, match=message):
        registry.get(name).parse_params(params)


def test_params_are_frozen(registry: Registry) -> None:
    params = registry.get("RSI").parse_params({"timeperiod": 10})
    with pytest.raises(ValidationError, match="frozen"):
        params.timeperiod = 3  # type: ignore[misc]


def test_a_talib_failure_names_the_tool_and_params(registry: Registry, bars: Bars) -> None:
    rsi = registry.get("RSI")
    unchecked = rsi.Params.model_construct(timeperiod=1)  # skips validation, so TA-Lib itself refuses
    with pytest.raises(ToolError, match=r"tool RSI failed with parameters \{'timeperiod': 1\}: .*TA_BAD_PARAM"):
        rsi.compute(bars, unchecked)


def test_unknown_name_suggests_the_closest(registry: Registry) -> None:
    with pytest.raises(ToolError, match=r"unknown tool 'RIS'; did you mean .*\bRSI\b.*\?"):
        registry.get("RIS")
    with pytest.raises(ToolError, match=r"unknown tool 'qqqqqq'; see `tradelab tools list`"):
        registry.get("qqqqqq")
    assert registry.get("rsi") is registry.get("RSI")
    assert "Rsi" in registry and "RIS" not in registry


def test_a_user_tool_is_a_folder_and_a_manifest(tmp_path: Path, bars: Bars) -> None:
    write_folder(tmp_path, "spread", manifest(), {"spread.py": SPREAD})
    # A package module with a relative import works too, and needs nothing on sys.path.
    package = {
        "impl/__init__.py": "from .core import Mid\n",
        "impl/core.py": SPREAD.replace("Spread", "Mid").replace(
            'bars["high"] - bars["low"]', '(bars["high"] + bars["low"]) / 2'
        ),
    }
    write_folder(tmp_path, "mid_folder", manifest("mid", "impl", "Mid"), package)
    registry = Registry(tmp_path, talib=False, entry_points=False)
    assert registry.warnings == []
    spread = registry.get("SPREAD")
    assert (spread.name, spread.version, spread.description) == ("spread", "1.0.0", "High minus low")
    assert spread.origin == "manifest:spread"
    np.testing.assert_array_equal(spread.run(bars)["spread"], bars["high"] - bars["low"])
    mid = registry.get("mid")
    assert mid.origin == "manifest:mid_folder"
    np.testing.assert_array_equal(mid.run(bars)["mid"], (bars["high"] + bars["low"]) / 2)
    assert str(tmp_path) not in sys.path


BROKEN = [
    pytest.param('name = "x"\nversion = ', {}, r"tool.toml is not valid TOML", id="bad-toml"),
    pytest.param(manifest().replace('callable = "Spread"\n', ""), {"spread.py": SPREAD}, "lacks .* callable", id="key"),
    pytest.param(manifest(module="absent"), {}, r"no module absent.py or package absent/", id="missing-module"),
    pytest.param(manifest(module="../spread"), {}, r"module must be a Python identifier", id="module-path"),
    pytest.param(
        manifest(), {"spread.py": "import tradelab_no_such_package\n"}, "ModuleNotFoundError", id="import-error"
    ),
    pytest.param(manifest(callable_="Nope"), {"spread.py": SPREAD}, r"has no attribute 'Nope'", id="missing-callable"),
    pytest.param(manifest(callable_="VALUE"), {"spread.py": "VALUE = 3\n"}, r"3 is not a Tool", id="not-a-tool"),
    pytest.param(
        manifest(callable_="make"),
        {"spread.py": "def make():\n    raise RuntimeError('no GPU')\n"},
        "RuntimeError: no GPU",
        id="factory-raises",
    ),
    pytest.param(
        manifest(),
        {"spread.py": SPREAD},
        r"spread from manifest:z_broken skipped: .*taken by spread from manifest:a_good",
        id="dup",
    ),
    pytest.param(
        manifest(name="other"),
        {
            "spread.py": SPREAD.replace(
                '    inputs = ("high", "low")', '    inputs = ("high", "low")\n    version = "9.9"'
            )
        },
        r"the tool's version is '9.9' but tool.toml says '1.0.0'",
        id="version-mismatch",
    ),
]


@pytest.mark.parametrize(("toml", "files", "reason"), BROKEN)
def test_a_broken_manifest_is_skipped_with_a_warning(
    toml: str, files: dict[str, str], reason: str, tmp_path: Path, bars: Bars, caplog: pytest.LogCaptureFixture
) -> None:
    write_folder(tmp_path, "a_good", manifest(), {"spread.py": SPREAD})
    write_folder(tmp_path, "z_broken", toml, files)
    with caplog.at_level(logging.WARNING, logger="tradelab.tools.registry"):
        registry = Registry(tmp_path, talib=False, entry_points=False)
    [warning] = registry.warnings
    assert "z_broken" in warning
    assert re.search(reason, warning), warning
    assert [r.getMessage() for r in caplog.records] == [warning]
    assert registry.get("spread").origin == "manifest:a_good"
    assert registry.get("spread").run(bars)["spread"].shape == (bars.n,)
    assert "other" not in registry


def test_a_manifest_cannot_shadow_a_talib_function(tmp_path: Path) -> None:
    write_folder(tmp_path, "my_rsi", manifest(name="rsi"), {"spread.py": SPREAD})
    registry = Registry(tmp_path, entry_points=False)
    assert registry.warnings == ["tool rsi from manifest:my_rsi skipped: the name is taken by RSI from talib"]
    assert registry.get("rsi").origin == "talib"


PLUGIN = (
    SPREAD
    + """

class Width(Spread):
    name = "width"
    version = "2.0"


class ShadowRSI(Spread):
    name = "RSI"


def make_ratio():
    tool = Spread()
    tool.name = "ratio"
    return tool


PAIR = [Width, make_ratio]
"""
)
ENTRY_POINTS = """[tradelab.tools]
pair = tradelab_test_plugin:PAIR
width_again = tradelab_test_plugin:Width
shadow = tradelab_test_plugin:ShadowRSI
gone = tradelab_test_plugin:DOES_NOT_EXIST
nameless = tradelab_test_plugin:Spread
"""


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A distribution ``tradelab-test-plugin`` with entry points, installed by putting it on ``sys.path``."""
    with installed_plugin(tmp_path, monkeypatch, "tradelab_test_plugin", PLUGIN, ENTRY_POINTS):
        yield


@pytest.mark.usefixtures("plugin")
def test_entry_point_plugins_load_and_cannot_shadow(bars: Bars) -> None:
    registry = Registry()
    origin = "entry-point:tradelab-test-plugin"
    assert registry.get("width").origin == registry.get("ratio").origin == origin
    assert registry.get("width").version == "2.0"
    np.testing.assert_array_equal(registry.get("ratio").run(bars)["ratio"], bars["high"] - bars["low"])
    assert registry.get("RSI").origin == "talib"
    expected = [
        f"tool width from {origin} skipped: the name is taken by width from {origin}",
        f"tool RSI from {origin} skipped: the name is taken by RSI from talib",
        f"entry point gone = tradelab_test_plugin:DOES_NOT_EXIST ({origin}) skipped: AttributeError:",
        f"tool Spread from {origin} skipped: it has no name",
    ]
    assert len(registry.warnings) == len(expected)
    for warning, start in zip(sorted(registry.warnings), sorted(expected), strict=True):
        assert warning.startswith(start)
