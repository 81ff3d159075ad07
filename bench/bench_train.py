"""Training benchmark: ``tradelab run`` PPO on our native vectorized env against SB3 PPO on gym-anytrading.

Same network (MlpPolicy 64×64), 200k env-steps each, one run:

1. peer: SB3 PPO (its default hyper-parameters) on gym-anytrading's ``StocksEnv`` in ``DummyVecEnv(8)``;
2. ours: ``run_experiment`` (what ``tradelab run`` calls) with PPO on ``TradingVecEnv`` at a few large-batch
   settings (n_envs × n_steps per rollout, minibatch size); the best one counts. These are the settings
   ``tests/experiments/test_learns.py`` proves still learn;
3. evaluation of the trained agent over the test split: our numpy policy against a naive
   ``model.predict`` loop, bars per second;
4. the overhead of ``tradelab run`` outside training (data load, features, validation and test
   evaluations with the baselines, artifacts), on a year of 1-minute bars.

Goals: training ≥ 6× the peer (≥ 20,000 env-steps/s here); evaluation ≥ 10,000 bars/s; overhead ≤ 10 s.
With a CUDA GPU, the training rows are repeated with ``device=cuda``.

Usage: ``.venv/bin/python bench/bench_train.py`` (``make bench``); writes ``bench/results/bench_train.json``.
"""

from __future__ import annotations

import io
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_report import RESULTS_DIR, Row, progress_steps, report

BARS = 525_600
STEPS = 200_000
PEER_ENVS = 8
EVAL_BARS = 20_000
#: (n_envs, n_steps, batch_size) of our runs: one rollout is n_envs × n_steps env-steps.
SETTINGS = ((64, 128, 2048), (128, 128, 4096), (256, 64, 4096))
RESULTS = RESULTS_DIR / "bench_train.json"
ENV: dict[str, Any] = {
    "dataset": {"symbol": "BENCH"},
    "window": 32,
    "features": [
        {"tool": "log_return", "as": "ret", "norm": "zscore", "norm_window": 240},
        {"tool": "realized_vol", "params": {"window": 60}, "norm": "zscore", "norm_window": 240},
        {"tool": "zscore", "params": {"window": 120}},
    ],
    "clip": 10,
    "actions": {"kind": "discrete", "levels": [0, 1]},
    "episode": {"length": 2880},
}


