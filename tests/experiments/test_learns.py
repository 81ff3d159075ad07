"""It learns: on bars with a planted mean-reverting pattern, a short PPO run with the large-batch settings of
``bench/bench_train.py`` beats buy-and-hold, flat and random on the test split, after fees.

Without this test a green pipeline proves nothing: every other test would pass with an agent that never
learns (a broken reward sign, observations shifted by a bar, a policy that ignores its input).
"""

from __future__ import annotations

from pathlib import Path

from tests.experiments.planted import planted_bars
from tradelab.data.store import Store
from tradelab.experiments.config import load_config
from tradelab.experiments.runner import run_experiment

#: The training settings bench/bench_train.py measures (large native batches).
LARGE_BATCH = {"n_steps": 64, "batch_size": 4096, "n_epochs": 4, "learning_rate": 1e-3, "gamma": 0.0}


def test_ppo_learns_the_planted_pattern_and_beats_every_baseline_after_fees(store: Store, tmp_path: Path) -> None:
    store.write("PLANT", "1m", planted_bars(20_000, seed=3))
    config = load_config(
        {
            "name": "planted",
            "env": {
                "dataset": {"symbol": "PLANT"},
                "features": [{"tool": "log_return", "as": "ret", "norm": "zscore", "norm_window": 240}],
                "window": 4,
                "clip": 5,
                "actions": {"kind": "discrete", "levels": [0, 1]},
                "execution": {"taker_fee_bps": 1, "slippage_bps": 1},
                "episode": {"length": 256},
            },
            "split": {"train": 0.6, "val": 0.2, "test": 0.2},
            "algorithm": {"name": "PPO", "hyperparams": LARGE_BATCH},
            "n_envs": 256,
            "total_timesteps": 100_000,
            "evaluation": {"every_steps": 50_000},
            "device": "cpu",
        }
    )
    (outcome,) = run_experiment(config, tmp_path / "runs", store=store, progress=False)
    test = outcome.results["test"]
    agent = test["agent"]
    assert agent["fees"] > 0 and agent["n_trades"] > 100  # it trades, and pays for it
    for baseline in ("buy_and_hold", "flat", "random"):
        assert agent["total_return"] > test[baseline]["total_return"] + 0.05, baseline
        assert agent["sharpe"] > test[baseline]["sharpe"], baseline
