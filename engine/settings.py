"""One settings object for the whole engine.

Read, in order of precedence, from keyword arguments, ``DATAENGINE_*`` environment variables,
and an optional ``dataengine.toml`` in the working directory (or the file named by
``DATAENGINE_CONFIG``). Every component receives the values it needs from here, so
``dataengine config`` shows exactly what a run will use.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from engine.errors import ConfigError

DEFAULT_CONFIG_FILE = "dataengine.toml"


class Settings(BaseSettings):
    """Effective configuration of a data engine installation."""

    model_config = SettingsConfigDict(env_prefix="DATAENGINE_", extra="forbid")

    catalog_url: str = Field(
        "sqlite:///.dataengine/catalog.db",
        description="SQLAlchemy URL of the catalog: sqlite:///PATH (embedded) or postgresql://...",
    )
    object_store_url: str = Field(
        "file://.dataengine/objects",
        description="file://PATH for a local folder, s3://bucket/prefix for S3",
    )
    s3_endpoint_url: str | None = Field(
        None, description="S3 endpoint for MinIO-style stores (None: AWS's own endpoints)"
    )
    s3_region: str = Field("us-east-1", description="region for the S3 client")
    s3_max_attempts: int = Field(8, ge=1, description="attempts per S3 call (standard retry mode)")
    s3_multipart_threshold_mb: int = Field(
        16, ge=5, description="objects at least this large are uploaded in parts"
    )
    sample_fps: float = Field(6.0, gt=0, description="frames per second sampled at ingestion (SA-V: 6)")
    jpeg_quality: int = Field(92, ge=50, le=100, description="JPEG quality of stored frames")
    max_frame_side: int = Field(8192, ge=64, description="longest frame side accepted at ingestion")
    min_frame_side: int = Field(16, ge=1, description="shortest frame side accepted at ingestion")
    max_video_frames: int = Field(
        200_000, ge=1, description="source frames accepted per video (about 2 h at 30 FPS)"
    )
    model_cache_dir: str = Field(
        ".dataengine/model-cache", description="local folder where registered model weights are cached"
    )
    torch_threads: int | None = Field(
        None, ge=1, description="CPU threads for torch (None: torch's default)"
    )
    mask_upsampling: Literal["guided", "bilinear"] = Field(
        "guided",
        description="how model masks reach the frame's resolution: fitted to its edges, or SAM 2's bilinear",
    )

    @field_validator("catalog_url")
    @classmethod
    def _known_catalog_scheme(cls, value: str) -> str:
        if not value.startswith(("sqlite:", "postgresql:", "postgresql+psycopg:", "postgres:")):
            raise ValueError(
                f"catalog_url {value!r} is neither sqlite:///PATH nor postgresql://..."
            )
        return value

    @field_validator("object_store_url")
    @classmethod
    def _known_store_scheme(cls, value: str) -> str:
        if not value.startswith(("file://", "s3://")):
            raise ValueError(f"object_store_url {value!r} is neither file://PATH nor s3://bucket/prefix")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = Path(os.environ.get("DATAENGINE_CONFIG", DEFAULT_CONFIG_FILE))
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=toml_file),
        )


def load_settings(**overrides: Any) -> Settings:
    """The effective settings, with ``overrides`` taking precedence over everything else.

    ``DATAENGINE_CONFIG`` is not a setting; it only names the TOML file to read. A bad value
    (from any source) raises ConfigError naming the setting and what is wrong with it.
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"invalid settings (DATAENGINE_* environment or dataengine.toml): {problems}") from exc
