"""The compiled step: every env of a batch advanced one bar by one numba function (ADR 0005).

:func:`step_batch` decodes each env's action, executes it (:func:`~tradelab.env.execution.execute_account`),
records its fills, computes the built-in reward components, checks the episode's end and writes the next
observation (:func:`~tradelab.env.observation.write_observation`). The single env calls it with N = 1,
the vector env with N envs: one code path, so the two agree step for step.

Everything it reads and writes is a float64 array with named columns (the constants below):

- the **state**, ``(N, PARTS + components)``: the account and its step's events (``CASH … LEVEL``,
  ``event(row, column)``, see :mod:`tradelab.env.execution`), then the episode (``START … ACTION``), the
  outputs (``REWARD … TS``) and one column per reward component;
- the **market**, ``(bars, 7)``: columns ``M_*`` (:attr:`MarketData.matrix`);
- the **fill log**, ``(N, capacity, 6)``: the episode's fills, columns ``L_*``;
- the **params**, a vector: the execution settings (``P_*``), the env settings (``E_*``), the action
  scheme's table at ``params[E_ACTIONS]`` and the reward components at ``params[E_REWARD]`` as
  ``(kernel id, weight, parameter)`` triples, kernel id -1 for a Python component the env adds after.
"""

from __future__ import annotations

import numpy as np

from tradelab.env.actions import decode_action
from tradelab.env.config import EnvConfig
from tradelab.env.execution import (
    ACCOUNT_COLUMNS,
    BANKRUPT,
    BARS_IN_POSITION,
    ENTRY,
    EQUITY,
    FEES_PAID,
    FILL_REASON,
    N_EXECUTION_PARAMS,
    N_SLOTS,
    P_NEXT_OPEN,
    PEAK,
    TOTAL_FEES,
    TOTALS,
    TRADES,
    UNITS,
    event,
    execute_account,
)
from tradelab.env.jit import inline, jit
from tradelab.env.observation import write_observation
from tradelab.env.rewards import BuiltinComponent, RewardComponent, builtin_value

# Episode columns of the state, after the account's (and its events).
(
    START,  # the episode's first decision bar
    END,  # its last decision bar
    STEPS,  # bars stepped this episode
    EPISODE_REWARD,
    MAX_DRAWDOWN,  # deepest drawdown this episode
    MARK,  # the price the account was last marked at (the last execution bar's close)
    EQUITY_PREV,  # equity before the last step
    FILLS,  # fills in the log this episode
    DSR_A,  # the differential Sharpe ratio's running moments
    DSR_B,
    ORDER_TARGET,  # the last decoded action: target fraction, stop and take distance
    ORDER_STOP,
    ORDER_TAKE,
    ACTION,  # the action of the next step, ACTION_WIDTH columns (the scheme's width, padded)
) = range(ACCOUNT_COLUMNS, ACCOUNT_COLUMNS + 14)
ACTION_WIDTH = 3
# The outputs of a step, one contiguous block from OUTPUT to the row's end (the reward parts last), so
# that one ``tolist()`` reads them; observe_env refreshes the copies of account values at every step and reset.
(
    REWARD,  # the last step's reward
    TERMINATED,
    TRUNCATED,
    OUT_EQUITY,  # copy of EQUITY
    POSITION,  # position value / equity at the decision bar
    OUT_UNITS,  # copy of UNITS
    OUT_FEES,  # copy of FEES_PAID
    OUT_FILLS,  # copy of TRADES
    DRAWDOWN,  # 1 - equity / peak equity
    BAR,  # the decision bar
    TS,  # its open time, epoch ms
) = range(ACTION + ACTION_WIDTH, ACTION + ACTION_WIDTH + 11)
OUTPUT = REWARD
#: First reward-component column of the state (one per component, to the row's end).
PARTS = TS + 1

# Columns of the market matrix.
M_OPEN, M_HIGH, M_LOW, M_CLOSE, M_VOL, M_ATR, M_TS = range(7)
# Columns of the fill log.
L_TS, L_UNITS, L_PRICE, L_FEE, L_PNL, L_REASON = range(6)
# Env settings, after the execution settings.
(
    E_INITIAL_CASH,
    E_MAX_DRAWDOWN,  # NaN: none
    E_CLIP,  # NaN: none
    E_HOLDING_SCALE,
    E_WINDOW,
    E_TRADE_LOG,  # 1: log fills
    E_DECISION_EVERY,  # bars between decisions (EnvConfig.decision_every)
    E_BAR_BY_BAR,  # 1: a step is one bar even when E_DECISION_EVERY > 1 (actions read at decision bars only)
    E_ACTIONS,  # where the action table starts
    E_REWARD,  # where the reward components start
    E_COMPONENTS,  # how many
) = range(N_EXECUTION_PARAMS, N_EXECUTION_PARAMS + 11)
#: Bars in position are divided by this in observations (a day of 1-minute bars).
HOLDING_SCALE = 1440.0
#: Kernel id of a reward component that is not built in (computed in Python after the step).
PYTHON_COMPONENT = -1

