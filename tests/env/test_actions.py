"""Action configs: spaces, lookup-table decoding, clipping, masks, validation and JSON Schema."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces
from pydantic import BaseModel, Field, ValidationError

from tradelab.env.actions import ActionConfig, BoxActions, DiscreteActions, MultiDiscreteActions

NAN = np.nan
CONFIGS = [
    DiscreteActions(levels=[-1.0, -0.5, 0.0, 0.5, 1.0]),
    MultiDiscreteActions(),
    MultiDiscreteActions(stop_levels=[0.5, 1.0], take_levels=[None, 3.0], unit="percent"),
    BoxActions(low=-0.5, high=2.0),
]


class Holder(BaseModel):
    """A config with a field of the union type, as the env config will have."""

    actions: ActionConfig = Field(default_factory=DiscreteActions)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.kind)
def test_spaces_contain_their_samples_and_batches_decode_like_rows(config: ActionConfig) -> None:
    single, batched = config.space(), config.space(n_envs=5)
    single.seed(0)
    batched.seed(1)
    assert single.contains(single.sample())
    actions = batched.sample()
    assert batched.contains(actions)
    atr = np.linspace(0.001, 0.005, 5)
    target, stop, take = config.decode(actions, atr)
    for decoded in (target, stop, take):
        assert decoded.dtype == np.float64 and decoded.shape == (5,)
    for i in range(5):
        row = config.decode(actions[i], atr[i : i + 1])
        np.testing.assert_array_equal(np.concatenate(row), [target[i], stop[i], take[i]])
    assert ((target >= config.min_level) & (target <= config.max_level)).all()


def test_space_types() -> None:
    assert DiscreteActions().space() == spaces.Discrete(3)
    assert DiscreteActions().space(4) == spaces.MultiDiscrete([3, 3, 3, 3])
    assert MultiDiscreteActions(take_levels=[None, 2.0]).space() == spaces.MultiDiscrete([3, 3, 2])
    assert BoxActions().space() == spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
    assert BoxActions().space(2) == spaces.Box(-1.0, 1.0, shape=(2, 1), dtype=np.float32)


def test_discrete_decodes_by_table() -> None:
    config = DiscreteActions(levels=[-0.5, 0.0, 0.5, 1.0])
    target, stop, take = config.decode(np.array([3, 0, 1, 2]))
    np.testing.assert_array_equal(target, [1.0, -0.5, 0.0, 0.5])
    assert np.isnan(stop).all() and np.isnan(take).all() and stop is not take
    np.testing.assert_array_equal(config.decode(np.int64(2))[0], [0.5])  # one env's scalar action
    with pytest.raises(IndexError):
        config.decode(np.array([4]))


def test_multi_discrete_atr_distances_scale_with_the_atr() -> None:
    config = MultiDiscreteActions()  # stops [None, 1, 2] ATR, takes [None, 2, 4] ATR
    actions = np.array([[2, 1, 2], [0, 2, 0], [1, 0, 1]])
    target, stop, take = config.decode(actions, np.array([0.01, 0.02, 0.005]))
    np.testing.assert_array_equal(target, [1.0, -1.0, 0.0])
    np.testing.assert_allclose(stop, [0.01, 0.04, NAN], rtol=1e-15)
    np.testing.assert_allclose(take, [0.04, NAN, 0.01], rtol=1e-15)
    with pytest.raises(ValueError, match="atr_fraction"):
        config.decode(actions)


def test_multi_discrete_percent_distances_ignore_the_atr() -> None:
    config = MultiDiscreteActions(levels=[0.0, 1.0], stop_levels=[None, 0.5, 1.5], take_levels=[3.0], unit="percent")
    target, stop, take = config.decode(np.array([[1, 1, 0], [0, 2, 0], [1, 0, 0]]))
    np.testing.assert_array_equal(target, [1.0, 0.0, 1.0])
    np.testing.assert_allclose(stop, [0.005, 0.015, NAN], rtol=1e-15)
    np.testing.assert_allclose(take, [0.03, 0.03, 0.03], rtol=1e-15)


def test_box_clips_to_its_bounds() -> None:
    config = BoxActions(low=-0.5, high=2.0)
    target, stop, take = config.decode(np.array([[3.0], [-1.0], [0.25]], dtype=np.float32))
    np.testing.assert_array_equal(target, [2.0, -0.5, 0.25])
    assert np.isnan(stop).all() and np.isnan(take).all()
    np.testing.assert_array_equal(config.decode(np.array([1.5], dtype=np.float32))[0], [1.5])  # one env


def test_discrete_masks_hide_short_levels_without_shorting() -> None:
    config = DiscreteActions(levels=[-1.0, -0.5, 0.0, 1.0])
    np.testing.assert_array_equal(config.action_masks(2, allow_short=False), [[False, False, True, True]] * 2)
    np.testing.assert_array_equal(config.action_masks(3, allow_short=True), np.ones((3, 4), dtype=bool))
    with pytest.raises(ValueError, match="every position level"):
        DiscreteActions(levels=[-1.0, -0.5]).action_masks(1, allow_short=False)


def test_multi_discrete_masks_are_flat_per_dimension() -> None:
    config = MultiDiscreteActions(levels=[-1.0, 0.0, 0.5, 1.0], take_levels=[None, 2.0])
    masks = config.action_masks(2, allow_short=False)
    assert masks.shape == (2, 4 + 3 + 2) and masks.dtype == bool
    np.testing.assert_array_equal(masks[1], [False, True, True, True] + [True] * 3 + [True] * 2)
    assert config.action_masks(2, allow_short=True).all()


@pytest.mark.parametrize(
    ("config", "low", "high"),
    [
        pytest.param(DiscreteActions(), -1.0, 1.0, id="discrete"),
        pytest.param(MultiDiscreteActions(levels=[0.0, 0.5, 2.0]), 0.0, 2.0, id="multi_discrete"),
        pytest.param(BoxActions(low=0.0, high=3.0), 0.0, 3.0, id="box"),
    ],
)
def test_min_and_max_levels(config: ActionConfig, low: float, high: float) -> None:
    assert (config.min_level, config.max_level) == (low, high)


@pytest.mark.parametrize(
    ("raw", "field", "message"),
    [
        ({"kind": "discrete", "levels": []}, "levels", "at least 1 item"),
        ({"kind": "discrete", "levels": [0.0, -1.0]}, "levels", "sorted ascending without repeats"),
        ({"kind": "discrete", "levels": [0.0, 0.0, 1.0]}, "levels", "sorted ascending without repeats"),
        ({"kind": "discrete", "levels": [0.0, "nan"]}, "levels.1", "finite number"),
        ({"kind": "multi_discrete", "stop_levels": [1.0, None]}, "stop_levels", "as the first level"),
        ({"kind": "multi_discrete", "take_levels": [None, 3.0, 2.0]}, "take_levels", "sorted ascending"),
        ({"kind": "multi_discrete", "stop_levels": [None, 0.0]}, "stop_levels.1", "greater than 0"),
        ({"kind": "multi_discrete", "unit": "pips"}, "unit", "'atr' or 'percent'"),
        ({"kind": "box", "low": 1.0, "high": -1.0}, "box", "low must be below high"),
        ({"kind": "box", "hi": 2.0}, "box.hi", "Extra inputs are not permitted"),
        ({"kind": "grid"}, "actions", "does not match any of the expected tags"),
    ],
)
def test_invalid_configs_name_the_field(raw: dict[str, object], field: str, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        Holder.model_validate({"actions": raw})
    (error,) = info.value.errors()
    location = ".".join(str(p) for p in error["loc"])
    assert location.startswith("actions") and location.endswith(field) and message in error["msg"], error


def test_configs_are_immutable() -> None:
    config = DiscreteActions()
    with pytest.raises(ValidationError, match="frozen"):
        config.levels = (0.0, 1.0)  # type: ignore[misc]
    assert isinstance(config.levels, tuple)  # no in-place edit can desynchronize the lookup table


def test_json_schema_and_round_trip() -> None:
    schema = Holder.model_json_schema()
    union = schema["properties"]["actions"]
    assert union["discriminator"]["propertyName"] == "kind"
    assert set(union["discriminator"]["mapping"]) == {"discrete", "multi_discrete", "box"}
    assert schema["$defs"]["MultiDiscreteActions"]["properties"]["unit"]["enum"] == ["atr", "percent"]
    for config in CONFIGS:
        holder = Holder(actions=config)
        again = Holder.model_validate_json(holder.model_dump_json())
        assert again == holder and type(again.actions) is type(config)
