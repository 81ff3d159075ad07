"""Dataset push/pull and run folders on object storage: a real S3 API (moto's server on loopback) and file://."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer
from typer.testing import CliRunner

import tradelab.data as td
from tests.bars import make_bars
from tests.conftest import snapshot
from tradelab.atomic import atomic_write
from tradelab.cli import app
from tradelab.compute import storage
from tradelab.compute.storage import HASHES, filesystem, pull_dataset, push_dataset, storage_options
from tradelab.data.errors import DataError
from tradelab.data.store import Store
from tradelab.experiments.artifacts import RunStorage
from tradelab.settings import get_settings

DAY = 24 * 60
BARS = make_bars(3 * DAY, start="2024-01-31")  # January and February: two partitions
MORE = make_bars(DAY, start="2024-02-03", seed=1)  # later February bars: rewrites only February


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def bucket(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh bucket on the moto server, with the TRADELAB_S3_* settings pointing at it."""
    monkeypatch.setenv("TRADELAB_S3_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("TRADELAB_S3_REGION", "us-east-1")
    monkeypatch.setenv("TRADELAB_S3_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("TRADELAB_S3_SECRET_ACCESS_KEY", "testing")
    get_settings.cache_clear()
    name = f"lab-{uuid.uuid4().hex[:12]}"
    boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket=name)
    yield name
    get_settings.cache_clear()


def s3_client() -> object:
    settings = get_settings()
    return boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@dataclass
class Remote:
    """A push/pull destination and direct access to its files (bypassing tradelab)."""

    url: str
    files: Callable[[], dict[str, bytes]]  # relative path -> bytes, under <url>
    overwrite: Callable[[str, bytes], None]


@pytest.fixture(params=["s3", "file"])
def remote(request: pytest.FixtureRequest, tmp_path: Path) -> Remote:
    if request.param == "file":
        root = tmp_path / "remote"
        return Remote(f"file://{root}", lambda: snapshot(root) if root.exists() else {}, _overwrite_file(root))
    name = request.getfixturevalue("bucket")
    client = s3_client()

    def files() -> dict[str, bytes]:
        listed = client.list_objects_v2(Bucket=name).get("Contents", [])  # type: ignore[attr-defined]
        return {
            o["Key"].removeprefix("data/"): client.get_object(Bucket=name, Key=o["Key"])["Body"].read()  # type: ignore[attr-defined]
            for o in listed
        }

    def overwrite(key: str, data: bytes) -> None:
        client.put_object(Bucket=name, Key=f"data/{key}", Body=data)  # type: ignore[attr-defined]

    return Remote(f"s3://{name}/data", files, overwrite)


def _overwrite_file(root: Path) -> Callable[[str, bytes], None]:
    return lambda key, data: (root / key).write_bytes(data)


def dataset_files(store: Store, symbol: str = "X") -> dict[str, bytes]:
    """The dataset's files and bytes, without the lock file."""
    return {k: v for k, v in snapshot(store.dataset_dir(symbol)).items() if k != ".lock"}


def test_push_then_pull_gives_identical_files_and_version(remote: Remote, home: Path, tmp_path: Path) -> None:
    source = Store(tmp_path / "source")
    manifest = source.write("X", "1m", BARS).manifest
    pushed = push_dataset("X", "1m", remote.url, source)
    assert (pushed.transferred, pushed.skipped, pushed.removed) == (3, 0, 0)  # two partitions + the manifest
    assert pushed.version == manifest.version
    local = dataset_files(source)
    assert pushed.nbytes == sum(len(b) for b in local.values())
    on_remote = remote.files()
    assert set(on_remote) == {f"X/1m/{name}" for name in local} | {f"X/1m/{HASHES}"}
    assert all(on_remote[f"X/1m/{name}"] == data for name, data in local.items())

    pulled = pull_dataset("X", "1m", remote.url)  # into the default store of the empty home
    assert (pulled.transferred, pulled.skipped, pulled.version) == (3, 0, manifest.version)
    assert dataset_files(Store()) == local
    assert td.load("X").equals(BARS)
    assert td.info("X").content_hash == manifest.content_hash
    again = pull_dataset("X", "1m", remote.url)
    assert (again.transferred, again.skipped, again.nbytes) == (0, 2, 0)


def test_only_changed_partitions_move_and_stale_ones_are_removed(remote: Remote, tmp_path: Path) -> None:
    source, mirror = Store(tmp_path / "source"), Store(tmp_path / "mirror")
    source.write("X", "1m", BARS)
    push_dataset("X", "1m", remote.url, source)
    pull_dataset("X", "1m", remote.url, mirror)
    second = push_dataset("X", "1m", remote.url, source)
    assert (second.transferred, second.skipped, second.nbytes, second.removed) == (0, 2, 0, 0)

    old = {p.file for p in source.require("X").partitions}
    manifest = source.write("X", "1m", MORE).manifest
    new = {p.file for p in manifest.partitions}
    assert len(old & new) == 1  # January is untouched, February was rewritten
    third = push_dataset("X", "1m", remote.url, source)
    assert (third.transferred, third.skipped, third.removed) == (2, 1, 1)  # February + manifest; old February gone
    on_remote = remote.files()
    assert {k for k in on_remote if k.endswith(".parquet")} == {f"X/1m/{f}" for f in new}
    assert set(json.loads(on_remote[f"X/1m/{HASHES}"])["files"]) == new

    pulled = pull_dataset("X", "1m", remote.url, mirror)
    assert (pulled.transferred, pulled.skipped, pulled.removed) == (2, 1, 1)
    assert dataset_files(mirror) == dataset_files(source)
    assert mirror.load("X").equals(source.load("X"))
    assert not list(mirror.root.glob(".tmp-*"))


def test_push_writes_the_manifest_after_the_files_and_removes_stale_ones_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, root = Store(tmp_path / "source"), tmp_path / "remote"
    source.write("X", "1m", BARS)
    push_dataset("X", "1m", f"file://{root}", source)
    old = {p.file for p in source.require("X").partitions}
    source.write("X", "1m", MORE)
    writes: list[tuple[str, bool]] = []  # (file written, every old partition still on the remote)

    def recording(target: Path, write: Callable[[Path], None], *, fsync: bool = False) -> Path:
        writes.append((target.name, all((root / "X" / "1m" / f).exists() for f in old)))
        return atomic_write(target, write, fsync=fsync)

    monkeypatch.setattr(storage, "atomic_write", recording)
    push_dataset("X", "1m", f"file://{root}", source)
    names = [name for name, _ in writes]
    assert names[-1] == HASHES and "manifest.json" in names  # the index is pruned once stale files are gone
    at = names.index("manifest.json")
    assert all(name.endswith(".parquet") or name == HASHES for name in names[:at]) and names[0].endswith(".parquet")
    assert writes[at][1], "a stale partition was removed before the new manifest was in place"
    assert not any((root / "X" / "1m" / f).exists() for f in old - {p.file for p in source.require("X").partitions})


def test_a_tampered_remote_file_fails_the_pull_and_changes_nothing(remote: Remote, tmp_path: Path) -> None:
    source, mirror = Store(tmp_path / "source"), Store(tmp_path / "mirror")
    source.write("X", "1m", BARS)
    push_dataset("X", "1m", remote.url, source)
    pull_dataset("X", "1m", remote.url, mirror)
    old = {p.file for p in source.require("X").partitions}
    source.write("X", "1m", MORE)
    push_dataset("X", "1m", remote.url, source)
    (changed,) = {p.file for p in source.require("X").partitions} - old
    data = bytearray(remote.files()[f"X/1m/{changed}"])
    data[len(data) // 2] ^= 0xFF
    remote.overwrite(f"X/1m/{changed}", bytes(data))

    before = snapshot(mirror.root)
    with pytest.raises(DataError, match=rf"X/1m/{changed}: SHA-256 .* does not match"):
        pull_dataset("X", "1m", remote.url, mirror)
    assert snapshot(mirror.root) == before
    assert not list(mirror.root.glob(".tmp-*"))


def test_a_manifest_pointing_outside_the_dataset_is_refused(tmp_path: Path) -> None:
    source, mirror = Store(tmp_path / "source"), Store(tmp_path / "mirror")
    source.write("X", "1m", BARS)
    url = f"file://{tmp_path / 'remote'}"
    push_dataset("X", "1m", url, source)
    manifest_path = tmp_path / "remote" / "X" / "1m" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["partitions"][0]["file"] = "../../../evil.parquet"
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(DataError, match=r"manifest.json: partition path '\.\./\.\./\.\./evil\.parquet'"):
        pull_dataset("X", "1m", url, mirror)
    assert not mirror.root.exists() or not any(mirror.root.rglob("*.parquet"))


def test_missing_datasets_are_named_with_the_url(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    url = f"file://{tmp_path / 'remote'}"
    with pytest.raises(DataError, match=rf"no dataset NOPE/1m in .* to push to {url}/NOPE/1m"):
        push_dataset("NOPE", "1m", url, store)
    with pytest.raises(DataError, match=rf"no dataset NOPE/1m at {url}"):
        pull_dataset("NOPE", "1m", url, store)
    assert not (tmp_path / "remote").exists()


def test_s3_options_come_from_settings(bucket: str) -> None:
    options = storage_options(f"s3://{bucket}/x")
    assert options["endpoint_url"] == get_settings().s3_endpoint_url
    assert options["client_kwargs"] == {"region_name": "us-east-1"}
    assert (options["key"], options["secret"]) == ("testing", "testing")
    assert storage_options("file:///tmp/x") == {} and storage_options("/tmp/x") == {}
    fs, path = filesystem("file:///tmp/x/")
    assert path == "/tmp/x" and fs.protocol[0] == "file"


def test_run_storage_on_s3_uses_the_configured_endpoint(bucket: str) -> None:
    run = RunStorage(f"s3://{bucket}/runs/7")
    run.write_json("results.json", {"sharpe": 1.5})
    run.write_bytes("model.zip", b"\x00weights")
    assert run.read_json("results.json") == {"sharpe": 1.5}
    assert run.read_bytes("model.zip") == b"\x00weights"
    assert run.exists("model.zip") and not run.exists("missing.json")
    body = s3_client().get_object(Bucket=bucket, Key="runs/7/results.json")["Body"].read()  # type: ignore[attr-defined]
    assert json.loads(body) == {"sharpe": 1.5}


runner = CliRunner()


def tl(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, " ".join(result.output.split())


def test_cli_push_and_pull(bucket: str, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    version = Store().write("X", "1m", BARS).manifest.version
    url = f"s3://{bucket}/data"
    code, output = tl("data", "push", "X", "--to", url)
    assert code == 0 and "3 transferred, 0 unchanged, 0 removed" in output and version in output, output
    code, output = tl("data", "push", "X", "--to", url)
    assert code == 0 and "0 transferred, 2 unchanged" in output, output

    monkeypatch.setenv("TRADELAB_HOME", str(tmp_path / "other"))
    monkeypatch.setenv("TRADELAB_STORAGE_URL", f"s3://{bucket}")  # the default URL is <storage_url>/data
    get_settings.cache_clear()
    code, output = tl("data", "pull", "X")
    assert code == 0 and "3 transferred" in output and version in output, output
    assert td.load("X").equals(BARS)


def test_cli_without_a_url_says_to_pass_one(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRADELAB_STORAGE_URL", raising=False)
    get_settings.cache_clear()
    code, output = tl("data", "push", "X")
    assert code == 2 and "pass --to URL or set TRADELAB_STORAGE_URL" in output, output
    code, output = tl("data", "pull", "X")
    assert code == 2 and "pass --from URL" in output, output
    code, output = tl("data", "pull", "X", "--from", f"file://{home / 'nowhere'}")
    assert code == 2 and "no dataset X/1m at file://" in output, output
