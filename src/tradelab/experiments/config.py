"""The experiment config: one pydantic model, :class:`ExperimentConfig`, read from JSON or YAML.

It names the env (data, features, execution, reward), how the data is split (chronological train /
val / test, or walk-forward folds), the algorithm and its hyper-parameters, the training budget, the
seeds and the evaluation. Every mistake is reported with its path before anything starts
(:func:`load_config`), including the ones only the algorithm can see: an unknown hyper-parameter,
or an algorithm that cannot drive the env's action space.
"""

from __future__ import annotations

import importlib
import inspect
import json
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    ModelWrapValidatorHandler,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from tradelab.data.store import Store
from tradelab.env.config import EnvConfig, SplitFractions

_FROZEN = ConfigDict(extra="forbid", frozen=True)

#: Algorithm name -> (module, class, action spaces it can drive).
ALGORITHMS: dict[str, tuple[str, str, frozenset[str]]] = {
    "PPO": ("stable_baselines3", "PPO", frozenset({"discrete", "multi_discrete", "box"})),
    "A2C": ("stable_baselines3", "A2C", frozenset({"discrete", "multi_discrete", "box"})),
    "DQN": ("stable_baselines3", "DQN", frozenset({"discrete"})),
    "SAC": ("stable_baselines3", "SAC", frozenset({"box"})),
    "TD3": ("stable_baselines3", "TD3", frozenset({"box"})),
    "RecurrentPPO": ("sb3_contrib", "RecurrentPPO", frozenset({"discrete", "multi_discrete", "box"})),
    "MaskablePPO": ("sb3_contrib", "MaskablePPO", frozenset({"discrete", "multi_discrete"})),
    "QRDQN": ("sb3_contrib", "QRDQN", frozenset({"discrete"})),
}
# Constructor arguments the runner sets itself: a config may not.
_RUNNER_ARGUMENTS = frozenset({"policy", "env", "seed", "device", "verbose", "tensorboard_log", "policy_kwargs"})


class ConfigError(ValueError):
    """An experiment config is invalid; :attr:`problems` lists every mistake as ``path: message``."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        listing = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{source}: {len(self.problems)} problem(s)\n{listing}")


class AlgorithmConfig(BaseModel):
    """The learning algorithm: an SB3 or sb3-contrib class, its policy and its hyper-parameters."""

    model_config = _FROZEN

    name: Literal["PPO", "A2C", "DQN", "SAC", "TD3", "RecurrentPPO", "MaskablePPO", "QRDQN"] = Field(
        description="algorithm class (Stable-Baselines3 or sb3-contrib)"
    )
    policy: str | None = Field(
        None, description="policy class name; MlpPolicy (MlpLstmPolicy for RecurrentPPO) when null"
    )
    hyperparams: dict[str, Any] = Field(
        default_factory=dict, description="constructor arguments of the algorithm, e.g. learning_rate, n_steps"
    )
    policy_kwargs: dict[str, Any] = Field(default_factory=dict, description="e.g. {'net_arch': [64, 64]}")

    @field_validator("hyperparams")
    @classmethod
    def _known(cls, hyperparams: dict[str, Any], info: Any) -> dict[str, Any]:
        name = info.data.get("name")
        if name is None:
            return hyperparams
        accepted = algorithm_arguments(name)
        unknown = sorted(set(hyperparams) - accepted)
        if unknown:
            names = ", ".join(map(repr, unknown))
            raise ValueError(f"{name} has no hyper-parameter {names}; it accepts {', '.join(sorted(accepted))}")
        return hyperparams

    @property
    def policy_name(self) -> str:
        """The policy class name, defaulted by algorithm."""
        return self.policy or ("MlpLstmPolicy" if self.name == "RecurrentPPO" else "MlpPolicy")


class ChronologicalSplitConfig(SplitFractions):
    """Train on the oldest bars, select on the next (without validation: keep the last model), test on the newest."""

    kind: Literal["chronological"] = "chronological"

    @model_validator(mode="after")
    def _fits(self) -> ChronologicalSplitConfig:
        if self.train + self.val + self.test > 1:
            raise ValueError(f"train + val + test exceeds 1 ({self.train} + {self.val} + {self.test})")
        return self


class WalkForwardConfig(BaseModel):
    """Train and test once per fold; test windows tile the end of the data (see ``tradelab.data.splits``)."""

    model_config = _FROZEN

    kind: Literal["walk_forward"] = "walk_forward"
    n_folds: int = Field(3, ge=1, description="number of folds (test windows)")
    test_fraction: float = Field(0.3, gt=0.0, lt=1.0, description="share of all bars the test windows cover")
    train_bars: int | None = Field(None, ge=1, description="rolling training window; null: expanding")
    val_bars: int = Field(0, ge=0, description="validation bars before each test window (0: none)")
    embargo_bars: int = Field(0, ge=0, description="bars left out before each test (and validation) window")


def _split_kind(value: Any) -> str:
    """The split's ``kind``; chronological when a mapping leaves it out."""
    if isinstance(value, Mapping):
        return str(value.get("kind", "chronological"))
    return str(getattr(value, "kind", "chronological"))


