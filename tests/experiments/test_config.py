"""Experiment configs: every mistake listed with its path before anything starts; overrides; files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.experiments.runs import tiny_config
from tradelab.cli import app
from tradelab.data.store import Store
from tradelab.experiments.config import ConfigError, ExperimentConfig, load_config

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "configs" / "ppo-btc-1m.yaml"


def test_the_example_config_loads_and_overrides_apply() -> None:
    config = load_config(EXAMPLE, ["n_envs=128", "algorithm.hyperparams.learning_rate=1e-4", "seeds=[1, 2]"])
    assert config.n_envs == 128 and config.seeds == [1, 2]
    assert config.algorithm.hyperparams["learning_rate"] == pytest.approx(1e-4)
    assert config.algorithm.policy_name == "MlpPolicy"


def test_several_mistakes_are_listed_together_with_their_paths() -> None:
    with pytest.raises(ConfigError) as info:
        tiny_config(name="bad name", n_envs=0, total_timesteps=-5, algorithm={"name": "PPO", "hyperparams": {"lr": 1}})
    problems = info.value.problems
    assert len(problems) == 4
    assert any(p.startswith("name:") for p in problems) and any(p.startswith("n_envs:") for p in problems)
    assert any(p.startswith("total_timesteps:") for p in problems)
    assert any(p.startswith("algorithm.hyperparams:") and "'lr'" in p and "learning_rate" in p for p in problems)


@pytest.mark.parametrize(
    ("algorithm", "actions", "message"),
    [
        ("DQN", {"kind": "multi_discrete", "levels": [0, 1]}, "DQN cannot drive the multi_discrete"),
        ("SAC", {"kind": "discrete", "levels": [0, 1]}, "SAC cannot drive the discrete"),
        ("MaskablePPO", {"kind": "box", "low": 0, "high": 1}, "MaskablePPO cannot drive the box"),
    ],
)
def test_an_algorithm_must_fit_the_action_scheme(algorithm: str, actions: dict, message: str) -> None:
    env = tiny_config().env.model_dump(mode="json", by_alias=True) | {"actions": actions}
    with pytest.raises(ConfigError, match=message):
        tiny_config(algorithm={"name": algorithm}, env=env)


def test_the_split_belongs_to_the_experiment_not_the_env() -> None:
    env = tiny_config().env.model_dump(mode="json", by_alias=True)
    env["dataset"]["split"] = {"name": "train"}
    with pytest.raises(ConfigError, match=r"env\.dataset\.split"):
        tiny_config(env=env)


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match=r"(?s)broken\.yaml.*not valid YAML"):
        load_config(broken)
    with pytest.raises(ConfigError, match="cannot read it"):
        load_config(tmp_path / "missing.json")
    with pytest.raises(ConfigError, match=r"expected key\.path=value"):
        load_config(EXAMPLE, ["n_envs"])


def test_json_files_and_the_schema() -> None:
    schema = ExperimentConfig.model_json_schema()
    assert {"env", "algorithm", "split", "total_timesteps", "seeds"} <= set(schema["properties"])
    assert json.loads(json.dumps(schema))  # serialisable for the API


@pytest.mark.parametrize("path", sorted(EXAMPLE.parent.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_config_is_valid(path: Path) -> None:
    if path.name == "ensemble.yaml":
        from tradelab.experiments.ensemble import load_ensemble

        assert len(load_ensemble(path).runs) == 3
    else:
        config = load_config(path)
        assert config.name == path.stem
        if config.sweep is not None:
            from tradelab.experiments.sweep import check_sweep

            assert set(check_sweep(config).params) == set(config.sweep.params)  # every path sets a valid config


def test_seeds_are_32_bit_and_not_negative() -> None:
    with pytest.raises(ConfigError, match=r"seeds\.0"):
        tiny_config(seeds=[-1])
    with pytest.raises(ConfigError, match=r"seeds\.1"):
        tiny_config(seeds=[0, 2**31])


def test_mistakes_of_every_stage_are_reported_together(home: Path, tmp_path: Path) -> None:
    """A hyper-parameter, the split, the seeds, the action scheme and the dataset: one report, not one per run."""
    env = tiny_config().env.model_dump(mode="json", by_alias=True, exclude_none=True)
    env["dataset"]["symbol"] = "NOPE"
    env["actions"] = {"kind": "multi_discrete", "levels": [0, 1]}
    config = tiny_config().model_dump(mode="json", by_alias=True, exclude_none=True) | {
        "env": env,
        "algorithm": {"name": "DQN", "hyperparams": {"lr": 1}},
        "split": {"kind": "chronological", "train": 0.7, "val": 0.3, "test": 0.3},
        "seeds": [1, 1],
    }
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(config))
    with pytest.raises(ConfigError) as info:
        load_config(path, store=Store())
    problems = info.value.problems
    assert len(problems) == 5, problems
    paths = [p.partition(": ")[0] for p in problems]
    assert paths == ["split", "algorithm.hyperparams", "seeds", "algorithm.name", "env.dataset.symbol"], problems
    assert "exceeds 1" in problems[0] and "'lr'" in problems[1] and "DQN cannot drive" in problems[3]
    assert "NOPE/1m" in problems[4]

    result = CliRunner().invoke(app, ["run", str(path)])
    assert result.exit_code == 2 and "5 problem(s)" in result.output and "env.dataset.symbol" in result.output
