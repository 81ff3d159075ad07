"""RunPod serverless for lightweight jobs (a backtest, a feature matrix, a baseline), through the ``runpod`` SDK.

The worker side is :func:`handler`, started by ``python -m tradelab.compute.runpod_serverless``; the SDK's local
modes work as usual: ``--test_input '{"input": {...}}'`` runs one job and exits (0, or 1 when the job failed),
``--rp_serve_api --rp_api_port N`` serves the SDK's development API. Job inputs (``{"input": {"task": ...}}``):

- ``{"task": "backtest", "run_url": URL, "split": "test"}``: a saved run's model beside the baselines on a split
  (``train``, ``val``, ``test``) or a date range ``START..END``, as ``tradelab evaluate`` does;
- ``{"task": "features", "symbol": S, "timeframe": "1m", "tools": [FeatureSpec...], "start": T, "end": T,
  "out_url": URL}``: a feature matrix, as ``tradelab tools compute`` does, written as Parquet to ``out_url``
  when given;
- ``{"task": "baseline", "env": EnvConfig, "baseline": "buy_and_hold", "dates": "START..END", "seed": 0}``:
  one baseline played over the env's segment, or over a date range of its dataset (warmed up on earlier bars,
  as a backtest's date range is).

A job returns a JSON object whose non-finite floats are null; bad input or data returns ``{"error": message}``
(the SDK marks the job FAILED) naming the field. :class:`ServerlessClient` submits jobs to an endpoint and
waits for them.
"""

from __future__ import annotations

import contextlib
import json
import math
import posixpath
import time
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

import numpy as np
import polars as pl
import requests
import runpod
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from runpod.endpoint.helpers import is_completed
from runpod.endpoint.runner import Job

from tradelab.data.errors import DataError
from tradelab.data.store import Store
from tradelab.env.config import EnvConfig
from tradelab.env.market import EnvDataError, MarketData
from tradelab.experiments.artifacts import RunStorage
from tradelab.experiments.config import ConfigError
from tradelab.experiments.evaluation import BASELINES, evaluation_env, play, segment
from tradelab.plugins import field_errors
from tradelab.settings import get_settings
from tradelab.tools.errors import ToolError
from tradelab.tools.features import FeaturePipeline, FeatureSpec

#: The names of :data:`~tradelab.experiments.evaluation.BASELINES`.
BaselineName = Literal["buy_and_hold", "flat", "random", "sma_crossover"]

_RANGE = r"^.+\.\..+$"
_STRICT = ConfigDict(extra="forbid")


class BacktestJob(BaseModel):
    """Evaluate a saved run's model beside the baselines (see :mod:`tradelab.experiments.reevaluation`)."""

    model_config = _STRICT

    task: Literal["backtest"]
    run_url: str = Field(min_length=1, description="the run's artifact folder (local path or fsspec URL)")
    split: str = Field("test", pattern=r"^(train|val|test)$|" + _RANGE, description="train, val, test or START..END")


class FeaturesJob(BaseModel):
    """Compute feature specs over a stored dataset (see :meth:`FeaturePipeline.compute_dataset`)."""

    model_config = _STRICT

    task: Literal["features"]
    symbol: str = Field(min_length=1, description="dataset symbol")
    timeframe: str = Field("1m", description="dataset bar length")
    tools: list[FeatureSpec] = Field(min_length=1, description="feature specs (tool, params, as, norm)")
    start: str | None = Field(None, description="first bar (UTC, inclusive); the dataset's first when null")
    end: str | None = Field(None, description="end (UTC, exclusive); past the dataset's last bar when null")
    out_url: str | None = Field(
        None, pattern=r"[^/]$", description="write ts + feature columns to this Parquet file (path or fsspec URL)"
    )


class BaselineJob(BaseModel):
    """Play one baseline policy with an env config's execution model."""

    model_config = _STRICT

    task: Literal["baseline"]
    env: EnvConfig = Field(description="the env config, as the env CLI reads it")
    baseline: BaselineName = Field("buy_and_hold", description="the policy (tradelab.experiments.evaluation.BASELINES)")
    dates: str | None = Field(None, pattern=_RANGE, description="START..END (UTC); the env's own segment when null")
    seed: int = Field(0, ge=0, description="episode seed (the random baseline samples with it)")