#: The tags of the split union; pydantic puts the tag in an error's path, the config file has no such level.
_SPLIT_KINDS = ("chronological", "walk_forward")
SplitSpec = Annotated[
    Annotated[ChronologicalSplitConfig, Tag("chronological")] | Annotated[WalkForwardConfig, Tag("walk_forward")],
    Discriminator(_split_kind),
]


class EvaluationConfig(BaseModel):
    """When and how the agent is evaluated during training, and how the best model is chosen."""

    model_config = _FROZEN

    every_steps: int = Field(20_000, ge=1, description="env steps between evaluations on the validation segment")
    metric: Literal["sharpe", "sortino", "total_return", "calmar"] = Field(
        "sharpe", description="validation metric that picks the best model"
    )
    patience: int | None = Field(
        None, ge=1, description="stop after this many evaluations without improvement; null: never"
    )
    deterministic: bool = Field(True, description="evaluate the policy's most likely action")
    episodes: int = Field(
        1, ge=1, description="validation passes averaged per evaluation (more than 1 only with stochastic actions)"
    )


class SearchSpace(BaseModel):
    """How a sweep draws one config value: a float or int range (optionally log-scaled), or a list of choices."""

    model_config = _FROZEN

    type: Literal["float", "int", "categorical"]
    low: float | None = Field(None, description="lower bound (float, int)")
    high: float | None = Field(None, description="upper bound, inclusive (float, int)")
    log: bool = Field(False, description="draw on a log scale (float, int)")
    step: float | None = Field(None, gt=0.0, description="grid step (float, int); null: continuous")
    choices: list[Any] | None = Field(None, min_length=1, description="the values to choose from (categorical)")

    @model_validator(mode="after")
    def _complete(self) -> SearchSpace:
        if self.type == "categorical":
            if self.choices is None:
                raise ValueError("a categorical search space needs choices")
        elif self.low is None or self.high is None or self.low >= self.high:
            raise ValueError(f"a {self.type} search space needs low < high, got low={self.low}, high={self.high}")
        elif self.log and self.low <= 0:
            raise ValueError(f"a log-scaled search space needs low > 0, got {self.low}")
        return self


class SweepConfig(BaseModel):
    """An Optuna study over config values: each trial is an ordinary run of the config with drawn values."""

    model_config = _FROZEN

    params: dict[str, SearchSpace] = Field(
        min_length=1,
        description="config path (as for --set, e.g. algorithm.hyperparams.learning_rate) -> its search space",
    )
    sampler_seed: int = Field(0, description="seed of the TPE sampler")
    pruning: bool = Field(True, description="stop trials whose validation metric falls below the median (Optuna)")


class BudgetConfig(BaseModel):
    """Limits of one run."""

    model_config = _FROZEN

    max_wall_time_s: float | None = Field(None, gt=0.0, description="stop training after this many seconds")


