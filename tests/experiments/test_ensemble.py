"""Ensembles: the vote, and K runs evaluated as one agent beside the baselines."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from gymnasium import spaces

from tests.experiments.runs import stored, tiny_config
from tradelab.data.store import Store
from tradelab.experiments.config import ConfigError
from tradelab.experiments.ensemble import EnsembleConfig, evaluate_ensemble, vote
from tradelab.experiments.runner import run_experiment


def test_majority_per_dimension_ties_to_the_lowest_index_and_mean_for_boxes() -> None:
    assert vote([2, 2, 0], spaces.Discrete(3)) == 2
    assert vote([0, 1], spaces.Discrete(3)) == 0  # a tie leans to the lowest level
    actions = [np.array([1, 0, 2]), np.array([1, 2, 2]), np.array([0, 2, 1])]
    np.testing.assert_array_equal(vote(actions, spaces.MultiDiscrete([2, 3, 3])), [1, 2, 2])
    box = spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
    np.testing.assert_allclose(vote([np.array([0.5]), np.array([-0.1]), np.array([0.2])], box), [0.2], rtol=1e-6)


def test_three_runs_act_as_one_agent(store: Store, tmp_path: Path) -> None:
    runs = run_experiment(tiny_config(seeds=[0, 1, 2]), tmp_path / "runs", store=stored(store), progress=False)
    config = EnsembleConfig(name="trio", runs=[r.url for r in runs])
    outcome = evaluate_ensemble(config, tmp_path / "ensembles", store=store)
    results = json.loads((Path(outcome.url) / "results.json").read_text())
    assert set(results["test"]) == {"agent", "buy_and_hold", "flat", "random", "sma_crossover"}
    assert results["members"] == [r.url for r in runs]
    # the baselines are played on the same segment as each member's test
    assert results["test"]["buy_and_hold"] == runs[0].results["test"]["buy_and_hold"]
    assert (Path(outcome.url) / "report.html").is_file()


def test_runs_trained_on_different_envs_are_refused(store: Store, tmp_path: Path) -> None:
    stored(store)
    (a,) = run_experiment(tiny_config(), tmp_path / "a", store=store, progress=False)
    env = tiny_config().env.model_dump(mode="json", by_alias=True) | {"window": 4}
    (b,) = run_experiment(tiny_config(env=env), tmp_path / "b", store=store, progress=False)
    with pytest.raises(ConfigError, match=r"trained on another env.*window"):
        evaluate_ensemble(EnsembleConfig(name="mixed", runs=[a.url, b.url]), tmp_path / "e", store=store)
