"""Env benchmark: our single and vectorized trading envs against gym-anytrading, same data, same run.

One year of synthetic 1-minute bars (525,600), window 32, random actions generated up front:

1. single env: our ``TradingEnv`` (features from tools, account state, execution model with stops)
   against gym-anytrading's ``StocksEnv`` (a thin observation: price and its difference);
2. vectorized: our ``TradingVecEnv`` at N = 64, 256, 1024 against gym-anytrading's ``StocksEnv`` in
   gymnasium's ``SyncVectorEnv`` with 8 envs;
3. ``reset()`` of our vector env after construction;
4. SB3 PPO (``MlpPolicy`` 64×64) training fps on our vector env (through ``SB3VecEnv``) against
   gym-anytrading in SB3's ``DummyVecEnv``, each at its own n_envs.

Goals: single env ≥ 1.0× gym-anytrading; vectorized ≥ 2,000,000 env-steps/s at the best N; reset ≤ 5 ms.
Prints the table and writes ``bench/results/bench_env.json``; exit status 0 even when a goal is missed.

Usage: ``.venv/bin/python bench/bench_env.py`` (``make bench``).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from bench_report import RESULTS_DIR, Row, progress_steps, report, timed

BARS = 525_600
WINDOW = 32
SINGLE_STEPS = 20_000
VEC_STEPS = 200
SIZES = (64, 256, 1024)
PEER_ENVS = 8
REPEATS = 3
RESULTS = RESULTS_DIR / "bench_env.json"
PPO_STEPS = 8192
PPO_ENVS = {"ours": 64, "peer": 8}
CONFIG: dict[str, Any] = {
    "dataset": {"symbol": "BENCH"},
    "window": WINDOW,
    # stop and take-profit levels in ATR units, so the execution model's stops are exercised
    "actions": {"kind": "multi_discrete", "levels": [0.0, 0.5, 1.0]},
    "episode": {"mode": "random", "length": 10_080},
}


def play_single(env: Any, actions: list[Any]) -> None:
    """Step a single env (ours or gym-anytrading's) through ``actions``, resetting at episode ends."""
    env.reset(seed=0)
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()


def play_vec(env: Any, actions: np.ndarray) -> None:
    """Step a vector env (ours or ``SyncVectorEnv``; both autoreset) through ``actions`` of shape (steps, N, ...)."""
    env.reset(seed=0)
    for batch in actions:
        env.step(batch)


def ppo_fps(venv: Any) -> float:
    """Environment steps per second of a short SB3 PPO run (MlpPolicy 64×64) on ``venv``."""
    from stable_baselines3 import PPO

    model = PPO("MlpPolicy", venv, n_steps=128, batch_size=256, n_epochs=2, seed=0, device="cpu")
    started = time.perf_counter()
    model.learn(PPO_STEPS)
    return PPO_STEPS / (time.perf_counter() - started)


def run() -> list[Row]:
    """Run every measurement with a progress display; return the report rows."""
    import gymnasium as gym
    from gym_anytrading.envs import StocksEnv

    from tradelab.data.ingest.synth import generate_bars
    from tradelab.env.config import EnvConfig
    from tradelab.env.market import MarketData
    from tradelab.env.trading_env import TradingEnv
    from tradelab.env.vec_env import TradingVecEnv

    rng = np.random.default_rng(0)
    with progress_steps() as step:
        advance = step(f"generate {BARS:,} bars, build market data", 1)
        frame = generate_bars(BARS / 1440, seed=0, gaps=False)
        config = EnvConfig.model_validate(CONFIG)
        market = MarketData.from_frame(frame, config)
        df = frame.to_pandas().rename(columns=str.capitalize)
        advance()

        def per_second(work: Callable[[], None], steps: int, label: str) -> tuple[float, list[float]]:
            seconds, _ = timed(work, REPEATS, step(label, REPEATS))
            return steps / statistics.median(seconds), seconds

        single = TradingEnv(config, market=market)
        # Both sides get a list of their action space's own elements (iterating a stacked array would add
        # a view per step to ours).
        ours_actions = [single.action_space.sample() for _ in range(SINGLE_STEPS)]
        ours_sps, ours_s = per_second(lambda: play_single(single, ours_actions), SINGLE_STEPS, "ours, single env")
        peer = StocksEnv(df=df, window_size=WINDOW, frame_bound=(WINDOW, len(df)))
        peer_actions = rng.integers(0, 2, SINGLE_STEPS).tolist()
        peer_sps, peer_s = per_second(lambda: play_single(peer, peer_actions), SINGLE_STEPS, "gym-anytrading, single")

        vec_rows: list[tuple[int, float, list[float]]] = []
        resets: list[float] = []
        for n in SIZES:
            vec = TradingVecEnv(config, n, market=market)
            started = time.perf_counter()
            vec.reset(seed=0)
            resets.append(time.perf_counter() - started)
            batches = np.stack([vec.action_space.sample() for _ in range(VEC_STEPS)])
            sps, seconds = per_second(lambda v=vec, b=batches: play_vec(v, b), VEC_STEPS * n, f"ours, vector env N={n}")
            vec_rows.append((n, sps, seconds))
        sync = gym.vector.SyncVectorEnv(
            [lambda: StocksEnv(df=df, window_size=WINDOW, frame_bound=(WINDOW, len(df)))] * PEER_ENVS
        )
        sync_actions = rng.integers(0, 2, (VEC_STEPS * 4, PEER_ENVS))
        sync_sps, sync_s = per_second(
            lambda: play_vec(sync, sync_actions), VEC_STEPS * 4 * PEER_ENVS, "gym-anytrading, SyncVectorEnv×8"
        )

        advance = step("SB3 PPO training, ours then gym-anytrading", 2)
        from stable_baselines3.common.vec_env import DummyVecEnv

        from tradelab.experiments.sb3_vec_env import SB3VecEnv

        ours_ppo = ppo_fps(SB3VecEnv(TradingVecEnv(config, PPO_ENVS["ours"], market=market)))
        advance()
        peer_ppo = ppo_fps(
            DummyVecEnv(
                [lambda: StocksEnv(df=df, window_size=WINDOW, frame_bound=(WINDOW, len(df)))] * PPO_ENVS["peer"]
            )
        )
        advance()

    best_n = max(vec_rows, key=lambda row: row[1])[0]
    rows = [
        Row(
            "single env, steps/s (ours: tools, account, stops)",
            "k/s",
            ours_sps / 1000,
            "≥ 1.0× gym-anytrading",
            ours_sps >= peer_sps,
            peer=peer_sps / 1000,
            samples_ours=ours_s,
            samples_peer=peer_s,
        ),
        *(
            Row(
                f"vector env N={n}, env-steps/s (peer: SyncVectorEnv×{PEER_ENVS})",
                "k/s",
                sps / 1000,
                "≥ 2,000k at the best N" if n == best_n else "reference",
                sps >= 2_000_000 if n == best_n else None,
                peer=sync_sps / 1000,
                samples_ours=seconds,
                samples_peer=sync_s,
            )
            for n, sps, seconds in vec_rows
        ),
        Row("vector env reset() after construction", "ms", max(resets) * 1000, "≤ 5 ms", max(resets) <= 0.005),
        Row(
            f"SB3 PPO fps (ours N={PPO_ENVS['ours']}, peer DummyVecEnv×{PPO_ENVS['peer']})",
            "k/s",
            ours_ppo / 1000,
            "reference (the runner issue sets the training goal)",
            None,
            peer=peer_ppo / 1000,
        ),
    ]
    return rows


def main() -> None:
    """Run the benchmark and report."""
    from importlib.metadata import version

    rows = run()
    title = f"tradelab env benchmark: {BARS:,} 1-minute bars, window {WINDOW}, random actions, medians"
    versions = {name: version(name) for name in ("gymnasium", "gym-anytrading", "numpy")}
    extra = {"bars": BARS, "window": WINDOW, "config": CONFIG, "repeats": REPEATS, "versions": versions}
    report(title, "gym-anytrading", rows, RESULTS, extra)


if __name__ == "__main__":
    main()