class ExperimentConfig(BaseModel):
    """Everything ``tradelab run`` needs: env, split, algorithm, training budget, seeds and evaluation."""

    model_config = _FROZEN

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$", description="run folder prefix")
    tags: list[str] = Field(default_factory=list)
    notes: str = ""
    env: EnvConfig = Field(description="the env; its dataset.split must be null (the split below decides)")
    split: SplitSpec = Field(default_factory=ChronologicalSplitConfig)
    algorithm: AlgorithmConfig
    n_envs: int = Field(64, ge=1, description="envs of the native vectorized training env")
    total_timesteps: int = Field(ge=1, description="env steps to train for (per seed and fold)")
    seeds: list[Annotated[int, Field(ge=0, le=2**31 - 1)]] = Field(
        default_factory=lambda: [0], min_length=1, description="one run per seed (0 to 2**31 - 1)"
    )
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    sweep: SweepConfig | None = Field(None, description="search space of `tradelab sweep` (ignored by `tradelab run`)")

    @field_validator("seeds")
    @classmethod
    def _distinct(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"{seeds} repeats a seed")
        return seeds

    @model_validator(mode="wrap")
    @classmethod
    def _consistent(cls, data: Any, handler: ModelWrapValidatorHandler[ExperimentConfig]) -> ExperimentConfig:
        """Field errors and whole-config problems in one report.

        An after-validator never runs once any field fails, so each mistake would surface only after the
        previous one is fixed: the checks across fields run here on whichever parts are valid on their own.
        """
        try:
            config: ExperimentConfig | None = handler(data)
            errors: list[InitErrorDetails] = []
        except ValidationError as error:
            config = None
            errors = [_detail(e["type"], e["loc"], e["msg"], e["input"]) for e in error.errors()]
        if config is not None:
            env, algorithm = config.env, config.algorithm.name
        elif isinstance(data, Mapping):
            env, algorithm = _valid_env(data.get("env")), (data.get("algorithm") or {}).get("name")
        else:
            env = algorithm = None
        errors += [_detail("value_error", loc, message, data) for loc, message in _cross_problems(env, algorithm)]
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        assert config is not None
        return config


def _cross_problems(env: EnvConfig | None, algorithm: Any) -> list[tuple[tuple[str, ...], str]]:
    """(path, message) of every problem between parts of a config, checked where those parts are valid."""
    problems = []
    if env is not None and algorithm in ALGORITHMS:
        kind, supported = env.actions.kind, ALGORITHMS[algorithm][2]
        if kind not in supported:
            problems.append(
                (
                    ("algorithm", "name"),
                    f"{algorithm} cannot drive the {kind} action scheme (env.actions.kind); "
                    f"it supports {', '.join(sorted(supported))}",
                )
            )
    if env is not None and env.dataset.split is not None:
        problems.append((("env", "dataset", "split"), "leave it null in an experiment; the experiment's split decides"))
    return problems


def _valid_env(raw: Any) -> EnvConfig | None:
    """``raw`` as an env config, or None when it is invalid (its errors are reported at their own paths)."""
    try:
        return EnvConfig.model_validate(raw)
    except ValidationError:
        return None


def _detail(kind: str, loc: tuple[str | int, ...], message: str, value: Any) -> InitErrorDetails:
    """One error for :meth:`ValidationError.from_exception_data`, its message kept verbatim."""
    return {"type": PydanticCustomError(kind, "{message}", {"message": message}), "loc": loc, "input": value}


@cache
def algorithm_class(name: str) -> type[Any]:
    """The SB3 / sb3-contrib class of algorithm ``name`` (imported on first use)."""
    module, attribute, _ = ALGORITHMS[name]
    return getattr(importlib.import_module(module), attribute)


