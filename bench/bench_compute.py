"""Compute benchmark: dataset sync to S3 against a whole-folder fsspec copy, and the reconciler's tick on RunPod.

1. **Dataset sync.** A year of synthetic 1-minute bars (525,600 rows, 13 monthly partitions) is written to a
   temporary store and synced with a real S3-compatible server on loopback (moto's threaded server, through
   s3fs). Ours, ``push_dataset`` / ``pull_dataset`` (only files whose SHA-256 changed move), against what FinRL
   and freqtrade users do with a bucket: re-upload the dataset folder whole with fsspec's recursive ``put``, and
   download it whole with ``get`` (the AWS CLI's ``s3 sync`` is not available without the AWS CLI). Measured:
   the first full push and pull, then, after one more day of bars is appended (rewriting December's
   partition), the incremental push and pull (median of 6 each, after an untimed warm-up), time and bytes.
2. **Reconciler overhead.** 10, then 50 runs active on pods of the fake RunPod (the real ``runpod`` SDK over
   loopback; each pod's container is a process that sleeps): the wall time of one ``Reconciler.tick()`` over a
   SQLite database, and the RunPod API calls it makes, with ticks a second apart as ``tradelab worker`` runs
   them. Nothing else drives cloud pods, so there is no peer.

Every pod is terminated through the reconciler (runs cancelled) before the fake stops. Prints a table and
writes ``bench/results/compute.json``; the exit status is 0 even when a goal is missed.

Usage: ``.venv/bin/python bench/bench_compute.py``.

.. note:: On loopback, bandwidth is nearly free and latency nil, so the time ratios understate what the bytes
    ratios mean over a real link to a bucket.
"""

from __future__ import annotations

import contextlib
import logging
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from bench_report import RESULTS_DIR, Row, progress_steps, report

RESULTS = RESULTS_DIR / "compute.json"
SYMBOL, TIMEFRAME = "BENCH", "1m"
#: A year (365 days) from here ends on 2023-12-24; each appended day rewrites December 2023's partition.
START, YEAR_DAYS = "2022-12-25", 365
REPEATS = 6  # timed repeats of each sync; one more untimed warm-up round comes first
BUCKET, REGION, KEY = "bench", "us-east-1", "testing"
S3_ENV = {
    "TRADELAB_S3_REGION": REGION,
    "TRADELAB_S3_ACCESS_KEY_ID": KEY,
    "TRADELAB_S3_SECRET_ACCESS_KEY": KEY,
}
FULL_PUSH, FULL_PULL = "S3 push, full", "S3 pull, full"
DAY_PUSH, DAY_PULL = "S3 push, +1 day", "S3 pull, +1 day"
ACTIVE_RUNS = (10, 50)
TICKS = 7  # timed ticks per N, after one untimed
INTERVAL_S = 1.0  # the worker's default tick interval
GPU = "NVIDIA GeForce RTX 4090"
POD_ENTRYPOINT = [sys.executable, "-c", "import time; time.sleep(600)"]
Step = Callable[[str, int], Callable[[], None]]
T = TypeVar("T")


class ComputeRow(Row):
    """A report row that also shows megabytes to two decimals and API call counts."""

    def show(self, value: float) -> str:
        """``value`` with the unit, to a useful precision."""
        decimals = {"MB": 2, "calls": 1}.get(self.unit)
        return f"{value:.{decimals}f} {self.unit}" if decimals is not None else super().show(value)


@dataclass
class Sync:
    """One transfer's samples: seconds and bytes moved, for ours and the peer."""

    ours_s: list[float]
    peer_s: list[float]
    ours_bytes: list[int]
    peer_bytes: list[int]


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables (and re-read tradelab's settings) for the block; restore them after."""
    from tradelab.settings import get_settings

    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    get_settings.cache_clear()
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        get_settings.cache_clear()


@contextlib.contextmanager
def s3_server() -> Iterator[str]:
    """A moto S3 server on loopback with an empty bucket, and tradelab's settings pointing at it; its URL."""
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's server logs every request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        client = boto3.client(
            "s3", endpoint_url=endpoint, region_name=REGION, aws_access_key_id=KEY, aws_secret_access_key=KEY
        )
        client.create_bucket(Bucket=BUCKET)
        with environment({**S3_ENV, "TRADELAB_S3_ENDPOINT_URL": endpoint}):
            yield endpoint
    finally:
        server.stop()


