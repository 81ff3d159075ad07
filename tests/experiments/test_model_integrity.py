"""A saved model is loaded only from its run's own folder and only with the bytes the run wrote (SB3 unpickles it):
re-evaluation, monitoring and ensembles refuse a swapped, unrecorded or linked-in ``model.zip``."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.experiments.runs import stored, tiny_config
from tradelab.data.errors import DataError
from tradelab.data.store import Store
from tradelab.experiments.ensemble import EnsembleConfig, evaluate_ensemble
from tradelab.experiments.monitoring import evaluate_recent
from tradelab.experiments.reevaluation import evaluate_run
from tradelab.experiments.runner import run_experiment


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, list[Path]]:
    """Two runs of the tiny experiment (seeds 0 and 1) and their store, trained once for the module."""
    root = tmp_path_factory.mktemp("integrity")
    store = stored(Store(root / "store"))
    outcomes = run_experiment(tiny_config(seeds=[0, 1]), root / "runs", store=store, progress=False)
    return store, [Path(outcome.url) for outcome in outcomes]


@pytest.fixture
def runs(trained: tuple[Store, list[Path]], tmp_path: Path) -> list[Path]:
    """Fresh copies of the two run folders, for a test to tamper with."""
    return [Path(shutil.copytree(run, tmp_path / run.name)) for run in trained[1]]


def _loaders(store: Store, runs: list[Path], tmp_path: Path) -> dict[str, Callable[[], object]]:
    """Every way the lab loads the first run's model again."""
    return {
        "evaluate": lambda: evaluate_run(runs[0], "test", store=store),
        "monitor": lambda: evaluate_recent(runs[0], 1, store=store),
        "ensemble": lambda: evaluate_ensemble(
            EnsembleConfig(name="pair", runs=[str(run) for run in runs]), tmp_path / "ensembles", store=store
        ),
    }


def test_the_run_records_the_hash_of_the_model_it_wrote(trained: tuple[Store, list[Path]]) -> None:
    for run in trained[1]:
        results = json.loads((run / "results.json").read_text())
        assert results["model_sha256"] == hashlib.sha256((run / "model.zip").read_bytes()).hexdigest()


@pytest.mark.parametrize("loader", ["evaluate", "monitor", "ensemble"])
def test_an_untouched_model_loads(
    trained: tuple[Store, list[Path]], runs: list[Path], tmp_path: Path, loader: str
) -> None:
    assert _loaders(trained[0], runs, tmp_path)[loader]()


@pytest.mark.parametrize("loader", ["evaluate", "monitor", "ensemble"])
def test_a_swapped_model_is_refused(
    trained: tuple[Store, list[Path]], runs: list[Path], tmp_path: Path, loader: str
) -> None:
    (runs[0] / "model.zip").write_bytes((runs[1] / "model.zip").read_bytes())  # a valid model, not this run's
    with pytest.raises(DataError, match=r"does not match .* recorded when the run wrote it") as refused:
        _loaders(trained[0], runs, tmp_path)[loader]()
    assert refused.value.source == str(runs[0] / "model.zip")


@pytest.mark.parametrize("loader", ["evaluate", "monitor", "ensemble"])
def test_a_model_without_a_recorded_hash_is_refused(
    trained: tuple[Store, list[Path]], runs: list[Path], tmp_path: Path, loader: str
) -> None:
    results = json.loads((runs[0] / "results.json").read_text())
    del results["model_sha256"]
    (runs[0] / "results.json").write_text(json.dumps(results))
    with pytest.raises(DataError, match="no SHA-256 of it was recorded"):
        _loaders(trained[0], runs, tmp_path)[loader]()


@pytest.mark.parametrize("loader", ["evaluate", "monitor", "ensemble"])
def test_a_model_linked_from_outside_the_run_folder_is_refused(
    trained: tuple[Store, list[Path]], runs: list[Path], tmp_path: Path, loader: str
) -> None:
    outside = tmp_path / "elsewhere.zip"
    (runs[0] / "model.zip").replace(outside)  # the same bytes: only where they live is wrong
    (runs[0] / "model.zip").symlink_to(outside)
    with pytest.raises(DataError, match="a link leading out of the run folder"):
        _loaders(trained[0], runs, tmp_path)[loader]()