# step_batch's status bits.
EPISODE_ENDED = 1
LOG_FULL = 2


def kernel_params(
    config: EnvConfig, components: list[RewardComponent], weights: list[float], bar_by_bar: bool = False
) -> np.ndarray:
    """The params vector of an env (see the module docstring), read-only; ``bar_by_bar``: see :data:`E_BAR_BY_BAR`."""
    actions = config.actions.kernel_params
    env = np.zeros(E_COMPONENTS + 1 - N_EXECUTION_PARAMS)
    env[E_INITIAL_CASH - N_EXECUTION_PARAMS] = config.initial_cash
    env[E_MAX_DRAWDOWN - N_EXECUTION_PARAMS] = np.nan if config.risk.max_drawdown is None else config.risk.max_drawdown
    env[E_CLIP - N_EXECUTION_PARAMS] = np.nan if config.clip is None else config.clip
    env[E_HOLDING_SCALE - N_EXECUTION_PARAMS] = HOLDING_SCALE
    env[E_WINDOW - N_EXECUTION_PARAMS] = config.window
    env[E_TRADE_LOG - N_EXECUTION_PARAMS] = config.episode.trade_log
    env[E_DECISION_EVERY - N_EXECUTION_PARAMS] = config.decision_every
    env[E_BAR_BY_BAR - N_EXECUTION_PARAMS] = bar_by_bar
    env[E_ACTIONS - N_EXECUTION_PARAMS] = E_COMPONENTS + 1
    env[E_REWARD - N_EXECUTION_PARAMS] = E_COMPONENTS + 1 + len(actions)
    env[E_COMPONENTS - N_EXECUTION_PARAMS] = len(components)
    reward = [
        (c.kernel_id, w, c.kernel_param) if isinstance(c, BuiltinComponent) else (PYTHON_COMPONENT, w, 0.0)
        for c, w in zip(components, weights, strict=True)
    ]
    params = np.concatenate([config.execution.kernel_params, env, actions, np.array(reward, dtype=np.float64).ravel()])
    params.flags.writeable = False
    return params


@jit
def step_batch(
    market: np.ndarray, features: np.ndarray, state: np.ndarray, log: np.ndarray, params: np.ndarray, obs: np.ndarray
) -> int:
    """Advance every env one bar (see the module docstring); ``state``, ``log`` and ``obs`` are updated.

    The code indexes ``array[i, column]`` and makes no row views: in numba every view costs reference
    counting, which was a third of the step.

    :param market: :attr:`MarketData.matrix`.
    :param features: the float32 feature matrix ``(bars, F)``.
    :param state: the state ``(N, columns)``, the actions in its ``ACTION`` columns.
    :param log: the fill log ``(N, capacity, 6)``; the caller grows it when ``LOG_FULL`` is set.
    :param params: the params vector (:func:`kernel_params`).
    :param obs: the observations ``(N, size)`` float32.
    :return: ``-1 - i`` when env ``i``'s action is invalid, ``-1 - N - i`` when env ``i``'s episode has ended
        (or never started: the core marks new envs truncated) and it needs a reset; nothing is changed then.
        Else the bits ``EPISODE_ENDED`` (some env's episode ended) and ``LOG_FULL`` (a log row may overflow
        next step).
    """
    s = state
    action_params = params[int(params[E_ACTIONS]) : int(params[E_REWARD])]
    every, bar_by_bar = int(params[E_DECISION_EVERY]), params[E_BAR_BY_BAR] != 0.0
    bars_per_step = 1 if bar_by_bar else every
    n = s.shape[0]
    for i in range(n):  # check and decode all first, so an error changes nothing
        if s[i, TERMINATED] != 0.0 or s[i, TRUNCATED] != 0.0:
            return -1 - n - i
        if bar_by_bar and int(s[i, STEPS]) % every != 0:
            continue  # between decisions: the order decided last is held, this action is not read
        target, stop, take, valid = decode_action(s, i, ACTION, market[int(s[i, BAR]), M_ATR], action_params)
        if not valid:
            return -1 - i
        s[i, ORDER_TARGET], s[i, ORDER_STOP], s[i, ORDER_TAKE] = target, stop, take
    execution = params[:N_EXECUTION_PARAMS]
    status = 0
    for i in range(n):
        reward = 0.0
        for j in range(int(params[E_COMPONENTS])):
            s[i, PARTS + j] = 0.0
        for _ in range(bars_per_step):  # the decision holds for its bars; rewards add up over them
            reward += _advance_bar(s, i, market, log, params, execution)
            if s[i, TERMINATED] != 0.0 or s[i, TRUNCATED] != 0.0:
                status |= EPISODE_ENDED
                break
        if params[E_TRADE_LOG] and int(s[i, FILLS]) + bars_per_step * N_SLOTS > log.shape[1]:
            status |= LOG_FULL
        s[i, REWARD] = reward
        s[i, EPISODE_REWARD] += reward
        observe_env(obs, i, s, market, features, params)
    return status