def folder_bytes(folder: Path) -> int:
    """The total size of the files under ``folder``."""
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def clock(call: Callable[..., T], *args: Any) -> tuple[float, T]:
    """Seconds one ``call(*args)`` took, and its result."""
    started = time.perf_counter()
    result = call(*args)
    return time.perf_counter() - started, result


def bench_sync(step: Step, tmp: Path) -> tuple[dict[str, Sync], dict[str, Any]]:
    """Full and incremental push and pull, ours against the peer's whole-folder ``put``/``get``.

    :return: the samples by transfer, and facts about the dataset (rows, files, bytes, incremental reports).
    :raises RuntimeError: when a sync does not leave an identical copy, or moves other than what changed.
    """
    from tradelab.compute.storage import filesystem, pull_dataset, push_dataset
    from tradelab.data.ingest.synth import generate_bars
    from tradelab.data.store import Store

    advance = step("generate a year of 1m bars (+ days to append)", 1)
    bars = generate_bars(YEAR_DAYS + REPEATS + 1, seed=0, start=START, gaps=False)
    year_rows = YEAR_DAYS * 1440
    store = Store(tmp / "home")
    store.write(SYMBOL, TIMEFRAME, bars.head(year_rows))
    folder = store.dataset_dir(SYMBOL, TIMEFRAME)
    manifest = store.require(SYMBOL, TIMEFRAME)
    facts: dict[str, Any] = {"rows": year_rows, "partitions": len(manifest.partitions), "bytes": folder_bytes(folder)}
    advance()

    syncs = {name: Sync([], [], [], []) for name in (FULL_PUSH, FULL_PULL, DAY_PUSH, DAY_PULL)}
    with s3_server():
        fs, _ = filesystem(f"s3://{BUCKET}")

        def peer_put(prefix: str) -> tuple[float, int]:
            with contextlib.suppress(FileNotFoundError):  # the peer's copy is replaced whole, stale files too
                fs.rm(prefix, recursive=True)
            seconds, _ = clock(lambda: fs.put(f"{folder}/", f"{prefix}/", recursive=True))
            return seconds, folder_bytes(folder)

        def peer_get(prefix: str, target: Path) -> tuple[float, int]:
            fs.invalidate_cache()
            nbytes = int(fs.du(prefix))  # everything under the prefix is downloaded, over the local copy
            target.mkdir(parents=True, exist_ok=True)
            seconds, _ = clock(lambda: fs.get(f"{prefix}/", f"{target}/", recursive=True))
            return seconds, nbytes

        advance = step("S3: first full push and pull, ours and fsspec", REPEATS + 1)
        for run in range(REPEATS + 1):  # the first round warms connections and imports up and is not timed
            url, prefix = f"s3://{BUCKET}/full-{run}", f"{BUCKET}/peer-full-{run}/{SYMBOL}/{TIMEFRAME}"
            push_s, pushed = clock(push_dataset, SYMBOL, TIMEFRAME, url, store)
            put_s, put_bytes = peer_put(prefix)
            home = Store(tmp / f"pull-{run}")
            pull_s, pulled = clock(pull_dataset, SYMBOL, TIMEFRAME, url, home)
            get_s, get_bytes = peer_get(prefix, tmp / f"get-{run}")
            if home.require(SYMBOL, TIMEFRAME).version != manifest.version:
                raise RuntimeError("the full pull did not reproduce the pushed dataset")
            if run:
                _add(syncs[FULL_PUSH], push_s, put_s, pushed.nbytes, put_bytes)
                _add(syncs[FULL_PULL], pull_s, get_s, pulled.nbytes, get_bytes)
            fs.rm(f"{BUCKET}/full-{run}", recursive=True)
            fs.rm(prefix, recursive=True)
            advance()

        # The incremental rounds: both sides start in sync, then each round appends one day to the store.
        url, prefix = f"s3://{BUCKET}/lab", f"{BUCKET}/peer/{SYMBOL}/{TIMEFRAME}"
        mirror = Store(tmp / "mirror")
        push_dataset(SYMBOL, TIMEFRAME, url, store)
        pull_dataset(SYMBOL, TIMEFRAME, url, mirror)
        peer_put(prefix)
        peer_get(prefix, tmp / "peer-mirror")
        advance = step("S3: append a day, incremental push and pull", REPEATS + 1)
        reports = []
        for run in range(REPEATS + 1):
            day = bars.slice(year_rows + run * 1440, 1440)
            if store.write(SYMBOL, TIMEFRAME, day).rewritten_partitions != 1:
                raise RuntimeError("appending a day should rewrite one partition")
            push_s, pushed = clock(push_dataset, SYMBOL, TIMEFRAME, url, store)
            put_s, put_bytes = peer_put(prefix)
            pull_s, pulled = clock(pull_dataset, SYMBOL, TIMEFRAME, url, mirror)
            get_s, get_bytes = peer_get(prefix, tmp / "peer-mirror")
            if mirror.require(SYMBOL, TIMEFRAME).version != store.require(SYMBOL, TIMEFRAME).version:
                raise RuntimeError("the incremental pull did not reproduce the pushed dataset")
            if run:
                _add(syncs[DAY_PUSH], push_s, put_s, pushed.nbytes, put_bytes)
                _add(syncs[DAY_PULL], pull_s, get_s, pulled.nbytes, get_bytes)
                reports += [pushed, pulled]
            advance()
    # Only December's partition and the manifest move; the other 12 partitions are skipped.
    facts["incremental_only_changed"] = all(
        r.transferred == 2 and r.skipped == len(manifest.partitions) - 1 for r in reports
    )
    facts["incremental_reports"] = [
        {"transferred": r.transferred, "skipped": r.skipped, "nbytes": r.nbytes} for r in reports
    ]
    return syncs, facts


