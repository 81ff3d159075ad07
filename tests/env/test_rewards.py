"""Reward components on hand-made steps, their weighted sum, per-env state, and plugin components."""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from tests.plugins import installed_plugin
from tradelab.env.rewards import (
    DEFAULT_REWARD,
    DifferentialSharpe,
    RewardError,
    RewardFunction,
    RewardInputs,
    RewardRegistry,
    RewardSpec,
    reward_registry,
)


def make_step(**columns: list[float]) -> RewardInputs:
    """A step with the given columns, the rest filled with neutral values (no fees, flat, cash 100)."""
    n = len(next(iter(columns.values())))
    defaults = {
        "equity_prev": [100.0] * n,
        "equity": [100.0] * n,
        "peak_equity": [100.0] * n,
        "fees": [0.0] * n,
        "units": [0.0] * n,
        "price": [10.0] * n,
        "initial_cash": [100.0] * n,
        "traded_notional": [0.0] * n,
    }
    defaults.update(columns)
    return RewardInputs(**{k: np.array(v, dtype=np.float64) for k, v in defaults.items()})


# Four envs: a new peak, a deepening drawdown, a bankruptcy, a partial recovery.
STEP = make_step(
    equity_prev=[100.0, 100.0, 50.0, 80.0],
    equity=[110.0, 90.0, 0.0, 90.0],
    peak_equity=[110.0, 120.0, 100.0, 120.0],
    fees=[1.0, 0.0, 0.5, 0.2],
    units=[2.0, -1.0, 0.0, 0.5],
    price=[50.0, 30.0, 10.0, 40.0],
    traded_notional=[100.0, 0.0, 20.0, 20.0],
)

