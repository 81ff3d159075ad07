"""EnvConfig: defaults, JSON round trip and schema, and refusal of inconsistent settings."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from tradelab.env.config import EnvConfig


def test_json_schema_and_round_trip() -> None:
    schema = EnvConfig.model_json_schema()
    assert {"dataset", "features", "window", "actions", "execution", "risk", "reward", "episode"} <= set(
        schema["properties"]
    )
    json.dumps(schema)
    config = EnvConfig(dataset={"symbol": "BTCUSDT"})
    assert EnvConfig.model_validate_json(config.model_dump_json()) == config
    assert config.actions.kind == "discrete" and config.actions.min_level == 0.0  # long-only by default


def test_refuses_short_levels_without_shorting() -> None:
    with pytest.raises(ValidationError, match="allow_short"):
        EnvConfig(dataset={"symbol": "X"}, actions={"kind": "discrete", "levels": [-1, 0, 1]})
    EnvConfig(
        dataset={"symbol": "X"}, actions={"kind": "discrete", "levels": [-1, 0, 1]}, execution={"allow_short": True}
    )


def test_refuses_levels_beyond_leverage_and_unknown_keys() -> None:
    with pytest.raises(ValidationError, match="max_leverage"):
        EnvConfig(dataset={"symbol": "X"}, actions={"kind": "box", "low": 0, "high": 2})
    with pytest.raises(ValidationError, match="extra"):
        EnvConfig(dataset={"symbol": "X"}, episode={"lenght": 10})


def test_refuses_a_dataset_range_time_that_does_not_parse_and_keeps_the_ones_that_do() -> None:
    with pytest.raises(ValidationError) as error:
        EnvConfig(dataset={"symbol": "X", "start": "not-a-date", "end": "2024-13-01"})
    assert [e["loc"] for e in error.value.errors()] == [("dataset", "start"), ("dataset", "end")]
    assert "cannot parse time 'not-a-date'" in str(error.value)
    kept = EnvConfig(dataset={"symbol": "X", "start": "2024-03", "end": 1_709_251_200_000})
    assert (kept.dataset.start, kept.dataset.end) == ("2024-03", 1_709_251_200_000)