def _add(sync: Sync, ours_s: float, peer_s: float, ours_bytes: int, peer_bytes: int) -> None:
    sync.ours_s.append(ours_s)
    sync.peer_s.append(peer_s)
    sync.ours_bytes.append(ours_bytes)
    sync.peer_bytes.append(peer_bytes)


def sync_rows(syncs: dict[str, Sync], only_changed: bool) -> list[Row]:
    """Time and bytes rows for each transfer (the ratio is the peer's over ours)."""
    rows: list[Row] = []
    for name, sync in syncs.items():
        incremental = name in (DAY_PUSH, DAY_PULL)
        ms = statistics.median(sync.ours_s) * 1000
        peer_ms = statistics.median(sync.peer_s) * 1000
        megabytes = statistics.median(sync.ours_bytes) / 1e6
        peer_megabytes = statistics.median(sync.peer_bytes) / 1e6
        time_goal = "faster than the peer" if incremental else "reference"
        bytes_goal = "changed month + manifest" if incremental else "reference"
        rows += [
            ComputeRow(
                f"{name}: time",
                "ms",
                ms,
                time_goal,
                ms < peer_ms if incremental else None,
                peer=peer_ms,
                samples_ours=sync.ours_s,
                samples_peer=sync.peer_s,
            ),
            ComputeRow(
                f"{name}: bytes",
                "MB",
                megabytes,
                bytes_goal,
                only_changed if incremental else None,
                peer=peer_megabytes,
            ),
        ]
    return rows


def queue_runs(url: str, count: int) -> list[int]:
    """``count`` runs queued on the RunPod backend with a max wall time of 1 h; their ids."""
    from tradelab.server.db import make_engine, session_factory, transaction
    from tradelab.server.models import Experiment, Run

    engine = make_engine(url)
    with transaction(session_factory(engine)) as session:
        experiment = Experiment(name="bench-reconciler", config={"name": "bench-reconciler"})
        session.add(experiment)
        session.flush()
        runs = [
            Run(experiment_id=experiment.id, seed=i, backend="runpod", max_wall_time_s=3600.0) for i in range(count)
        ]
        session.add_all(runs)
        session.flush()
        ids = [r.id for r in runs]
    engine.dispose()
    return ids


def cancel_all(url: str) -> None:
    """Ask every run to be cancelled (the next tick terminates their pods)."""
    from sqlalchemy import update

    from tradelab.server.db import make_engine, session_factory, transaction
    from tradelab.server.models import Run

    engine = make_engine(url)
    with transaction(session_factory(engine)) as session:
        session.execute(update(Run).values(cancel_requested=True))
    engine.dispose()