@inline
def _advance_bar(
    s: np.ndarray, i: int, market: np.ndarray, log: np.ndarray, params: np.ndarray, execution: np.ndarray
) -> float:
    """Execute env ``i``'s order over one bar, log its fills, check the episode's end; return the bar's reward.

    With ``decision_every`` k the order is the same for the k bars: a held level keeps its units, so only a
    stop, a target or a re-entry after one can fill after the decision bar.
    """
    bar = int(s[i, BAR])
    b = bar + int(execution[P_NEXT_OPEN])  # the execution bar
    s[i, EQUITY_PREV] = s[i, EQUITY]
    execute_account(
        s, i, execution, s[i, ORDER_TARGET], s[i, ORDER_STOP], s[i, ORDER_TAKE], market[b, M_OPEN],
        market[b, M_HIGH], market[b, M_LOW], market[b, M_CLOSE], market[bar, M_VOL],
    )  # fmt: skip
    s[i, MARK] = market[b, M_CLOSE]
    if params[E_TRADE_LOG]:
        _log_fills(log, i, s, market[b, M_TS])
    reward = _reward(s, i, params)
    s[i, BAR] = bar + 1
    s[i, STEPS] += 1
    drawdown = 1.0 - s[i, EQUITY] / s[i, PEAK]
    s[i, MAX_DRAWDOWN] = max(s[i, MAX_DRAWDOWN], drawdown)
    terminated = s[i, BANKRUPT] != 0.0 or drawdown > params[E_MAX_DRAWDOWN]  # NaN limit: never
    truncated = bar + 1 > s[i, END] and not terminated
    s[i, TERMINATED], s[i, TRUNCATED] = terminated, truncated
    return reward


@inline
def _log_fills(log: np.ndarray, i: int, s: np.ndarray, ts: float) -> None:
    """Append the bar's fills to env ``i``'s log, in slot order (the caller keeps room for a step's fills)."""
    count = int(s[i, FILLS])
    for slot in range(N_SLOTS):
        if s[i, event(slot, FILL_REASON)] != 0:
            log[i, count, L_TS] = ts
            for column in range(FILL_REASON + 1):
                log[i, count, L_UNITS + column] = s[i, event(slot, column)]
            count += 1
    s[i, FILLS] = count


@inline
def _reward(s: np.ndarray, i: int, params: np.ndarray) -> float:
    """The weighted sum of the built-in components over one bar, each added to its state column."""
    at, total = int(params[E_REWARD]), 0.0
    for j in range(int(params[E_COMPONENTS])):
        kind, weight, param = params[at + 3 * j], params[at + 3 * j + 1], params[at + 3 * j + 2]
        if kind == PYTHON_COMPONENT:
            continue
        value = builtin_value(
            int(kind), param, s[i, EQUITY_PREV], s[i, EQUITY], s[i, PEAK], s[i, event(TOTALS, TOTAL_FEES)],
            s[i, UNITS], s[i, MARK], params[E_INITIAL_CASH], s, i, DSR_A,
        )  # fmt: skip
        s[i, PARTS + j] += value
        total += weight * value
    return total


@inline
def observe_env(
    obs: np.ndarray, i: int, s: np.ndarray, market: np.ndarray, features: np.ndarray, params: np.ndarray
) -> None:
    """Write env ``i``'s observation at its decision bar, and its outputs (``OUT_*``, position, drawdown, time)."""
    equity, mark, units = s[i, EQUITY], s[i, MARK], s[i, UNITS]
    floored = max(equity, 1e-12)  # a bankrupt account (equity 0) shows a zero position
    position = units * mark / floored
    unrealized = units * (mark - s[i, ENTRY])
    if unrealized != unrealized:  # NaN entry: flat
        unrealized = 0.0
    drawdown = 1.0 - equity / s[i, PEAK]
    bar = int(s[i, BAR])
    s[i, POSITION], s[i, DRAWDOWN], s[i, TS] = position, drawdown, market[bar, M_TS]
    s[i, OUT_EQUITY], s[i, OUT_UNITS], s[i, OUT_FEES], s[i, OUT_FILLS] = equity, units, s[i, FEES_PAID], s[i, TRADES]
    write_observation(
        obs, i, features, bar, int(params[E_WINDOW]), position, unrealized / floored,
        equity / params[E_INITIAL_CASH] - 1.0, drawdown, s[i, BARS_IN_POSITION] / params[E_HOLDING_SCALE],
        params[E_CLIP],
    )  # fmt: skip


@jit
def observe_batch(
    mask: np.ndarray, market: np.ndarray, features: np.ndarray, state: np.ndarray, params: np.ndarray, obs: np.ndarray
) -> None:
    """:func:`observe_env` for every env where ``mask`` is True."""
    for i in range(state.shape[0]):
        if mask[i]:
            observe_env(obs, i, state, market, features, params)
