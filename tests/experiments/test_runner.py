"""``tradelab run`` end to end on a tiny experiment: artifacts, results beside baselines, reproducibility, failures."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from tests.experiments.runs import stored, tiny_config
from tradelab.data.errors import DataError
from tradelab.data.store import Store
from tradelab.env.market import EnvDataError
from tradelab.experiments import runner
from tradelab.experiments.artifacts import RunStorage
from tradelab.experiments.evaluation import BASELINES, play
from tradelab.experiments.runner import resume_experiment, run_experiment


def test_a_run_writes_every_artifact_and_tests_the_agent_beside_the_baselines(store: Store, tmp_path: Path) -> None:
    (outcome,) = run_experiment(tiny_config(), tmp_path / "runs", store=stored(store), progress=False)
    run = RunStorage(outcome.url)
    for name in ("config.json", "status.json", "model.zip", "metrics.parquet", "equity_test.parquet", "results.json"):
        assert run.exists(name), name
    assert run.read_json("status.json")["status"] == "succeeded"
    assert list((Path(outcome.url) / "tensorboard").rglob("events.out.tfevents.*"))  # training logs
    provenance = run.read_json("config.json")
    assert provenance["seed"] == 0 and provenance["dataset"].startswith("SYN/1m@")
    assert provenance["packages"]["stable-baselines3"] and provenance["config"]["name"] == "tiny"
    results = run.read_json("results.json")
    assert set(results["test"]) == {"agent", *BASELINES}
    assert results["test"]["flat"]["total_return"] == 0.0 and results["test"]["flat"]["n_trades"] == 0
    assert results["selected"] == "best_validation" and results["timesteps"] >= 1024
    low, high = results["agent_sharpe_ci95"]
    assert low <= results["test"]["agent"]["sharpe"] <= high
    curve = run.read_parquet("metrics.parquet")
    assert curve["timesteps"].to_list() == sorted(curve["timesteps"].to_list()) and curve.height >= 2
    equity = run.read_parquet("equity_test.parquet")
    assert {"ts", "agent_equity", "buy_and_hold_equity", "flat_position"} <= set(equity.columns)
    assert equity["flat_equity"].n_unique() == 1  # the flat baseline never trades


def test_same_config_and_seed_give_identical_metrics(store: Store, tmp_path: Path) -> None:
    stored(store)
    first, second = (
        run_experiment(tiny_config(), tmp_path / name, store=store, progress=False)[0] for name in ("a", "b")
    )
    assert first.results["test"] == second.results["test"]
    other = run_experiment(tiny_config(), tmp_path / "c", seed=1, store=store, progress=False)[0]
    assert other.results["test"]["agent"] != first.results["test"]["agent"]


def test_a_crash_marks_the_run_failed_with_its_traceback(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("simulated crash during the test evaluation")

    monkeypatch.setattr(runner, "play_baselines", broken)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_experiment(tiny_config(), tmp_path / "runs", store=stored(store), progress=False)
    (folder,) = (tmp_path / "runs").iterdir()
    run = RunStorage(folder)
    status = run.read_json("status.json")
    assert status["status"] == "failed" and "simulated crash" in status["error"]
    assert not run.exists("results.json")


def test_a_missing_dataset_fails_before_training(store: Store, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="SYN"):
        run_experiment(tiny_config(), tmp_path / "runs", store=store, progress=False)
    assert not (tmp_path / "runs").exists()


def test_walk_forward_runs_one_folder_per_fold(store: Store, tmp_path: Path) -> None:
    config = tiny_config(split={"kind": "walk_forward", "n_folds": 2, "test_fraction": 0.3, "val_bars": 300})
    outcomes = run_experiment(config, tmp_path / "runs", store=stored(store), progress=False)
    assert [o.results["fold"] for o in outcomes] == [0, 1]
    (summary_file,) = (tmp_path / "runs").glob("*-summary.json")
    summary = json.loads(summary_file.read_text())
    spread = summary["agent"]["total_return"]
    returns = [o.results["test"]["agent"]["total_return"] for o in outcomes]
    assert spread["min"] == min(returns) and spread["max"] == max(returns)
    assert spread["mean"] == pytest.approx(sum(returns) / 2)
    ends = [pl.read_parquet(Path(o.url) / "equity_test.parquet")["ts"].max() for o in outcomes]
    assert ends[0] < ends[1]  # the second fold tests on later bars


def test_several_seeds_report_the_spread_and_the_deflated_sharpe_ratio(store: Store, tmp_path: Path) -> None:
    outcomes = run_experiment(tiny_config(seeds=[0, 1, 2]), tmp_path / "runs", store=stored(store), progress=False)
    (summary_file,) = (tmp_path / "runs").glob("*-summary.json")
    summary = json.loads(summary_file.read_text())
    assert [r["seed"] for r in summary["runs"]] == [0, 1, 2]
    best = max(outcomes, key=lambda o: o.results["test"]["agent"]["sharpe"])
    assert summary["best"]["seed"] == best.results["seed"]
    assert 0.0 <= summary["best"]["deflated_sharpe"] <= 1.0
    assert summary["baselines"]["flat"]["total_return"] == 0.0


def test_ctrl_c_stops_cleanly_with_partial_results_and_resume_finishes(store: Store, tmp_path: Path) -> None:
    def interrupt(timesteps: int, _metrics: dict) -> bool:
        raise KeyboardInterrupt  # what Ctrl-C does in the middle of training

    config = tiny_config(total_timesteps=2048)
    (interrupted,) = run_experiment(
        config, tmp_path / "runs", store=stored(store), progress=False, on_evaluation=interrupt
    )
    run = RunStorage(interrupted.url)
    assert interrupted.results["stopped_by"] == "interrupted" and interrupted.results["timesteps"] < 2048
    assert run.read_json("status.json")["status"] == "interrupted"
    assert run.exists("checkpoint.zip") and run.exists("results.json")  # partial results, tested

    resumed = resume_experiment(interrupted.url, store=store, progress=False)
    assert resumed.url == interrupted.url
    assert resumed.results["stopped_by"] == "timesteps" and resumed.results["timesteps"] >= 2048
    assert run.read_json("status.json")["status"] == "succeeded"
    curve = run.read_parquet("metrics.parquet")["timesteps"].to_list()
    assert (
        curve[0] < interrupted.results["timesteps"] + 1 and curve[-1] >= 2048
    )  # the curve goes on from the checkpoint


def test_a_pinned_dataset_version_that_differs_refuses_to_start(store: Store, tmp_path: Path) -> None:
    stored(store)
    env = tiny_config().env.model_dump(mode="json", by_alias=True)
    env["dataset"]["version"] = "beefbeef"
    with pytest.raises(EnvDataError, match="config asks for beefbeef"):
        run_experiment(tiny_config(env=env), tmp_path / "runs", store=store, progress=False)
    assert not (tmp_path / "runs").exists()


ALGORITHMS = [
    ("PPO", {"kind": "discrete", "levels": [0, 1]}, {"n_steps": 64, "batch_size": 256}),
    ("A2C", {"kind": "multi_discrete", "levels": [0, 1], "unit": "percent"}, {"n_steps": 8}),
    ("DQN", {"kind": "discrete", "levels": [0, 1]}, {"learning_starts": 64, "buffer_size": 2048}),
    ("QRDQN", {"kind": "discrete", "levels": [0, 1]}, {"learning_starts": 64, "buffer_size": 2048}),
    ("SAC", {"kind": "box", "low": 0, "high": 1}, {"learning_starts": 64, "buffer_size": 2048}),
    ("TD3", {"kind": "box", "low": 0, "high": 1}, {"learning_starts": 64, "buffer_size": 2048}),
    ("RecurrentPPO", {"kind": "discrete", "levels": [0, 1]}, {"n_steps": 32, "batch_size": 128}),
    ("MaskablePPO", {"kind": "multi_discrete", "levels": [0, 1], "unit": "percent"}, {"n_steps": 32}),
]


@pytest.mark.parametrize(("name", "actions", "hyperparams"), ALGORITHMS, ids=[a[0] for a in ALGORITHMS])
def test_every_algorithm_trains_and_is_tested(
    store: Store, tmp_path: Path, name: str, actions: dict, hyperparams: dict
) -> None:
    env = tiny_config().env.model_dump(mode="json", by_alias=True) | {"actions": actions}
    config = tiny_config(env=env, algorithm={"name": name, "hyperparams": hyperparams}, total_timesteps=512)
    (outcome,) = run_experiment(config, tmp_path / "runs", store=stored(store), progress=False)
    assert outcome.results["timesteps"] >= 512 and set(outcome.results["test"]) >= {"agent", "flat"}
    assert RunStorage(outcome.url).exists("model.zip")


def test_stochastic_validation_averages_several_passes(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []

    def counting_play(env: object, policy: object, name: str, seed: int = 0) -> object:
        calls.append(name)
        return play(env, policy, name, seed)  # type: ignore[arg-type]

    monkeypatch.setattr(runner, "play", counting_play)
    config = tiny_config(evaluation={"every_steps": 512, "deterministic": False, "episodes": 3})
    (outcome,) = run_experiment(config, tmp_path / "runs", store=stored(store), progress=False)
    evaluations = RunStorage(outcome.url).read_parquet("metrics.parquet").height
    assert evaluations >= 2
    assert len(calls) == 3 * evaluations + 1  # three validation passes each, then one test pass
