"""A tiny experiment over synthetic bars in a temporary store, shared by the runner tests."""

from __future__ import annotations

from typing import Any

from tests.env.envs import FEATURES, frame
from tradelab.data.store import Store
from tradelab.experiments.config import ExperimentConfig, load_config


def tiny_config(**overrides: Any) -> ExperimentConfig:
    """PPO for 1,024 steps on 8 envs over two days of bars: seconds, not minutes."""
    base: dict[str, Any] = {
        "name": "tiny",
        "env": {
            "dataset": {"symbol": "SYN"},
            "features": FEATURES,
            "window": 8,
            "episode": {"length": 200},
        },
        "split": {"kind": "chronological", "train": 0.6, "val": 0.2, "test": 0.2},
        "algorithm": {"name": "PPO", "hyperparams": {"n_steps": 64, "batch_size": 256, "n_epochs": 1}},
        "n_envs": 8,
        "total_timesteps": 1024,
        "evaluation": {"every_steps": 512},
        "device": "cpu",
    }
    return load_config({**base, **overrides})


def stored(store: Store) -> Store:
    """``store`` holding the two-day synthetic frame as SYN/1m."""
    store.write("SYN", "1m", frame())
    return store
