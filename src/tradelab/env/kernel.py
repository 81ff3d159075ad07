"""The compiled step: every env of a batch advanced one bar by one numba function (ADR 0005).

:func:`step_batch` decodes each env's action, executes it (:func:`~tradelab.env.execution.execute_account`),
records its fills, computes the built-in reward components, checks the episode's end and writes the next
observation (:func:`~tradelab.env.observation.write_observation`). The single env calls it with N = 1,
the vector env with N envs: one code path, so the two agree step for step.

Everything it reads and writes is a float64 array with named columns (the constants below):

- the **state**, ``(N, PARTS + components)``: the account (``CASH … BANKRUPT``, see
  :mod:`tradelab.env.execution`), then the episode (``BAR … TS``), then one column per reward component;
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
    execute_account,
)
from tradelab.env.jit import inline, jit
from tradelab.env.observation import write_observation
from tradelab.env.rewards import BuiltinComponent, RewardComponent, builtin_value

# Episode columns of the state, after the account's.
(
    START,  # the episode's first decision bar
    END,  # its last decision bar
    STEPS,  # steps taken this episode
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
) = range(BANKRUPT + 1, BANKRUPT + 15)
ACTION_WIDTH = 3
#: The step's events, EVENTS_SIZE columns: a (5, 5) matrix (see StepEvents) in row-major order.
EVENTS = ACTION + ACTION_WIDTH
EVENTS_SIZE = (N_SLOTS + 1) * 5
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
) = range(EVENTS + EVENTS_SIZE, EVENTS + EVENTS_SIZE + 11)
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
    E_ACTIONS,  # where the action table starts
    E_REWARD,  # where the reward components start
    E_COMPONENTS,  # how many
) = range(N_EXECUTION_PARAMS, N_EXECUTION_PARAMS + 9)
#: Bars in position are divided by this in observations (a day of 1-minute bars).
HOLDING_SCALE = 1440.0
#: Kernel id of a reward component that is not built in (computed in Python after the step).
PYTHON_COMPONENT = -1

# step_batch's status bits.
EPISODE_ENDED = 1
LOG_FULL = 2


def kernel_params(config: EnvConfig, components: list[RewardComponent], weights: list[float]) -> np.ndarray:
    """The params vector of an env (see the module docstring), read-only."""
    actions = config.actions.kernel_params
    env = np.zeros(E_COMPONENTS + 1 - N_EXECUTION_PARAMS)
    env[E_INITIAL_CASH - N_EXECUTION_PARAMS] = config.initial_cash
    env[E_MAX_DRAWDOWN - N_EXECUTION_PARAMS] = np.nan if config.risk.max_drawdown is None else config.risk.max_drawdown
    env[E_CLIP - N_EXECUTION_PARAMS] = np.nan if config.clip is None else config.clip
    env[E_HOLDING_SCALE - N_EXECUTION_PARAMS] = HOLDING_SCALE
    env[E_WINDOW - N_EXECUTION_PARAMS] = config.window
    env[E_TRADE_LOG - N_EXECUTION_PARAMS] = config.episode.trade_log
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
    """Advance every env one bar (see the module docstring); every array but ``actions`` and ``market`` is updated.

    :param market: :attr:`MarketData.matrix`.
    :param features: the float32 feature matrix ``(bars, F)``.
    :param state: the state ``(N, columns)``, the actions in its ``ACTION`` columns.
    :param log: the fill log ``(N, capacity, 6)``; the caller grows it when ``LOG_FULL`` is set.
    :param params: the params vector (:func:`kernel_params`).
    :param obs: the observations ``(N, size)`` float32.
    :return: ``-1 - i`` when env ``i``'s action is invalid, ``-1 - N - i`` when env ``i``'s episode has ended
        (or never started: the core marks new envs truncated) and it needs a reset; nothing is changed then.
        Else the bits
        ``EPISODE_ENDED`` (some env's episode ended) and ``LOG_FULL`` (a log row may overflow next step).
    """
    action_params = params[int(params[E_ACTIONS]) : int(params[E_REWARD])]
    n = state.shape[0]
    for i in range(n):  # check and decode all first, so an error changes nothing
        s = state[i]
        if s[TERMINATED] != 0.0 or s[TRUNCATED] != 0.0:
            return -1 - n - i
        action = s[ACTION : ACTION + ACTION_WIDTH]
        target, stop, take, valid = decode_action(action, market[int(s[BAR]), M_ATR], action_params)
        if not valid:
            return -1 - i
        s[ORDER_TARGET], s[ORDER_STOP], s[ORDER_TAKE] = target, stop, take
    execution = params[:N_EXECUTION_PARAMS]
    status = 0
    for i in range(state.shape[0]):
        s = state[i]
        ev = s[EVENTS : EVENTS + EVENTS_SIZE].reshape((N_SLOTS + 1, 5))
        bar = int(s[BAR])
        m = market[bar + int(execution[P_NEXT_OPEN])]  # the execution bar
        s[EQUITY_PREV] = s[EQUITY]
        execute_account(
            s, ev, execution, s[ORDER_TARGET], s[ORDER_STOP], s[ORDER_TAKE], m[M_OPEN], m[M_HIGH], m[M_LOW],
            m[M_CLOSE], market[bar, M_VOL],
        )  # fmt: skip
        s[MARK] = m[M_CLOSE]
        if params[E_TRADE_LOG] and _log_fills(log[i], s, ev, m[M_TS]):
            status |= LOG_FULL
        reward = _reward(s, ev, params)
        s[REWARD] = reward
        s[EPISODE_REWARD] += reward
        s[BAR] = bar + 1
        s[STEPS] += 1
        drawdown = 1.0 - s[EQUITY] / s[PEAK]
        s[MAX_DRAWDOWN] = max(s[MAX_DRAWDOWN], drawdown)
        terminated = s[BANKRUPT] != 0.0 or drawdown > params[E_MAX_DRAWDOWN]  # NaN limit: never
        truncated = bar + 1 > s[END] and not terminated
        s[TERMINATED], s[TRUNCATED] = terminated, truncated
        if terminated or truncated:
            status |= EPISODE_ENDED
        observe_env(obs[i], s, market, features, params)
    return status


@inline
def _log_fills(log: np.ndarray, s: np.ndarray, ev: np.ndarray, ts: float) -> bool:
    """Append the step's fills to one env's log, in slot order; True when the next step might overflow it."""
    count = int(s[FILLS])
    for slot in range(N_SLOTS):
        if ev[slot, FILL_REASON] != 0:
            log[count, L_TS] = ts
            log[count, L_UNITS : L_REASON + 1] = ev[slot, : FILL_REASON + 1]
            count += 1
    s[FILLS] = count
    return count + N_SLOTS > log.shape[0]


@inline
def _reward(s: np.ndarray, ev: np.ndarray, params: np.ndarray) -> float:
    """The weighted sum of the built-in components, each stored in its state column."""
    at, total = int(params[E_REWARD]), 0.0
    for j in range(int(params[E_COMPONENTS])):
        kind, weight, param = params[at + 3 * j], params[at + 3 * j + 1], params[at + 3 * j + 2]
        if kind == PYTHON_COMPONENT:
            continue
        value = builtin_value(
            int(kind), param, s[EQUITY_PREV], s[EQUITY], s[PEAK], ev[TOTALS, TOTAL_FEES], s[UNITS], s[MARK],
            params[E_INITIAL_CASH], s[DSR_A : DSR_B + 1],
        )  # fmt: skip
        s[PARTS + j] = value
        total += weight * value
    return total


@inline
def observe_env(out: np.ndarray, s: np.ndarray, market: np.ndarray, features: np.ndarray, params: np.ndarray) -> None:
    """Write one env's observation at its decision bar, and its outputs (``OUT_*``, position, drawdown, time)."""
    equity, mark, units = s[EQUITY], s[MARK], s[UNITS]
    floored = max(equity, 1e-12)  # a bankrupt account (equity 0) shows a zero position
    position = units * mark / floored
    unrealized = units * (mark - s[ENTRY])
    if unrealized != unrealized:  # NaN entry: flat
        unrealized = 0.0
    drawdown = 1.0 - equity / s[PEAK]
    bar = int(s[BAR])
    s[POSITION], s[DRAWDOWN], s[TS] = position, drawdown, market[bar, M_TS]
    s[OUT_EQUITY], s[OUT_UNITS], s[OUT_FEES], s[OUT_FILLS] = equity, units, s[FEES_PAID], s[TRADES]
    write_observation(
        out, features, bar, int(params[E_WINDOW]), position, unrealized / floored,
        equity / params[E_INITIAL_CASH] - 1.0, drawdown, s[BARS_IN_POSITION] / params[E_HOLDING_SCALE],
        params[E_CLIP],
    )  # fmt: skip


@jit
def observe_batch(
    mask: np.ndarray, market: np.ndarray, features: np.ndarray, state: np.ndarray, params: np.ndarray, obs: np.ndarray
) -> None:
    """:func:`observe_env` for every env where ``mask`` is True."""
    for i in range(state.shape[0]):
        if mask[i]:
            observe_env(obs[i], state[i], market, features, params)
