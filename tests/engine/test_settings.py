"""Settings: defaults, DATAENGINE_* environment, dataengine.toml, and clear errors."""

from __future__ import annotations

import pytest

from engine.errors import ConfigError
from engine.settings import load_settings


def test_defaults_are_the_embedded_ones(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)
    for var in ("DATAENGINE_CATALOG_URL", "DATAENGINE_OBJECT_STORE_URL", "DATAENGINE_SAMPLE_FPS"):
        monkeypatch.delenv(var, raising=False)
    settings = load_settings()
    assert settings.catalog_url == "sqlite:///.dataengine/catalog.db"
    assert settings.object_store_url == "file://.dataengine/objects"
    assert settings.sample_fps == 6.0


def test_toml_file_then_environment_take_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dataengine.toml").write_text('sample_fps = 3.0\nobject_store_url = "s3://bucket/p"\n')
    monkeypatch.setenv("DATAENGINE_SAMPLE_FPS", "12")
    settings = load_settings()
    assert settings.object_store_url == "s3://bucket/p"
    assert settings.sample_fps == 12.0


def test_config_file_can_be_named(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    path = tmp_path / "elsewhere.toml"
    path.write_text('catalog_url = "postgresql://postgres@127.0.0.1:5432/test"\n')
    monkeypatch.setenv("DATAENGINE_CONFIG", str(path))
    assert load_settings().catalog_url.startswith("postgresql://")


@pytest.mark.parametrize(
    "name,value",
    [("DATAENGINE_CATALOG_URL", "mysql://x"), ("DATAENGINE_OBJECT_STORE_URL", "ftp://x"), ("DATAENGINE_SAMPLE_FPS", "0")],
)
def test_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch, tmp_path, name: str, value: str) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name.removeprefix("DATAENGINE_").lower()):
        load_settings()
