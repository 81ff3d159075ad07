"""Process-wide settings, read from ``TRADELAB_*`` environment variables."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from pydantic import ByteSize, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where tradelab keeps its state and which services it talks to.

    :param home: root folder of the data store, caches and the default SQLite database.
    :param database_url: control-plane database; SQLite under ``home`` when unset.
    :param storage_url: fsspec URL for run artifacts; ``file://<home>/artifacts`` when unset.
    :param runpod_api_key: key for the RunPod SDK; never forwarded to pods.
    :param s3_endpoint_url: endpoint of an S3-compatible store for ``s3://`` URLs (a RunPod network volume's
        S3 endpoint, MinIO, ...); AWS when unset.
    :param s3_region: region of that store.
    :param s3_access_key_id: access key for ``s3://`` URLs; the standard AWS credential chain when unset.
    :param s3_secret_access_key: its secret.
    :param tools_dir: folder of manifest tools (``<name>/tool.toml``); the repository's ``tools/`` when unset.
    :param web_dir: the built dashboard (``index.html`` and ``assets/``) that ``tradelab serve`` serves at ``/``;
        the repository's ``frontend/dist`` when unset.
    :param max_body: the largest request body the API reads where no limit below applies (``64KiB``, ``1MB``, …;
        a larger body is a 413): requests there are small JSON objects.
    :param max_metrics_body: the largest metrics batch (about 65 bytes a point: 100,000 points take 6.5 MB).
    :param max_logs_body: the largest batch of log lines a run may append at once.
    :param max_config_body: the largest body of the experiment and env-config routes (configs).
    """

    model_config = SettingsConfigDict(env_prefix="TRADELAB_", extra="ignore")

    home: Path = Field(default_factory=lambda: Path.home() / ".tradelab")
    database_url: str | None = None
    storage_url: str | None = None
    runpod_api_key: SecretStr | None = None
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    tools_dir: Path | None = None
    web_dir: Path | None = None
    max_body: ByteSize = ByteSize(64 * 2**10)
    max_metrics_body: ByteSize = ByteSize(16 * 2**20)
    max_logs_body: ByteSize = ByteSize(16 * 2**20)
    max_config_body: ByteSize = ByteSize(2**20)

    @property
    def data_dir(self) -> Path:
        """Root of the Parquet candle store."""
        return self.home / "data"

    @property
    def cache_dir(self) -> Path:
        """Derived data that can always be recomputed (feature matrices)."""
        return self.home / "cache"

    @property
    def manifest_tools_dir(self) -> Path:
        """Where manifest tools are discovered: ``tools_dir``, else the repository's own ``tools/``."""
        return self.tools_dir or Path(__file__).resolve().parents[2] / "tools"

    @property
    def web_app_dir(self) -> Path:
        """Where the built dashboard is served from: ``web_dir``, else the repository's ``frontend/dist``."""
        return self.web_dir or Path(__file__).resolve().parents[2] / "frontend" / "dist"

    @property
    def downloads_dir(self) -> Path:
        """Cache of downloaded raw files (kept so interrupted downloads resume)."""
        return self.home / "downloads"


@cache
def get_settings() -> Settings:
    """Settings of this process (read once)."""
    return Settings()