JobInput = Annotated[BacktestJob | FeaturesJob | BaselineJob, Field(discriminator="task")]
_JOB_INPUT: TypeAdapter[BacktestJob | FeaturesJob | BaselineJob] = TypeAdapter(JobInput)


def handler(job: dict[str, Any]) -> dict[str, Any]:
    """The RunPod handler: run ``job["input"]``; ``{"error": message}`` for bad input or data."""
    try:
        request = _JOB_INPUT.validate_python(job.get("input"))
    except ValidationError as exc:
        return {"error": f"invalid job input: {field_errors(exc, root='input')}"}
    try:
        if isinstance(request, BacktestJob):
            return json_safe(backtest(request))
        if isinstance(request, FeaturesJob):
            return json_safe(features(request))
        return json_safe(baseline(request))
    except (DataError, ToolError, EnvDataError, ConfigError, FileNotFoundError) as exc:
        return {"error": f"{request.task} failed: {exc}"}


def backtest(job: BacktestJob) -> dict[str, Any]:
    """The run's name, seed, fold and split, ``metrics`` (policy -> metrics), the agent's Sharpe CI and moments."""
    from tradelab.experiments.reevaluation import evaluate_run, split_label  # torch and SB3 load only here

    results = evaluate_run(job.run_url, job.split)
    return {**results, "metrics": results.pop(split_label(job.split))}


def features(job: FeaturesJob) -> dict[str, Any]:
    """The matrix's shape, columns, warm-up and dataset version; written to ``out_url`` when given."""
    store = Store()
    version = store.require(job.symbol, job.timeframe).content_hash
    matrix = FeaturePipeline(job.tools).compute_dataset(store, job.symbol, job.timeframe, job.start, job.end)
    if job.out_url is not None:
        frame = pl.DataFrame(
            {"ts": matrix.ts, **{c: matrix.values[:, i] for i, c in enumerate(matrix.columns)}}
        ).with_columns(pl.col("ts").cast(pl.Datetime("ms", "UTC")))
        folder, name = posixpath.split(job.out_url)
        RunStorage(folder or ".").write_parquet(name, frame)
    return {
        "dataset": f"{job.symbol}/{job.timeframe}",
        "dataset_version": version,
        "shape": list(matrix.values.shape),
        "columns": matrix.columns,
        "warmup": matrix.warmup,
        "out_url": job.out_url,
    }


def baseline(job: BaselineJob) -> dict[str, Any]:
    """The baseline's name, the dataset, the bars played and the metrics of its pass."""
    market = MarketData.from_store(job.env)
    first, last = market.first_row, market.last_row
    if job.dates is not None:
        from tradelab.experiments.reevaluation import split_rows  # torch and SB3 load only here

        first, last = split_rows(job.dates, {}, market.ts)
    env = evaluation_env(job.env, segment(market, first, last))
    episode = play(env, BASELINES[job.baseline](env), job.baseline, job.seed)
    return {
        "baseline": job.baseline,
        "dataset": market.dataset,
        "dates": job.dates,
        "bars": last - first + 1,
        "metrics": episode.metrics(job.env.dataset.timeframe, job.env.gaps.max_fill_bars).as_dict(),
    }


