"""Process-wide settings, read from ``TRADELAB_*`` environment variables."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where tradelab keeps its state and which services it talks to.

    :param home: root folder of the data store, caches and the default SQLite database.
    :param database_url: control-plane database; SQLite under ``home`` when unset.
    :param storage_url: fsspec URL for run artifacts; ``file://<home>/artifacts`` when unset.
    :param runpod_api_key: key for the RunPod SDK; never forwarded to pods.
    """

    model_config = SettingsConfigDict(env_prefix="TRADELAB_", extra="ignore")

    home: Path = Field(default_factory=lambda: Path.home() / ".tradelab")
    database_url: str | None = None
    storage_url: str | None = None
    runpod_api_key: SecretStr | None = None

    @property
    def data_dir(self) -> Path:
        """Root of the Parquet candle store."""
        return self.home / "data"

    @property
    def downloads_dir(self) -> Path:
        """Cache of downloaded raw files (kept so interrupted downloads resume)."""
        return self.home / "downloads"


@cache
def get_settings() -> Settings:
    """Settings of this process (read once)."""
    return Settings()
