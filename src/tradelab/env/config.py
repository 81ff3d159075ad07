"""The env's configuration: one pydantic model, :class:`EnvConfig`, whose JSON Schema the UI and the API show.

It names the data (dataset, range, split, how gaps in the bars are handled), the features and window of
the observation, the action scheme, the execution model, risk controls, the reward, the episodes and the
initial cash. Every
nested model forbids unknown keys, so a typo in a config file is an error, not a silent default.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tradelab.data.gaps import GapPolicy
from tradelab.data.schema import TimeLike, to_datetime
from tradelab.env.actions import ActionConfig, DiscreteActions
from tradelab.env.execution import ExecutionConfig
from tradelab.env.rewards import DEFAULT_REWARD, RewardSpec
from tradelab.tools.features import FeatureSpec

_FROZEN = ConfigDict(extra="forbid", frozen=True)

#: The features when a config names none: OHLCV-derived, scale-free, and a clock; about 300 bars of warm-up.
DEFAULT_FEATURES: tuple[FeatureSpec, ...] = (
    FeatureSpec(tool="log_return", as_="ret_1", norm="zscore", norm_window=240),
    FeatureSpec(tool="log_return", params={"periods": 15}, as_="ret_15", norm="zscore", norm_window=240),
    FeatureSpec(tool="realized_vol", params={"window": 60}, as_="vol_60", norm="zscore", norm_window=240),
    FeatureSpec(tool="zscore", params={"window": 120}, as_="close_z"),
    FeatureSpec(tool="volume_zscore", params={"window": 120}, as_="volume_z"),
    FeatureSpec(tool="time_of_day"),
)


class SplitFractions(BaseModel):
    """A chronological train / val / test split by fractions of the bars, oldest first."""

    model_config = _FROZEN

    train: float = Field(0.7, gt=0.0, le=1.0, description="fraction of the bars in the train segment")
    val: float = Field(0.15, ge=0.0, le=1.0, description="fraction in the validation segment (0: none)")
    test: float = Field(0.15, gt=0.0, le=1.0, description="fraction in the test segment, the newest bars")
    embargo_bars: int = Field(0, ge=0, description="bars dropped between consecutive segments")


class SplitConfig(SplitFractions):
    """One segment of a chronological split of the loaded range, the one episodes are drawn from.

    Features are computed over the whole range (per stretch between gaps, see ``EnvConfig.gaps``) and
    episodes stay inside the chosen segment, so indicator warm-up draws on the bars before it (causal: no
    leakage) and no bar is lost to it, unless a gap restarts the warm-up inside the segment.
    """

    name: Literal["train", "val", "test"] = Field(description="the segment episodes are drawn from")


class DatasetConfig(BaseModel):
    """Which bars the env trades on."""

    model_config = _FROZEN

    symbol: str = Field(description="dataset symbol in the store, e.g. BTCUSDT")
    timeframe: str = Field("1m", description="bar length, e.g. 1m, 15m, 1h")
    version: str | None = Field(
        None,
        min_length=4,
        description="expected content hash of the dataset (a prefix is enough); null for whatever is stored",
    )
    start: TimeLike | None = Field(None, description="first bar (UTC, inclusive); the dataset's first when null")
    end: TimeLike | None = Field(None, description="end (UTC, exclusive); past the dataset's last bar when null")
    split: SplitConfig | None = Field(None, description="restrict episodes to one chronological segment")

    @field_validator("start", "end")
    @classmethod
    def _parses_as_time(cls, value: TimeLike | None) -> TimeLike | None:
        """Refuse a time that cannot be parsed now, not when the env is built (the value is kept as given)."""
        if value is not None:
            to_datetime(value)  # DataError is a ValueError: pydantic reports it at the field
        return value


class RiskConfig(BaseModel):
    """Controls that end an episode early (``terminated``)."""

    model_config = _FROZEN

    max_drawdown: float | None = Field(
        None,
        gt=0.0,
        lt=1.0,
        description="terminate when 1 - equity / peak equity exceeds this; null: only bankruptcy terminates",
    )


class EpisodeConfig(BaseModel):
    """How an episode is placed in the data."""

    model_config = _FROZEN

    mode: Literal["random", "full"] = Field(
        "random",
        description="random: a seeded random start and a fixed length, inside one stretch of bars without a gap; "
        "full: one pass over a stretch, the next reset continuing with the next stretch (a seed restarts at the first)",
    )
    length: int = Field(1440, ge=1, description="decisions per episode in random mode (ignored in full mode)")
    trade_log: bool = Field(
        True,
        description="record every fill so the last step's info holds the episode's trades; turn it off for large "
        "vectorized training runs (the log takes 48 bytes per fill per env until the episode ends)",
    )


class EnvConfig(BaseModel):
    """Everything a :class:`~tradelab.env.trading_env.TradingEnv` or a vector env is built from."""

    model_config = _FROZEN

    dataset: DatasetConfig = Field(description="the bars")
    gaps: GapPolicy = Field(
        default_factory=GapPolicy,
        description="gaps in the bars: longer ones cut the data into stretches that episodes and feature warm-ups "
        "never cross (or the data is refused)",
    )
    features: list[FeatureSpec] = Field(
        default_factory=lambda: list(DEFAULT_FEATURES),
        min_length=1,
        description="feature columns of the observation; each spec may carry its own causal normalisation (norm)",
    )
    window: int = Field(32, ge=1, description="bars of features in each observation")
    observation: Literal["box", "dict"] = Field(
        "box", description="box: one flat float32 vector; dict: {'market': (window, features), 'account': (5,)}"
    )
    clip: float | None = Field(
        None,
        gt=0.0,
        allow_inf_nan=False,
        description="clip every observation value to [-clip, clip] and bound the observation space so; None leaves "
        "them unbounded (normalise features with their spec's norm before clipping them)",
    )
    actions: ActionConfig = Field(
        default_factory=lambda: DiscreteActions(levels=(0.0, 1.0)),
        description="action scheme (discrete, multi_discrete or box)",
    )
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig, description="fills, fees, slippage, leverage")
    decision_every: int = Field(
        1,
        ge=1,
        le=1440,
        description="bars between the agent's decisions: a step holds its order for this many bars (stops and "
        "targets still fire inside) and its reward adds up theirs; trading on a slower clock than the bars lets an "
        "agent see that a trade must pay its fees (ADR 0009)",
    )
    atr_period: int = Field(14, ge=1, description="bars of the ATR that stop and take levels in ATR units scale with")
    risk: RiskConfig = Field(default_factory=RiskConfig)
    reward: list[RewardSpec] = Field(
        default_factory=lambda: list(DEFAULT_REWARD), min_length=1, description="weighted reward components"
    )
    episode: EpisodeConfig = Field(default_factory=EpisodeConfig)
    initial_cash: float = Field(10_000.0, gt=0.0, allow_inf_nan=False, description="starting equity, quote currency")

    @model_validator(mode="after")
    def _actions_fit_execution(self) -> EnvConfig:
        if self.actions.min_level < 0 and not self.execution.allow_short:
            raise ValueError(
                f"the action scheme can go short (lowest level {self.actions.min_level}) but execution.allow_short "
                "is false: allow shorting or use non-negative levels"
            )
        if max(abs(self.actions.min_level), abs(self.actions.max_level)) > self.execution.max_leverage:
            raise ValueError(
                f"the action scheme asks for positions up to {max(abs(self.actions.min_level), self.actions.max_level)}"
                f" × equity, beyond execution.max_leverage {self.execution.max_leverage}"
            )
        return self
