"""TradingEnv: gymnasium conformance, determinism, no look-ahead, buy-and-hold, episodes, trade log."""

from __future__ import annotations

import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from tests.env.envs import FEATURES, config, frame, market
from tradelab.env.config import EnvConfig
from tradelab.env.kernel import ACTION, ACTION_WIDTH
from tradelab.env.market import MarketData
from tradelab.env.trading_env import TradingEnv

SCHEMES = {
    "discrete": {"kind": "discrete", "levels": [0, 1]},
    "multi_discrete": {"kind": "multi_discrete", "levels": [-1, 0, 1]},
    "box": {"kind": "box", "low": -1, "high": 1},
}


def make(cfg: EnvConfig | None = None, **kwargs) -> TradingEnv:
    return TradingEnv(cfg or config(), market=market(), **kwargs)


def run(env: TradingEnv, actions: list, seed: int = 0) -> list:
    """Observations, rewards, flags and infos of ``actions`` from a reset with ``seed``."""
    out = [env.reset(seed=seed)]
    out += [env.step(a) for a in actions]
    return out


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("observation", ["box", "dict"])
def test_check_env_passes(scheme: str, observation: str) -> None:
    cfg = config(actions=SCHEMES[scheme], execution={"allow_short": True}, observation=observation)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(infinity|render fps|spec).*")  # unbounded features, ansi
        check_env(make(cfg), skip_render_check=False)


@pytest.mark.filterwarnings("ignore:.*render fps")
def test_gymnasium_make() -> None:
    env = gym.make("tradelab/Trading-v0", config=config(), market=market(), render_mode="ansi")
    observation, info = env.reset(seed=3)
    assert env.observation_space.contains(observation) and info["equity"] == 10_000.0
    env.step(1)
    assert "position=+1.000" in env.render()


def test_same_seed_same_episode_and_other_seeds_differ() -> None:
    actions = list(np.random.default_rng(0).integers(0, 2, 60))
    first, second = run(make(), actions, seed=5), run(make(), actions, seed=5)
    for a, b in zip(first, second, strict=True):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_equal(x, y)
    starts = {run(make(), [], seed=s)[0][1]["bar"] for s in range(5)}
    assert len(starts) > 1


def _perturbed_after(t: int) -> MarketData:
    """:func:`market` with every bar after ``t`` moved (prices × 1.05, volume × 3)."""
    later = np.arange(frame().height) > t
    scaled = frame().with_columns(
        *[(frame()[c] * np.where(later, 1.05, 1.0)).alias(c) for c in ("open", "high", "low", "close")],
        (frame()["volume"] * np.where(later, 3.0, 1.0)).alias("volume"),
    )
    return MarketData.from_frame(scaled, config())


def test_no_look_ahead_in_observations_and_fills_on_the_next_open() -> None:
    cfg = config(episode={"mode": "full"})
    env = TradingEnv(cfg, market=market())
    env.reset()
    for _ in range(50):
        observation, *_ = env.step(0)
    t = env.core.bar[0]
    moved = TradingEnv(cfg, market=_perturbed_after(int(t)))
    moved.reset()
    for _ in range(50):
        moved_observation, *_ = moved.step(0)
    np.testing.assert_array_equal(observation, moved_observation)
    # The buy decided at t fills at bar t + 1's open (plus slippage): the perturbed open shows in the fill.
    slip = 1 + cfg.execution.slippage_bps * 1e-4
    entries = []
    for e, m in ((env, market()), (moved, moved.core.market)):
        e.step(1)
        e.step(0)  # closes the trade
        entries.append(e.core.fills.trades(0, mark=float(m.close[t + 2]))[-1]["entry_price"])
        assert entries[-1] == pytest.approx(m.open[t + 1] * slip, rel=1e-12)
    assert entries[1] == pytest.approx(1.05 * entries[0], rel=1e-12)


def test_buy_and_hold_matches_the_formula() -> None:
    cfg = config(episode={"mode": "full"})
    env = make(cfg)
    _, info = env.reset()
    first = info["bar"]
    total, done = 0.0, False
    while not done:
        _, reward, terminated, truncated, info = env.step(1)
        total += reward
        done = terminated or truncated
    assert truncated and not terminated
    m, ex = market(), cfg.execution
    fill = m.open[first + 1] * (1 + ex.slippage_bps * 1e-4)
    expected = m.close[-1] / (fill * (1 + ex.taker_fee_bps * 1e-4))  # equity / initial cash
    summary = info["episode_summary"]
    assert summary["final_equity"] / cfg.initial_cash == pytest.approx(expected, rel=1e-12)
    assert total == pytest.approx(math.log(expected), rel=1e-9)
    assert summary["steps"] == len(m.close) - 1 - first and summary["trades"] == 1
    (trade,) = info["trades"]
    assert trade["reason"] == "open" and trade["exit_time"] is None and trade["entry_price"] == pytest.approx(fill)


