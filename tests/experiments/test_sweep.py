"""``tradelab sweep``: trials on SQLite and PostgreSQL, shared by processes, pruned, and bad sweeps refused up front."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import optuna
import pytest
import typer
from optuna.trial import TrialState
from typer.testing import CliRunner

from tests.experiments.runs import stored, tiny_config
from tradelab.cli import app
from tradelab.data.store import Store
from tradelab.experiments.artifacts import RunStorage
from tradelab.experiments.config import ConfigError, ExperimentConfig
from tradelab.experiments.sweep import (
    SurplusTrialError,
    claiming,
    make_objective,
    open_study,
    rdb_storage,
    run_sweep,
    suggest,
)
from tradelab.experiments.sweep_cli import Worker, check_workers, run_beside

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
LEARNING_RATE = "algorithm.hyperparams.learning_rate"
GAMMA = "algorithm.hyperparams.gamma"
SWEEP: dict[str, Any] = {
    "params": {
        LEARNING_RATE: {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
        GAMMA: {"type": "categorical", "choices": [0.9, 0.99]},
    },
    "sampler_seed": 7,
}


def sweep_config(**overrides: Any) -> ExperimentConfig:
    """The tiny experiment with a sweep over the learning rate and gamma, validated four times per trial."""
    return tiny_config(sweep=SWEEP, evaluation={"every_steps": 256}, **overrides)


def drawn(study: optuna.Study) -> list[dict[str, Any]]:
    return [trial.params for trial in study.get_trials(deepcopy=False)]


def test_a_sweep_runs_its_trials_each_in_a_run_folder(store: Store, tmp_path: Path) -> None:
    config = sweep_config()
    study = run_sweep(config, trials=4, out=tmp_path / "runs", store=stored(store))
    assert (tmp_path / "runs" / "tiny-sweep.db").is_file() and study.study_name == "tiny"
    assert isinstance(study.pruner, optuna.pruners.MedianPruner)
    trials = study.get_trials(states=FINISHED)
    assert len(trials) == len(study.trials) == 4
    for trial in trials:
        (url,) = trial.user_attrs["runs"]
        assert Path(url).name.startswith(f"tiny-t{trial.number}-") and trial.user_attrs["pid"] == os.getpid()
        results = RunStorage(url).read_json("results.json")
        assert trial.state is TrialState.PRUNED or results["best_validation"] == trial.value
        assert len(trial.intermediate_values) >= 2  # validated several times, each reported to the pruner
    best = study.best_params
    assert 1e-4 <= best[LEARNING_RATE] <= 1e-2 and best[GAMMA] in (0.9, 0.99)
    # Rerun with the same number of trials: the study already holds them, nothing is trained.
    assert len(run_sweep(config, trials=4, out=tmp_path / "runs", store=store).trials) == 4


def test_the_sampler_seed_fixes_the_drawn_values_and_workers_or_resumed_sweeps_draw_others(tmp_path: Path) -> None:
    sweep = sweep_config().sweep
    assert sweep is not None

    def draws(name: str, worker: int = 0) -> list[dict[str, Any]]:
        study = open_study(sweep, f"sqlite:///{tmp_path / 'draws.db'}", name, worker=worker)
        for _ in range(5):
            trial = study.ask()
            study.tell(trial, sum(suggest(trial, path, space) for path, space in sweep.params.items()))
        return drawn(study)

    first = draws("a")
    assert draws("b") == first and draws("c", worker=1) != first
    assert len({params[LEARNING_RATE] for params in first}) == 5
    resumed = draws("a")[5:]  # the same study again: five more values, none drawn before
    assert not {params[LEARNING_RATE] for params in resumed} & {params[LEARNING_RATE] for params in first}


def test_a_pruned_trial_stops_training_and_its_run_says_so(store: Store, tmp_path: Path) -> None:
    config = sweep_config()
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=1e12))
    study.optimize(make_objective(config, tmp_path / "runs", store=stored(store)), n_trials=1)
    (trial,) = study.trials
    assert trial.state is TrialState.PRUNED
    results = RunStorage(trial.user_attrs["runs"][0]).read_json("results.json")
    assert results["stopped_by"] == "pruned" and results["timesteps"] < config.total_timesteps
    assert list(trial.intermediate_values) == [results["timesteps"]]  # stopped at its first validation


def test_a_trial_beyond_the_claimed_slots_ends_failed_before_training() -> None:
    study = optuna.create_study(direction="maximize")
    study.ask(), study.ask()  # two slots claimed by other workers
    ran: list[int] = []
    objective = claiming(lambda trial: float(ran.append(trial.number) or 0), trials=2)
    study.optimize(objective, n_trials=1, catch=(SurplusTrialError,))
    assert not ran and study.trials[-1].state is TrialState.FAIL


def _sweep_home(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A config file and the environment of a ``tradelab`` process whose default store holds SYN/1m."""
    home = tmp_path / "home"
    stored(Store(home / "data"))
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps(sweep_config().model_dump(mode="json", by_alias=True)))
    return path, {**os.environ, "TRADELAB_HOME": str(home)}


def _sweep_command(config: Path, *options: str) -> list[str]:
    return [sys.executable, "-m", "tradelab.cli", "sweep", str(config), "--trials", "6", *options]