def bench_reconciler(active: int, step: Step, tmp: Path) -> tuple[list[float], list[int]]:
    """Seconds per tick and RunPod API calls per tick with ``active`` runs on running pods of the fake.

    :raises RuntimeError: when the pods do not all start, or a pod is still live after the runs are cancelled.
    """
    from tradelab.compute.fake_runpod import FakeRunPod
    from tradelab.compute.runpod_pods import RunPodBackend, RunPodConfig
    from tradelab.server.db import make_engine, upgrade
    from tradelab.server.worker import Reconciler, WorkerConfig

    folder = tmp / f"reconciler-{active}"
    url = f"sqlite:///{folder / 'control.db'}"
    upgrade(url)
    queue_runs(url, active)
    advance = step(f"reconciler: {active} runs on fake RunPod pods, ticks", TICKS + 2)
    fake_runpod = FakeRunPod(folder / "runpod", start_delay_s=0.05, entrypoint=POD_ENTRYPOINT)
    with fake_runpod as fake, environment({"RUNPOD_API_BASE_URL": fake_runpod.url}):
        backend = RunPodBackend(RunPodConfig(image="tradelab:bench", gpu_type=GPU, retries=3, backoff_s=0.01), "rp")
        config = WorkerConfig(concurrency=active, storage_url=(folder / "artifacts").as_uri())
        engine = make_engine(url)
        worker = Reconciler(engine, backend, config)
        try:
            worker.tick()  # claims every run and creates its pod
            fake.wait_for(lambda: sum(p.running for p in fake.pods()) == active, timeout=60.0)
            advance()
            worker.tick()  # untimed: the first tick that watches every pod
            seconds: list[float] = []
            calls: list[int] = []
            for _ in range(TICKS):
                time.sleep(INTERVAL_S)  # as `tradelab worker` ticks: each tick sees a fresh listing of the pods
                before = Counter(fake.calls)
                elapsed, report = clock(worker.tick)
                if report.claimed or report.started or report.ended or report.reaped:
                    raise RuntimeError(f"a timed tick changed something: {report}")
                seconds.append(elapsed)
                calls.append((fake.calls - before).total())
                advance()
        finally:
            cancel_all(url)
            deadline = time.monotonic() + 60.0
            while fake.live_pods() and time.monotonic() < deadline:
                worker.tick()
            engine.dispose()
        if fake.live_pods():
            raise RuntimeError(f"{len(fake.live_pods())} pods still live after cancelling every run")
        advance()
    return seconds, calls


def run() -> tuple[list[Row], dict[str, Any]]:
    """Run every measurement with a progress display; return the report rows and extra facts for the JSON."""
    with tempfile.TemporaryDirectory(prefix="bench-compute-") as tmp, progress_steps() as step:
        syncs, facts = bench_sync(step, Path(tmp))
        ticks = {n: bench_reconciler(n, step, Path(tmp)) for n in ACTIVE_RUNS}
    rows = sync_rows(syncs, facts["incremental_only_changed"])
    for n, (seconds, calls) in ticks.items():
        no_peer = "no peer"  # nothing else runs a control plane for cloud pods
        ms = statistics.median(seconds) * 1000
        rows += [
            ComputeRow(f"tick, {n} pods: time", "ms", ms, no_peer, None, samples_ours=seconds),
            ComputeRow(f"tick, {n} pods: RunPod calls", "calls", statistics.median(calls), no_peer, None),
        ]
    facts["calls_per_tick"] = {str(n): calls for n, (_, calls) in ticks.items()}
    return rows, facts


def main() -> None:
    """Run the benchmark and print and save its report."""
    import fsspec
    import moto
    import runpod
    import s3fs

    logging.getLogger().setLevel(logging.WARNING)  # importing runpod sets the root logger to INFO
    rows, facts = run()
    title = f"tradelab compute benchmark: {facts['rows']:,} 1m bars synced to S3, reconciler ticks; medians"
    versions = {"fsspec": fsspec.__version__, "s3fs": s3fs.__version__, "moto": moto.__version__}
    versions["runpod"] = runpod.__version__
    extra = {"dataset": facts, "repeats": REPEATS, "ticks": TICKS, "versions": versions}
    report(title, "fsspec put/get", rows, RESULTS, extra)


if __name__ == "__main__":
    main()