def json_safe(value: Any) -> Any:
    """``value`` with numpy numbers as Python numbers and non-finite floats as None (strict JSON)."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class ServerlessJobError(RuntimeError):
    """A serverless job failed, returned an error, or did not finish in time."""


class ServerlessClient:
    """Submits jobs to a RunPod serverless endpoint running :func:`handler` and waits for their output.

    :param endpoint_id: the endpoint's id (URLs are ``{runpod.endpoint_url_base}/{endpoint_id}/...``).
    :param api_key: the account's API key; ``TRADELAB_RUNPOD_API_KEY``, then ``runpod.api_key`` when None.
    :param timeout_s: how long a job may take, queueing included; it is cancelled past it.
    :param poll_s: wait between two status requests.
    :param sync: submit through ``/runsync`` (the answer waits for the job; still polled if RunPod answers before
        the end) instead of ``/run``. The SDK's development server (``--rp_serve_api``) needs it: it only runs
        jobs on ``POST /runsync`` and ``POST /status``, while the SDK reads the status with GET.
    """

    def __init__(
        self,
        endpoint_id: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 600,
        poll_s: float = 1.0,
        sync: bool = False,
    ) -> None:
        configured = get_settings().runpod_api_key
        key = api_key or (configured.get_secret_value() if configured is not None else None)
        self.endpoint = runpod.Endpoint(endpoint_id, api_key=key)
        self.timeout_s = timeout_s
        self.poll_s = poll_s
        self.sync = sync

    def backtest(self, run_url: str, split: str = "test") -> dict[str, Any]:
        """A saved run's metrics and the baselines' on ``split`` (``train``, ``val``, ``test`` or START..END)."""
        return self.submit(BacktestJob(task="backtest", run_url=run_url, split=split).model_dump(mode="json"))

    def features(
        self,
        symbol: str,
        tools: Sequence[FeatureSpec | Mapping[str, Any]],
        *,
        timeframe: str = "1m",
        start: str | None = None,
        end: str | None = None,
        out_url: str | None = None,
    ) -> dict[str, Any]:
        """Compute ``tools`` over a stored dataset; shape, columns, warm-up and dataset version of the matrix."""
        job = FeaturesJob.model_validate(
            {"task": "features", "symbol": symbol, "timeframe": timeframe, "tools": list(tools)}
            | {"start": start, "end": end, "out_url": out_url}
        )
        return self.submit(job.model_dump(mode="json"))

    def baseline(
        self,
        env: EnvConfig | Mapping[str, Any],
        baseline: BaselineName = "buy_and_hold",
        *,
        dates: str | None = None,
        seed: int = 0,
    ) -> dict[str, Any]:
        """Play ``baseline`` with ``env``'s execution model over its segment or the range ``dates``."""
        job = BaselineJob.model_validate(
            {"task": "baseline", "env": env, "baseline": baseline, "dates": dates, "seed": seed}
        )
        return self.submit(job.model_dump(mode="json"))

    def submit(self, job_input: Mapping[str, Any]) -> dict[str, Any]:
        """Run one job and return its output.

        :raises ServerlessJobError: when the job fails, returns ``{"error": ...}``, or runs past ``timeout_s``.
        """
        deadline = time.monotonic() + self.timeout_s
        client, endpoint_id = self.endpoint.rp_client, self.endpoint.endpoint_id
        try:
            if self.sync:
                state = client.post(f"{endpoint_id}/runsync", {"input": dict(job_input)}, timeout=self.timeout_s)
            else:
                state = {"id": self.endpoint.run({"input": dict(job_input)}).job_id, "status": "IN_QUEUE"}
            # The SDK's Job.status() and Job.output() drop the error of a failed job: read the raw status instead.
            while not is_completed(state["status"]):
                if time.monotonic() >= deadline:
                    self._cancel(state["id"])
                    raise ServerlessJobError(f"job {state['id']} did not finish within {self.timeout_s:g} s")
                time.sleep(self.poll_s)
                state = client.get(f"{endpoint_id}/status/{state['id']}")
        except requests.Timeout:
            raise ServerlessJobError(f"the job did not finish within {self.timeout_s:g} s") from None
        output = state.get("output")
        error = state.get("error") or (output.get("error") if isinstance(output, dict) else None)
        if state["status"] != "COMPLETED" or error:
            reason = f": {_error_message(error)}" if error else ""
            raise ServerlessJobError(f"job {state.get('id')} {state['status']}{reason}")
        return output

    def _cancel(self, job_id: str) -> None:
        """Cancel a job, best effort (the SDK's development server has no cancel route)."""
        with contextlib.suppress(requests.RequestException):
            Job(self.endpoint.endpoint_id, job_id, self.endpoint.rp_client).cancel()


def _error_message(error: Any) -> str:
    """A job's error: the handler's message, or ``Type: message`` of an exception the SDK caught (a JSON text)."""
    if not isinstance(error, str):
        return str(error)
    try:
        info = json.loads(error)
    except json.JSONDecodeError:
        return error
    if isinstance(info, dict) and "error_message" in info:
        return f"{info.get('error_type', 'error')}: {info['error_message']}"
    return error


if __name__ == "__main__":
    runpod.serverless.start({"handler": handler})