@cache
def algorithm_arguments(name: str) -> frozenset[str]:
    """Constructor arguments of algorithm ``name`` that a config may set."""
    parameters = inspect.signature(algorithm_class(name)).parameters
    return frozenset(p for p in parameters if p not in _RUNNER_ARGUMENTS and not p.startswith("_"))


def load_config(
    source: str | Path | Mapping[str, Any], overrides: Sequence[str] = (), *, store: Store | None = None
) -> ExperimentConfig:
    """Read, override and validate an experiment config.

    :param source: a ``.json``, ``.yaml`` or ``.yml`` file, or a mapping.
    :param overrides: ``key.path=value`` strings, each value parsed as JSON, else YAML (``n_envs=128``,
        ``algorithm.hyperparams.learning_rate=1e-4``, ``seeds=[1,2]``).
    :param store: also check that the env's dataset is in this store (at its pinned version), for commands
        that train here; the API leaves it out, as a worker may pull the dataset.
    :raises ConfigError: listing every problem with its path (unreadable file, bad override, invalid field,
        missing dataset).
    """
    label = str(source) if isinstance(source, str | Path) else "config"
    raw = _read(source) if isinstance(source, str | Path) else json.loads(json.dumps(source))
    for override in overrides:
        _apply(raw, override, label)
    try:
        config: ExperimentConfig | None = ExperimentConfig.model_validate(raw)
        problems = []
    except ValidationError as error:
        config, problems = None, [_describe(e) for e in error.errors()]
    env = config.env if config is not None else _valid_env(raw.get("env"))
    if store is not None and env is not None:
        problems += _dataset_problems(env, store)
    if problems:
        raise ConfigError(label, problems)
    assert config is not None
    return config


def _dataset_problems(env: EnvConfig, store: Store) -> list[str]:
    """The env's dataset missing from ``store``, or stored at another version than the config pins."""
    dataset = env.dataset
    manifest = store.manifest(dataset.symbol, dataset.timeframe)
    if manifest is None:
        known = ", ".join(f"{m.symbol}/{m.timeframe}" for m in store.datasets()) or "none"
        return [
            f"env.dataset.symbol: no dataset {dataset.symbol}/{dataset.timeframe} in {store.root} (datasets: {known})"
        ]
    if dataset.version is not None and not manifest.content_hash.startswith(dataset.version):
        stored = f"{dataset.symbol}/{dataset.timeframe} is version {manifest.version}"
        return [f"env.dataset.version: {stored}, not {dataset.version}"]
    return []


def _read(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError(str(path), [f"cannot read it: {error.strerror}"]) from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise ConfigError(str(path), [f"not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {error}"]) from None
    if not isinstance(data, dict):
        raise ConfigError(str(path), [f"the top level must be a mapping, got {type(data).__name__}"])
    return data


def _apply(raw: dict[str, Any], override: str, label: str) -> None:
    """Set ``key.path=value`` in ``raw``, creating intermediate mappings."""
    key, sep, value = override.partition("=")
    if not sep or not key:
        raise ConfigError(label, [f"--set {override!r}: expected key.path=value"])
    *parents, leaf = key.split(".")
    node = raw
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(label, [f"--set {override!r}: {part} is not a mapping"])
        node = child
    node[leaf] = _parse_value(value, override, label)


def _parse_value(value: str, override: str, label: str) -> Any:
    """An override's value: JSON first (``1e-4`` is a number there, a string to YAML 1.1), then YAML."""
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        pass
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError as error:
        raise ConfigError(label, [f"--set {override!r}: cannot parse the value: {error}"]) from None


def _describe(error: Mapping[str, Any]) -> str:
    """One pydantic error as ``path: message``."""
    loc = [str(part) for part in error["loc"]]
    if loc[:1] == ["split"] and loc[1:2] and loc[1] in _SPLIT_KINDS:
        del loc[1]
    path = ".".join(loc) or "(top level)"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{path}: {message}"


def config_schema() -> dict[str, Any]:
    """The JSON Schema of :class:`ExperimentConfig` (served to the UI)."""
    return ExperimentConfig.model_json_schema()