def experiment(n_envs: int, n_steps: int, batch: int, device: str) -> dict[str, Any]:
    """An experiment config (as a mapping) training PPO 64×64 for :data:`STEPS` steps."""
    hyperparams = {"n_steps": n_steps, "batch_size": batch, "n_epochs": 4, "learning_rate": 1e-3}
    return {
        "name": f"bench-{n_envs}x{n_steps}",
        "env": ENV,
        "algorithm": {"name": "PPO", "hyperparams": hyperparams, "policy_kwargs": {"net_arch": [64, 64]}},
        "n_envs": n_envs,
        "total_timesteps": STEPS,
        "evaluation": {"every_steps": STEPS // 2},
        "device": device,
    }


def peer_fps(frame: Any) -> float:
    """Env-steps per second of SB3 PPO (defaults, MlpPolicy 64×64) on gym-anytrading in DummyVecEnv(8)."""
    from gym_anytrading.envs import StocksEnv
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    df = frame.to_pandas().rename(columns=str.capitalize)
    venv = DummyVecEnv([lambda: StocksEnv(df=df, window_size=32, frame_bound=(32, len(df)))] * PEER_ENVS)
    model = PPO("MlpPolicy", venv, seed=0, device="cpu", policy_kwargs={"net_arch": [64, 64]})
    started = time.perf_counter()
    model.learn(STEPS)
    return STEPS / (time.perf_counter() - started)


def evaluation_speeds(url: str, store: Any) -> tuple[float, float]:
    """Bars per second over :data:`EVAL_BARS` test bars: our agent policy, and a naive ``model.predict`` loop."""
    from stable_baselines3 import PPO

    from tradelab.env.market import MarketData
    from tradelab.experiments.agents import agent_policy
    from tradelab.experiments.artifacts import RunStorage
    from tradelab.experiments.config import load_config
    from tradelab.experiments.evaluation import evaluation_env, play, segment

    run = RunStorage(url)
    config = load_config(run.read_json("config.json")["config"])
    first, _ = run.read_json("config.json")["segments"]["test"]
    market = MarketData.from_store(config.env, store)
    env = evaluation_env(config.env, segment(market, first, first + EVAL_BARS))
    model = PPO.load(io.BytesIO(run.read_bytes("model.zip")), device="cpu")
    started = time.perf_counter()
    play(env, agent_policy(model, env), "agent")
    ours = EVAL_BARS / (time.perf_counter() - started)
    started = time.perf_counter()
    play(env, lambda observation, _info: model.predict(observation, deterministic=True)[0], "naive")
    naive = EVAL_BARS / (time.perf_counter() - started)
    return ours, naive


def run() -> tuple[list[Row], dict[str, Any]]:
    """Every measurement, with a progress display; the report rows and extra facts."""
    import torch

    from tradelab.data.ingest.synth import generate_bars
    from tradelab.data.store import Store
    from tradelab.experiments.config import load_config
    from tradelab.experiments.runner import run_experiment

    devices = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
    home = Path(tempfile.mkdtemp(prefix="tradelab-bench-train-"))
    store = Store(home / "store")
    rows: list[Row] = []
    extra: dict[str, Any] = {"bars": BARS, "steps": STEPS, "settings": {}}
    with progress_steps() as step:
        advance = step(f"generate and store {BARS:,} bars", 1)
        frame = generate_bars(BARS / 1440, seed=0, gaps=False)
        store.write("BENCH", "1m", frame)
        advance()
        advance = step(f"peer: SB3 PPO on gym-anytrading, DummyVecEnv({PEER_ENVS}), {STEPS:,} steps", 1)
        peer = peer_fps(frame)
        advance()
        for device in devices:
            best: tuple[float, str, float, str] | None = None
            advance = step(f"ours ({device}): tradelab run PPO, {len(SETTINGS)} batch settings", len(SETTINGS))
            for n_envs, n_steps, batch in SETTINGS:
                config = load_config(experiment(n_envs, n_steps, batch, device))
                started = time.perf_counter()
                (outcome,) = run_experiment(config, home / "runs", store=store, progress=False)
                wall = time.perf_counter() - started
                fps = outcome.results["timesteps"] / outcome.results["train_seconds"]
                label = f"{n_envs} envs × {n_steps} steps, batch {batch}"
                overhead = wall - outcome.results["train_seconds"]
                extra["settings"][f"{device}: {label}"] = {"fps": fps, "overhead_s": overhead}
                if best is None or fps > best[0]:
                    best = (fps, label, overhead, outcome.url)
                advance()
            assert best is not None
            fps, label, overhead, url = best
            goal = fps >= max(6 * peer, 20_000)
            metric = f"PPO training env-steps/s, {device} (ours: {label})"
            rows.append(Row(metric, "k/s", fps / 1000, "≥ 6× the peer (≥ 20k)", goal, peer=peer / 1000))
            if device == "cpu":
                metric = "tradelab run overhead outside training (load, features, evaluations, artifacts)"
                rows.append(Row(metric, "s", overhead, "≤ 10 s", overhead <= 10.0))
                advance = step(f"evaluation over {EVAL_BARS:,} test bars: ours, then model.predict", 1)
                ours_eval, naive_eval = evaluation_speeds(url, store)
                advance()
                metric = "evaluation of the trained agent, bars/s (peer: naive model.predict loop)"
                goal = ours_eval >= 10_000
                rows.append(Row(metric, "k/s", ours_eval / 1000, "≥ 10k bars/s", goal, peer=naive_eval / 1000))
    return rows, extra


def main() -> None:
    """Run the benchmark and report."""
    from importlib.metadata import version

    os.environ.setdefault("PYTHONHASHSEED", "0")
    rows, extra = run()
    title = f"tradelab training benchmark: PPO 64×64, {STEPS:,} env-steps, {BARS:,} 1-minute bars"
    versions = {name: version(name) for name in ("stable-baselines3", "torch", "gym-anytrading")}
    import torch

    extra = {**extra, "versions": versions, "torch_threads": torch.get_num_threads()}
    report(title, "SB3 + gym-anytrading", rows, RESULTS, extra)


if __name__ == "__main__":
    main()