def _held_reference(m: MarketData, first: int, levels: np.ndarray, cfg: EnvConfig) -> tuple[np.ndarray, int]:
    """The equity at each step's close when ``levels[j]``, decided at bar ``first + j``, is held (numpy).

    At a level change the order fills at the next open ``p`` with side ``σ = sign(level × E - units × p)``,
    at ``fill = p × (1 + σ s)``, sized as execution.py documents: with ``y = units × fill``, the new notional
    is ``x = level × (cash + y + σ r y) / (1 + σ r level)``, the fee ``r × |x - y|``. Between changes the units
    and the cash are constant, so the equity curve is ``cash + units × close`` over the held stretches.
    :return: the curve and the number of changes (fills).
    """
    r, s = cfg.execution.taker_fee_bps * 1e-4, cfg.execution.slippage_bps * 1e-4
    execution_bar = first + 1 + np.arange(len(levels))
    changes = np.flatnonzero(np.diff(levels, prepend=0.0))  # the account starts flat
    units, cash = np.zeros(len(changes)), np.zeros(len(changes))
    u, c = 0.0, cfg.initial_cash
    for k, j in enumerate(changes):
        level, p = levels[j], m.open[execution_bar[j]]
        side = np.sign(level * (c + u * p) - u * p)
        fill = p * (1 + side * s)
        y = u * fill
        x = level * (c + y + side * r * y) / (1 + side * r * level)
        c -= x - y + r * abs(x - y)
        u = x / fill
        units[k], cash[k] = u, c
    held = np.searchsorted(changes, np.arange(len(levels)), side="right") - 1  # the last change at or before j
    held_units = np.where(held >= 0, units[held], 0.0)
    held_cash = np.where(held >= 0, cash[held], cfg.initial_cash)
    return held_cash + held_units * m.close[execution_bar], len(changes)


@pytest.mark.parametrize("levels", [[0.0, 1.0], [-1.0, 0.0, 1.0], [-0.5, 0.0, 0.5, 2.0]])
def test_held_levels_match_a_vectorised_reference(levels: list[float]) -> None:
    # A signal that keeps each level for a random stretch (sometimes drawing the same level again, which
    # must not trade): the env's equity curve equals the reference's, one fill per level change.
    execution = {"allow_short": True, "max_leverage": 2.0, "slippage_bps": 5.0}
    cfg = config(actions={"kind": "discrete", "levels": levels}, execution=execution, episode={"mode": "full"})
    env = make(cfg)
    _, info = env.reset()
    first, steps = info["bar"], env.core.last_bar - info["bar"] + 1
    rng = np.random.default_rng(len(levels))
    stretches = rng.geometric(1 / 40, steps)
    actions = np.repeat(rng.integers(0, len(levels), steps), stretches)[:steps]
    equity = []
    for action in actions:
        *_, info = env.step(int(action))
        equity.append(info["equity"])
    expected, changes = _held_reference(market(), first, np.asarray(levels)[actions], cfg)
    assert changes > 20 and info["fills"] == changes
    np.testing.assert_allclose(equity, expected, rtol=1e-9, atol=0)


def test_trade_log_accounts_for_the_equity() -> None:
    actions = {**SCHEMES["multi_discrete"], "unit": "percent", "stop_levels": [0.05, 0.1], "take_levels": [0.05, 0.1]}
    cfg = config(actions=actions, execution={"allow_short": True}, episode={"length": 300})
    env = make(cfg)
    env.reset(seed=1)
    env.action_space.seed(1)
    done, step = False, 0
    while not done:
        if step % 10 == 0:  # hold each choice a while, so stops and targets get hit
            action = env.action_space.sample()
        *_, terminated, truncated, info = env.step(action)
        done, step = terminated or truncated, step + 1
    summary, trades = info["episode_summary"], info["trades"]
    assert {t["reason"] for t in trades} >= {"signal", "stop", "target"}
    assert set(trades[0]) == {
        "side", "entry_time", "entry_price", "exit_time", "exit_price", "size", "fees", "pnl", "net_pnl", "reason"
    }  # fmt: skip
    assert sum(t["net_pnl"] for t in trades) == pytest.approx(summary["final_equity"] - cfg.initial_cash, abs=1e-6)
    assert sum(t["fees"] for t in trades) == pytest.approx(summary["fees"], rel=1e-12)
    assert summary["fills"] == info["fills"] and summary["steps"] == 300