def _assert_shared(storage: str, study_name: str) -> None:
    """The study holds exactly its six trials, each with its own number, run by both processes."""
    study = optuna.load_study(study_name=study_name, storage=rdb_storage(storage))
    finished = study.get_trials(states=FINISHED)
    assert len(finished) == 6
    assert len({trial.number for trial in study.trials}) == len(study.trials)
    assert len({trial.user_attrs["pid"] for trial in finished}) == 2
    for trial in finished:
        assert RunStorage(trial.user_attrs["runs"][0]).exists("results.json")


@pytest.mark.slow
def test_workers_share_one_sqlite_study(tmp_path: Path) -> None:
    config, env = _sweep_home(tmp_path)
    runs = tmp_path / "runs"
    done = subprocess.run(
        _sweep_command(config, "--workers", "2", "--out", str(runs)),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "best: trial" in done.stdout and "worker 1: pid" in done.stdout
    assert re.search(r"deflated Sharpe ratio of trial \d+ on test, after \d trials: [01]\.\d{3}", done.stdout)
    _assert_shared(f"sqlite:///{runs / 'tiny-sweep.db'}", "tiny")


@pytest.mark.slow
def test_processes_share_one_postgres_study(tmp_path: Path) -> None:
    url = os.environ.get("TRADELAB_TEST_DATABASE_URL")
    if not url:
        pytest.skip(
            "TRADELAB_TEST_DATABASE_URL is not set (a PostgreSQL URL, e.g. postgresql://postgres@127.0.0.1/test)"
        )
    config, env = _sweep_home(tmp_path)
    name = f"tiny-{uuid.uuid4().hex[:12]}"
    options = ("--storage", url, "--study-name", name, "--out", str(tmp_path / "runs"))
    try:
        processes = [
            subprocess.Popen(
                _sweep_command(config, *options, "--worker-index", str(index)),
                env=env,
                text=True,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for index in range(2)
        ]
        for process in processes:
            _, stderr = process.communicate(timeout=300)
            assert process.returncode == 0, stderr
        _assert_shared(url, name)
    finally:
        optuna.delete_study(study_name=name, storage=rdb_storage(url))


def test_a_config_without_a_sweep_section_is_refused(store: Store, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="sweep: missing"):
        run_sweep(tiny_config(), trials=2, out=tmp_path / "runs", store=stored(store))
    assert not (tmp_path / "runs").exists()


def test_every_problem_of_a_sweep_is_reported_before_training(store: Store, tmp_path: Path) -> None:
    params = {
        **SWEEP["params"],
        "algorithm.hyperparams.no_such_param": {"type": "float", "low": 0.1, "high": 0.2},
        "n_envs": {"type": "int", "low": 0, "high": 4},
    }
    config = tiny_config(sweep={"params": params}, split={"kind": "chronological", "train": 0.8, "val": 0.0})
    with pytest.raises(ConfigError) as raised:
        run_sweep(config, trials=2, out=tmp_path / "runs", store=stored(store))
    problems = raised.value.problems
    assert len(problems) == 3, problems
    assert problems[0].startswith("split:") and "validation" in problems[0]
    assert (
        problems[1].startswith("sweep.params.algorithm.hyperparams.no_such_param:") and "no_such_param" in problems[1]
    )
    assert problems[2].startswith("sweep.params.n_envs: n_envs:")
    assert not (tmp_path / "runs").exists()


def test_the_command_reports_a_bad_sweep_with_exit_status_2(home: Path, tmp_path: Path) -> None:
    stored(Store())
    path = tmp_path / "bad.json"
    config = tiny_config().model_dump(mode="json", by_alias=True)
    path.write_text(json.dumps({**config, "sweep": {"params": {"algorithm.hyperparams.nope": SWEEP["params"][GAMMA]}}}))
    result = CliRunner().invoke(app, ["sweep", str(path), "--trials", "2", "--out", str(tmp_path / "runs")])
    assert result.exit_code == 2 and "sweep.params.algorithm.hyperparams.nope" in result.output
    assert not (tmp_path / "runs").exists()


def _worker(tmp_path: Path, code: str) -> Worker:
    log = tmp_path / "worker1.log"
    with log.open("wb") as sink:
        process = subprocess.Popen([sys.executable, "-c", code], stdout=sink, stderr=subprocess.STDOUT)
    return Worker(1, process, log)


def test_a_failed_worker_fails_the_command_with_its_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    worker = _worker(tmp_path, "raise SystemExit('error: the worker broke')")
    assert run_beside([worker], lambda: "own trials done") == "own trials done"
    with pytest.raises(typer.Exit) as exited:
        check_workers([worker])
    assert exited.value.exit_code == 1
    assert "worker 1 exited with status 1" in capsys.readouterr().err.replace("\n", " ")
    check_workers([])  # no extra worker: nothing to report


def test_a_failure_in_process_interrupts_the_extra_workers(tmp_path: Path) -> None:
    worker = _worker(tmp_path, "import time; time.sleep(120)")

    def crash() -> None:
        raise RuntimeError("the in-process worker broke")

    with pytest.raises(RuntimeError, match="broke"):
        run_beside([worker], crash)
    assert worker.process.returncode not in (None, 0)