EXPECTED = {
    # ln(equity / equity_prev); the bankrupt env's 0 is floored at 1e-6 × 100 = 1e-4: ln(1e-4 / 50)
    "log_return": [math.log(1.1), math.log(0.9), math.log(2e-6), math.log(90 / 80)],
    # (equity - equity_prev) / initial cash
    "pnl": [0.1, -0.1, -0.5, 0.1],
    # new peak: 0; drawdown 1/6 -> 1/4 of the 120 peak: -1/12; 50 -> 0 under a 100 peak: -0.5; recovery: 0
    "drawdown": [0.0, -1 / 12, -0.5, 0.0],
    # -fees / equity_prev
    "cost": [-0.01, 0.0, -0.01, -0.0025],
    # -|units| × price / equity (the bankrupt env is flat)
    "holding": [-100 / 110, -30 / 90, 0.0, -20 / 90],
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_each_component_matches_hand_computed_values(name: str) -> None:
    component = reward_registry().get(name)(4)
    np.testing.assert_allclose(component(STEP), EXPECTED[name], rtol=1e-12, atol=1e-15)


def test_penalties_are_never_positive() -> None:
    for name in ("drawdown", "cost", "holding"):
        assert (reward_registry().get(name)(4)(STEP) <= 0).all(), name


def test_weights_combine_and_each_part_is_reported_unweighted() -> None:
    reward = RewardFunction(
        [
            {"component": "log_return", "weight": 1.0},
            RewardSpec(component="cost", weight=2.0),
            {"component": "DrawDown", "weight": 0.5},  # names are case-insensitive
        ],
        n_envs=4,
    )
    total, parts = reward(STEP)
    assert reward.names == list(parts) == ["log_return", "cost", "drawdown"]
    for name in parts:
        np.testing.assert_allclose(parts[name], EXPECTED[name], rtol=1e-12)
    expected = (
        np.array(EXPECTED["log_return"]) + 2.0 * np.array(EXPECTED["cost"]) + 0.5 * np.array(EXPECTED["drawdown"])
    )
    np.testing.assert_allclose(total, expected, rtol=1e-12)
    assert total.dtype == np.float64 and total.shape == (4,)


def test_default_reward_is_the_log_return() -> None:
    reward = RewardFunction(n_envs=4)
    assert reward.specs == list(DEFAULT_REWARD) == [RewardSpec(component="log_return", weight=1.0)]
    total, parts = reward(STEP)
    np.testing.assert_allclose(total, EXPECTED["log_return"], rtol=1e-12)
    assert list(parts) == ["log_return"]


def test_returned_arrays_are_reused_between_calls() -> None:
    reward = RewardFunction([{"component": "pnl", "weight": 1.0}], n_envs=1)
    total, parts = reward(make_step(equity=[110.0]))
    first = total.copy()
    total_again, parts_again = reward(make_step(equity=[90.0]))
    assert total_again is total and parts_again["pnl"] is parts["pnl"]
    assert first[0] == pytest.approx(0.1) and total[0] == pytest.approx(-0.1)


def differential_sharpe_loop(returns: list[float], eta: float) -> list[float]:
    """Moody & Saffell's formula, one return at a time, moments from 0; D = 0 while the variance is 0."""
    a = b = 0.0
    values = []
    for r in returns:
        delta_a, delta_b = r - a, r * r - b
        variance = b - a * a
        values.append((b * delta_a - 0.5 * a * delta_b) / variance**1.5 if variance > 1e-12 else 0.0)
        a, b = a + eta * delta_a, b + eta * delta_b
    return values


def sharpe_steps(equities: list[float]) -> list[RewardInputs]:
    """One step per consecutive pair of equities (one env)."""
    return [make_step(equity_prev=[p], equity=[e]) for p, e in pairwise(equities)]


EQUITIES_A = [100.0, 101.0, 102.01, 101.0, 103.0, 103.0, 99.0, 104.5]
EQUITIES_B = [100.0, 99.0, 99.5, 100.5, 98.0, 101.0, 102.0, 100.0]


def test_differential_sharpe_matches_the_formula_step_by_step() -> None:
    eta = 0.1
    component = DifferentialSharpe(1, {"eta": eta})
    got = [component(step)[0] for step in sharpe_steps(EQUITIES_A)]
    returns = [math.log(e / p) for p, e in pairwise(EQUITIES_A)]
    np.testing.assert_allclose(got, differential_sharpe_loop(returns, eta), rtol=1e-12)
    assert got[0] == 0.0  # zero variance at the start


def test_differential_sharpe_start_up_value_is_as_documented() -> None:
    # Two equal returns from the start: D_1 = 0 (no variance yet), D_2 = 1 / (2 sqrt(eta (1 - eta))).
    eta = 0.01
    component = DifferentialSharpe(1, {"eta": eta})
    first, second = (component(step)[0] for step in sharpe_steps([100.0, 101.0, 102.01]))
    assert first == 0.0
    assert second == pytest.approx(0.5 / math.sqrt(eta * (1 - eta)), rel=1e-9)


def test_differential_sharpe_is_zero_while_returns_are_zero() -> None:
    component = DifferentialSharpe(1)
    assert [component(step)[0] for step in sharpe_steps([100.0, 100.0, 100.0])] == [0.0, 0.0]


def test_differential_sharpe_keeps_each_envs_state_and_resets_only_the_masked_env() -> None:
    eta = 0.05
    batch = RewardFunction([{"component": "differential_sharpe", "weight": 1.0, "params": {"eta": eta}}], n_envs=2)
    singles = [DifferentialSharpe(1, {"eta": eta}) for _ in range(2)]
    steps = [sharpe_steps(EQUITIES_A), sharpe_steps(EQUITIES_B)]

    def step_both(t: int) -> None:
        pair = [steps[0][t], steps[1][t]]
        batched = RewardInputs(
            **{f: np.concatenate([getattr(s, f) for s in pair]) for f in RewardInputs.__dataclass_fields__}
        )
        total, _ = batch(batched)
        expected = [singles[i](pair[i])[0] for i in range(2)]
        np.testing.assert_allclose(total, expected, rtol=1e-12)

    for t in range(4):
        step_both(t)
    batch.reset(np.array([True, False]))
    singles[0] = DifferentialSharpe(1, {"eta": eta})  # env 0 starts over, env 1 goes on
    for t in range(4, 7):
        step_both(t)
    sharpe = batch.components[0]
    assert isinstance(sharpe, DifferentialSharpe)
    batch.reset()
    assert not sharpe.a.any() and not sharpe.b.any()


def test_unknown_component_suggests_close_names() -> None:
    with pytest.raises(RewardError, match=r"unknown reward component 'log_retrun'; did you mean log_return\?"):
        RewardFunction([{"component": "log_retrun", "weight": 1.0}])
    with pytest.raises(RewardError, match="known: log_return, pnl, drawdown, cost, holding, differential_sharpe"):
        reward_registry().get("zzz")


def test_bad_params_name_the_component_and_field() -> None:
    with pytest.raises(RewardError, match="invalid parameters for reward component differential_sharpe: eta: "):
        RewardFunction([{"component": "differential_sharpe", "weight": 1.0, "params": {"eta": 0.0}}])
    with pytest.raises(RewardError, match="invalid parameters for reward component pnl: scale: Extra inputs"):
        RewardFunction([{"component": "pnl", "weight": 1.0, "params": {"scale": 2}}])


def test_bad_specs_are_refused() -> None:
    with pytest.raises(RewardError, match="at least one component"):
        RewardFunction([])
    with pytest.raises(RewardError, match="pnl is listed twice"):
        RewardFunction([{"component": "pnl", "weight": 1.0}, {"component": "PNL", "weight": 2.0}])
    with pytest.raises(ValueError, match="weight"):
        RewardSpec(component="pnl", weight=math.inf)
    with pytest.raises(ValueError, match="extra"):
        RewardSpec.model_validate({"component": "pnl", "weight": 1.0, "wieght": 2.0})


PLUGIN = '''
from typing import ClassVar

import numpy as np

from tradelab.env.rewards import RewardComponent, RewardInputs


class Turnover(RewardComponent):
    """Minus the notional traded as a fraction of equity before the step."""

    name: ClassVar[str] = "turnover"

    def __call__(self, step: RewardInputs) -> np.ndarray:
        return -step.traded_notional / step.equity_prev


class Scalar(RewardComponent):
    name: ClassVar[str] = "scalar"

    def __call__(self, step: RewardInputs) -> float:
        return 1.0


class ShadowPnl(Turnover):
    name: ClassVar[str] = "pnl"


def helper():
    return None
'''
ENTRY_POINTS = """[tradelab.rewards]
turnover = tradelab_test_rewards:Turnover
scalar = tradelab_test_rewards:Scalar
shadow = tradelab_test_rewards:ShadowPnl
helper = tradelab_test_rewards:helper
"""


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A distribution ``tradelab-test-rewards`` with entry points, installed by putting it on ``sys.path``."""
    with installed_plugin(tmp_path, monkeypatch, "tradelab_test_rewards", PLUGIN, ENTRY_POINTS):
        yield


@pytest.mark.usefixtures("plugin")
def test_plugin_component_from_an_entry_point() -> None:
    registry = RewardRegistry()
    assert "turnover" in registry and registry.get("pnl").__name__ == "Pnl"
    reward = RewardFunction(
        [{"component": "turnover", "weight": 0.5}, {"component": "pnl", "weight": 1.0}], n_envs=4, registry=registry
    )
    total, parts = reward(STEP)
    np.testing.assert_allclose(parts["turnover"], [-1.0, 0.0, -0.4, -0.25], rtol=1e-12)
    np.testing.assert_allclose(total, 0.5 * parts["turnover"] + np.array(EXPECTED["pnl"]), rtol=1e-12)
    origin = "entry-point:tradelab-test-rewards"
    assert registry.warnings == [
        f"reward component pnl from {origin} skipped: the name is taken",
        f"entry point helper = tradelab_test_rewards:helper ({origin}) skipped: "
        f"{sys.modules['tradelab_test_rewards'].helper!r} is not a RewardComponent subclass",
    ]
    with pytest.raises(RewardError, match=r"reward component scalar returned shape \(\), expected \(4,\)"):
        RewardFunction([{"component": "scalar", "weight": 1.0}], n_envs=4, registry=registry)(STEP)
    assert "turnover" not in RewardRegistry(entry_points=False)