def test_truncated_after_length_steps() -> None:
    env = make(config(episode={"length": 20}))
    env.reset(seed=0)
    flags = [env.step(0)[2:4] for _ in range(20)]
    assert flags[:-1] == [(False, False)] * 19 and flags[-1] == (False, True)


def test_max_drawdown_terminates() -> None:
    env = make(config(risk={"max_drawdown": 0.002}, episode={"mode": "full"}))
    env.reset()
    for _ in range(frame().height):
        *_, terminated, truncated, info = env.step(1)
        if terminated or truncated:
            break
    assert terminated and not truncated
    assert info["drawdown"] > 0.002 and info["episode_summary"]["terminated"]


def test_action_masks() -> None:
    np.testing.assert_array_equal(make().action_masks(), [True, True])
    with pytest.raises(TypeError):
        make(config(actions=SCHEMES["box"], execution={"allow_short": True})).action_masks()


def test_clip_bounds_every_value_and_the_space() -> None:
    raw_prices = [*FEATURES, {"tool": "vwap_day"}]  # a price-level feature, about 30,000
    cfg = config(features=raw_prices, clip=5.0)
    env = TradingEnv(cfg, market=MarketData.from_frame(frame(), cfg))
    observation, _ = env.reset(seed=1)
    assert env.observation_space.high.max() == 5.0 and env.observation_space.low.min() == -5.0
    assert observation.max() == 5.0 and observation.min() >= -5.0 and env.observation_space.contains(observation)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning about unbounded Box spaces any more
        check_env(env, skip_render_check=True)


def test_stepping_before_reset_or_after_the_end_is_refused() -> None:
    env = make(config(episode={"length": 3}))
    with pytest.raises(RuntimeError, match="reset it first"):
        env.step(0)
    env.reset(seed=0)
    for _ in range(3):
        *_, truncated, _ = env.step(1)
    assert truncated
    before = env.core.state.copy()
    with pytest.raises(RuntimeError, match="episode has ended"):
        env.step(1)
    np.testing.assert_array_equal(env.core.state, before)  # nothing moved past the episode's last bar


@pytest.mark.parametrize(
    ("scheme", "action", "error"),
    [("discrete", 2, IndexError), ("multi_discrete", np.array([0, 3, 0]), IndexError), ("box", [np.nan], ValueError)],
)
def test_an_invalid_action_raises_and_changes_nothing(scheme: str, action: object, error: type[Exception]) -> None:
    env = make(config(actions=SCHEMES[scheme], execution={"allow_short": True}))
    env.reset(seed=0)
    before = env.core.state.copy()
    with pytest.raises(error, match="env 0"):
        env.step(action)
    changed = np.flatnonzero((env.core.state != before) & ~(np.isnan(env.core.state) & np.isnan(before)))
    assert set(changed.tolist()) <= set(range(ACTION, ACTION + ACTION_WIDTH))  # only the rejected action was written


def test_the_fill_log_grows_and_the_trade_log_can_be_switched_off() -> None:
    random = {**SCHEMES["multi_discrete"], "unit": "percent"}
    results = {}
    for logged in (True, False):
        env = make(
            config(actions=random, execution={"allow_short": True}, episode={"mode": "full", "trade_log": logged})
        )
        env.reset()
        env.action_space.seed(3)
        done = False
        while not done:
            *_, terminated, truncated, info = env.step(env.action_space.sample())
            done = terminated or truncated
        results[logged] = info
    logged, unlogged = results[True], results[False]
    # Random actions change the level at about 2 bars in 3: far more fills than the log's first capacity (256).
    assert logged["fills"] > 1000 and len(logged["trades"]) > 100
    assert sum(t["fees"] for t in logged["trades"]) == pytest.approx(logged["episode_summary"]["fees"], rel=1e-12)
    # Without the log the episode is the same, only the trades are missing.
    assert unlogged["equity"] == logged["equity"] and unlogged["fills"] == logged["fills"]
    assert unlogged["trades"] == [] and unlogged["episode_summary"]["trades"] is None


def test_single_env_info_is_the_batched_infos_row() -> None:
    env = make(config(reward=[{"component": "log_return"}, {"component": "holding", "weight": 0.1}]))
    env.reset(seed=0)
    for action in (1, 1, 0):
        *_, info = env.step(action)
    batched = env.core.infos()
    assert info == {
        key: {name: part[0] for name, part in value.items()} if isinstance(value, dict) else value[0].item()
        for key, value in batched.items()
    }
    assert np.shares_memory(env.core.events.events, env.core.state)  # the step's events live in the state row
